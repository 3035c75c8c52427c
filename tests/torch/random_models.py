#!/usr/bin/python3
"""Random differential testing of `gradc grad` against PyTorch 1.13.

Each program is a random, well-typed model in gradc's language: a `dim B` batch
axis, float inputs and params of random small shapes (rank 0-3, sizes 1-4, broadcasting
against size-1 and missing leading dims; one program in five also has sizes up to 33 and a
batch up to 39, past a vector register and a matmul tile), int label inputs, random expression trees over
every differentiable built-in (element-wise functions on safe domains, + - * / ^, maximum,
minimum, where, the three forms of @, transpose, reshape with -1, the reductions with
axis/keepdims/negative axes, softmax and log_softmax, the four losses, stop_gradient,
comparisons, argmax and onehot), bindings used more than once, and defs whose arguments
shadow global names. The same computation is written with torch (float32, autograd).

Some programs use small whole (or half) numbers as weights and data, so that exact ties
happen: maximum/minimum split the gradient evenly on ties, the max/min reductions split it
among tied elements (like torch.amax), relu'(0) = 0, abs'(0) = 0. Values that are equal only
mathematically (softplus(-1.5) + 1.5 and softplus(1.5)) may round to a tie in one program and
not in the other: about one tie-data program in 2,500 fails so, a rounding difference to
judge by looking at it.

A program is kept only when it is well conditioned: torch in float32 and in float64 agree to
a tenth of the tolerance, and every value is finite. Then `gradc grad` (JIT-compiled, and
through the interpreter with GRADC_BACKEND=interp) must agree with torch in float32 like
compare_grad.py: max |gradc - torch| <= 1e-4 * max |torch| per tensor (with 1e-2 as the
least scale: a gradient that is zero but for rounding, such as a tie split through a
softmax, may differ by an ulp of the loss).

Usage: /usr/bin/python3 tests/torch/random_models.py PATH/TO/gradc [--seed S] [--count N]
       [--jobs J] [--keep DIR] [--show]
Program i is made from the seed S+i; a failure prints the model, its seed and the worst
difference, and `--seed SEED --count 1 --show` reproduces it. GRADC_TEST_SEED sets the seed
when --seed is absent. Exit status 0 when every program agrees, 1 otherwise, 77 (skipped)
when torch is missing.
"""
import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:
    print(f"SKIPPED: PyTorch is not installed for {sys.executable} ({e}); "
          "install Debian's python3-torch to compare gradients")
    sys.exit(77)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support"))
from clitest import read_safetensors, write_safetensors  # noqa: E402

TOLERANCE = 1e-4  # as compare_grad.py
LEAST_SCALE = 1e-2
BDIM = (1, 1)  # a dim is (factor, uses B): (3, 0) is 3, (1, 1) is B, (2, 1) is 2*B

torch.set_num_threads(1)


def static(n):
    return (n, 0)


def dim_text(d):
    """The dim as gradc spells it in a type or a reshape, or None (2*B has no spelling)."""
    f, s = d
    return str(f) if not s else ("B" if f == 1 else None)


def dim_size(d, b):
    return d[0] * (b if d[1] else 1)


def nsyms(shape):
    return sum(d[1] for d in shape)


def product(shape):
    f, s = 1, 0
    for d in shape:
        f, s = f * d[0], s + d[1]
    return f, s


class DefCtx:
    """Generating a def body: its leaves are the def's arguments, made on demand."""

    def __init__(self):
        self.args = []


class Generator:
    """Makes one program: gradc text, torch code, params, inputs."""

    def __init__(self, rng):
        self.rng = rng
        self.ties = rng.random() < 0.35
        self.big = rng.random() < 0.2  # sizes past a vector register and a matmul tile
        self.params, self.inputs, self.labels = [], [], []  # (name, shape); labels: (name, classes)
        self.binds, self.defs, self.ndefs = [], [], 0  # binds: (name, shape)
        self.lines, self.tlines = [], []
        self.budget = 60
        self.uses_b = False  # the batch size as a value: then the program needs an input

    # ---- random helpers
    def r(self):
        return self.rng.random()

    def pick(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def size(self):
        if self.big and self.r() < 0.6:
            return self.pick([5, 7, 8, 9, 16, 17, 33])
        return int(self.rng.integers(1, 5))

    def shape(self, rank=None, batch=None):
        rank = int(self.rng.integers(0, 4)) if rank is None else rank
        s = [static(self.size()) for _ in range(rank)]
        if rank and (batch if batch is not None else self.r() < 0.5):
            s[0] = BDIM
        return tuple(s)

    def const(self):
        v = self.pick(["0.5", "1", "2", "0.25", "1.5", "3", ".5", "1e-1", "2."])
        return (f"(-{v})", f"C(-{v})") if self.r() < 0.25 else (v, f"C({v})")

    # ---- names
    def new_param(self, shape):
        name = f"w{len(self.params)}"
        self.params.append((name, shape))
        return name

    def new_input(self, shape):
        name = f"x{len(self.inputs)}"
        self.inputs.append((name, shape))
        return name

    def label(self, classes=None):
        """An int[B] input; with classes, one whose class count is that (used by a loss)."""
        for name, c in self.labels:
            if c == classes or (classes is None and self.r() < 0.7):
                return name
        name = f"y{len(self.labels)}"
        self.labels.append((name, classes))
        return name

    # ---- leaves
    def leaf(self, S, ctx):
        if ctx is not None:
            fits = [a for a, s in ctx.args if s == S]
            if S == () and self.r() < 0.3:
                return self.const()
            if fits and (self.r() < 0.5 or len(ctx.args) >= 4):
                a = self.pick(fits)
                return a, a
            if len(ctx.args) >= 4 and S == ():
                return self.const()
            names = [n for n in ["a", "b", "u", "v", "x0", "w0", "w1", "h0", "x1", "B", "y0"]
                     if n not in [a for a, _ in ctx.args]]
            a = self.pick(names) if names else f"a{len(ctx.args)}"
            ctx.args.append((a, S))
            return a, a
        fits = [n for n, s in self.params + self.inputs + self.binds if s == S]
        if fits and self.r() < 0.6:
            n = self.pick(fits)
            return n, n
        if S == ():
            k = self.r()
            if k < 0.3:
                return self.const()
            if k < 0.4:
                self.uses_b = True
                return "B", "C(float(B))"
        if nsyms(S) == 0:
            n = self.pick(fits) if fits and len(self.params) >= 5 else self.new_param(S)
            return n, n
        if S[0] == BDIM and nsyms(S) == 1:
            n = self.pick(fits) if fits and len(self.inputs) >= 4 else self.new_input(S)
            return n, n
        return self.compose(S, ctx)

    def compose(self, S, ctx):
        """S when no input or param can have it: the product of two shapes that broadcast to
        S, each with fewer dims that hold B, or a reshape of [B, n] to S (2*B dims)."""
        syms = [k for k, d in enumerate(S) if d[1]]
        if len(syms) > 1 or syms[0] > 0:
            i = syms[-1]
            A = tuple(static(1) if k == i else d for k, d in enumerate(S))
            ga, ta = self.gen(A, 0, ctx)
            gb, tb = self.gen(S[i:], 0, ctx)
            return f"({ga} * {gb})", f"({ta} * {tb})"
        g, t = self.gen((BDIM, static(product(S)[0])), 0, ctx)
        return self.reshape_text(g, t, S, ctx)

    # ---- the expression generator: an expression of exactly shape S
    def gen(self, S, depth, ctx=None):
        self.budget -= 1
        if depth <= 0 or self.budget <= 0 or self.r() < 0.1:
            return self.leaf(S, ctx)
        rank = len(S)
        ops = [("unary", 5), ("binary", 6), ("div", 2), ("pow", 2), ("maxmin", 3), ("where", 2),
               ("reduce", 4), ("loss", 2), ("cmp", 1), ("sg", 1), ("chain", 2)]
        if rank >= 1:
            ops += [("softmax", 2), ("reshape", 3)]
        if rank in (1, 2):
            ops += [("matmul", 6)]
        if rank == 2:
            ops += [("transpose", 3)]
        if S and S[-1][1] == 0 and S[-1][0] >= 2 and rank <= 3:
            ops += [("onehot", 1)]
        if S == ():
            ops += [("ce", 2)]
        if self.defs_fitting(S):
            ops += [("call", 2)]
        if len(self.defs) < 3 and (ctx is None or len(self.defs) < 2):
            ops += [("newdef", 1)]
        total = sum(w for _, w in ops)
        x = self.r() * total
        for op, w in ops:
            x -= w
            if x < 0:
                break
        return getattr(self, "op_" + op)(S, depth - 1, ctx)

    def broadcast_pair(self, S):
        """Two shapes that broadcast to exactly S: dims of S, some 1, some leading ones missing."""
        n = len(S)

        def one():
            drop = int(self.rng.integers(0, n + 1)) if n and self.r() < 0.4 else 0
            return [None] * drop + [d if self.r() < 0.6 else static(1) for d in S[drop:]]
        a, b = one(), one()
        for k, d in enumerate(S):
            if d != static(1) and a[k] != d and b[k] != d:
                if a[k] is None and b[k] is not None:
                    b[k] = d
                else:
                    a[k:] = [d] + [static(1) if x is None else x for x in a[k + 1:]]
        if n and a[0] is None and b[0] is None:
            a = [S[k] if x is None else x for k, x in enumerate(a)]
        return tuple(x for x in a if x is not None), tuple(x for x in b if x is not None)

    def op_unary(self, S, d, ctx):
        g, t = self.gen(S, d, ctx)
        k = self.pick(["exp", "log", "sqrt", "abs", "tanh", "sigmoid", "relu", "softplus", "sin", "cos",
                       "square", "leaky", "neg"])
        if k == "exp":
            if self.r() < 0.5:
                return f"exp({g})", f"torch.exp({t})"
            return f"exp(tanh({g}))", f"torch.exp(torch.tanh({t}))"
        if k in ("log", "sqrt"):
            form = self.pick(["exp", "sq", "sig"])
            tf = "torch.log" if k == "log" else "torch.sqrt"
            if form == "exp":
                return f"{k}(exp({g}))", f"{tf}(torch.exp({t}))"
            if form == "sq":
                return f"{k}({g} * {g} + 0.5)", f"{tf}({t} * {t} + 0.5)"
            return f"{k}(sigmoid({g}) + 0.25)", f"{tf}(torch.sigmoid({t}) + 0.25)"
        if k == "leaky":
            form = self.r()
            if form < 0.3:
                return f"leaky_relu({g})", f"F.leaky_relu({t}, 0.01)"
            if form < 0.6:
                return f"leaky_relu({g}, 0.2)", f"F.leaky_relu({t}, 0.2)"
            return f"leaky_relu({g}, slope=0.3)", f"F.leaky_relu({t}, 0.3)"
        if k == "neg":
            return f"(-{g})", f"(-{t})"
        tn = {"abs": "torch.abs", "tanh": "torch.tanh", "sigmoid": "torch.sigmoid", "relu": "torch.relu",
              "softplus": "F.softplus", "sin": "torch.sin", "cos": "torch.cos", "square": "torch.square"}[k]
        return f"{k}({g})", f"{tn}({t})"

    def op_binary(self, S, d, ctx):
        A, Bs = self.broadcast_pair(S)
        ga, ta = self.gen(A, d, ctx)
        gb, tb = self.gen(Bs, d, ctx)
        o = self.pick(["+", "-", "*"])
        return f"({ga} {o} {gb})", f"({ta} {o} {tb})"

    def positive(self, S, d, ctx):
        g, t = self.gen(S, d, ctx)
        form = self.pick(["sq", "exp", "sig", "sp"])
        if form == "sq":
            return f"({g} * {g} + 0.5)", f"({t} * {t} + 0.5)"
        if form == "exp":
            return f"exp(tanh({g}))", f"torch.exp(torch.tanh({t}))"
        if form == "sig":
            return f"(sigmoid({g}) + 0.25)", f"(torch.sigmoid({t}) + 0.25)"
        return f"(softplus({g}) + 0.5)", f"(F.softplus({t}) + 0.5)"

    def op_chain(self, S, d, ctx):
        """Precedence and associativity without parentheses: -a^2, a - b - c, a / b * c,
        a ^ b ^ c (right-associative), a + b * c."""
        k = self.r()
        if k < 0.2:
            g, t = self.gen(S, d, ctx)
            return f"(-{g} ^ 2)", f"(-({t} ** 2))"
        if k < 0.4:
            g, t = self.positive(S, d, ctx)
            return f"(0.5 ^ {g} ^ 0.5)", f"(C(0.5) ** ({t} ** 0.5))"
        A, Bs = self.broadcast_pair(S)
        ga, ta = self.gen(A, d, ctx)
        gb, tb = self.gen(Bs, d, ctx)
        gc, tc = self.gen(S if self.r() < 0.5 else (), d, ctx)
        if k < 0.6:
            return f"({ga} - {gb} - {gc})", f"({ta} - {tb} - {tc})"
        if k < 0.8:
            gd, td = self.positive(Bs, d, ctx)
            return f"({ga} / {gd} * {gc})", f"({ta} / {td} * {tc})"
        return f"({ga} + {gb} * {gc} - {gc})", f"({ta} + {tb} * {tc} - {tc})"

    def op_div(self, S, d, ctx):
        A, Bs = self.broadcast_pair(S)
        ga, ta = self.gen(A, d, ctx)
        if Bs == () and self.r() < 0.3:
            if ctx is None and self.r() < 0.5:
                self.uses_b = True
                gb, tb = "B", "C(float(B))"
            else:
                gb, tb = self.pick([("2", "C(2.)"), ("0.5", "C(0.5)"), ("3", "C(3.)")])
        else:
            gb, tb = self.positive(Bs, d, ctx)
        return f"({ga} / {gb})", f"({ta} / {tb})"

    def op_pow(self, S, d, ctx):
        A, Bs = self.broadcast_pair(S)
        if self.r() < 0.5:
            ga, ta = self.gen(S, d, ctx)
            e = self.pick(["2", "3", "1", "2.0"])
            return f"({ga} ^ {e})", f"torch.pow({ta}, C({e}))"
        if self.r() < 0.3:
            ga, ta = self.positive(S, d, ctx)
            e = self.pick(["0.5", "-1", "1.5", "-0.5", "2"])
            return f"({ga} ^ {e})", f"torch.pow({ta}, C({e}))"
        ga, ta = self.positive(A, d, ctx)
        gb, tb = self.gen(Bs, d, ctx)
        gb, tb = f"tanh({gb})", f"torch.tanh({tb})"
        return f"({ga} ^ {gb})", f"torch.pow({ta}, {tb})"

    def op_maxmin(self, S, d, ctx):
        A, Bs = self.broadcast_pair(S)
        ga, ta = self.gen(A, d, ctx)
        gb, tb = self.gen(Bs, d, ctx)
        k = self.pick(["maximum", "minimum"])
        if A == S and self.r() < 0.2:
            return f"{k}({ga}, {ga})", f"torch.{k}({ta}, {ta})"
        return f"{k}({ga}, {gb})", f"torch.{k}({ta}, {tb})"

    def cond(self, S, d, ctx):
        """A condition of a shape that broadcasts to S: a comparison, any float, or int labels."""
        k = self.r()
        if ctx is None and S and S[0] == BDIM and k < 0.2:
            y = self.label()
            rest = len(S) - 1
            shp = "[" + ", ".join(["B"] + ["1"] * rest) + "]"
            return f"reshape({y}, {shp})", f"{y}.reshape([B] + [1] * {rest})"
        C_, _ = self.broadcast_pair(S)
        if k < 0.6:
            return self.op_cmp(C_, d, ctx)
        return self.gen(C_, d, ctx)

    def op_where(self, S, d, ctx):
        A, Bs = self.broadcast_pair(S)
        gc, tc = self.cond(S, d, ctx)
        ga, ta = self.gen(A, d, ctx)
        gb, tb = self.gen(Bs, d, ctx)
        return f"where({gc}, {ga}, {gb})", f"torch.where(({tc}) != 0, {ta}, {tb})"

    def op_cmp(self, S, d, ctx):
        o = self.pick(["<", "<=", ">", ">=", "==", "!="])
        if ctx is None and S == (BDIM,) and self.r() < 0.3:
            y = self.label()
            if self.r() < 0.5:
                k = self.size() + 1
                gx, tx = self.gen((BDIM, static(k)), d, ctx)
                return (f"({y} {o} argmax({gx}, axis=1))",
                        f"({y} {o} torch.argmax({tx}, 1)).to(DT)")
            gx, tx = self.gen(S, d, ctx)
            return f"({y} {o} {gx})", f"({y}.to(DT) {o} {tx}).to(DT)"
        if self.r() < 0.3:
            ga, ta = self.gen(S, d, ctx)
            gb, tb = self.const()
        else:
            A, Bs = self.broadcast_pair(S)
            ga, ta = self.gen(A, d, ctx)
            gb, tb = self.gen(Bs, d, ctx)
        return f"({ga} {o} {gb})", f"({ta} {o} {tb}).to(DT)"

    def op_sg(self, S, d, ctx):
        g, t = self.gen(S, d, ctx)
        return f"stop_gradient({g})", f"({t}).detach()"

    def axis_text(self, ax, rank):
        a = ax - rank if self.r() < 0.4 else ax
        return str(a)

    def op_reduce(self, S, d, ctx):
        k = self.pick(["sum", "mean", "max", "min", "logsumexp"])
        tk = {"sum": "torch.sum", "mean": "torch.mean", "max": "torch.amax", "min": "torch.amin",
              "logsumexp": "torch.logsumexp"}[k]
        if S == () and self.r() < 0.5 or (all(x == static(1) for x in S) and self.r() < 0.3):
            keep = S != ()
            src = self.shape(len(S)) if keep else self.shape()
            g, t = self.gen(src, d, ctx)
            kd = ", keepdims=true" if keep else (", keepdims=false" if self.r() < 0.2 else "")
            return f"{k}({g}{kd})", f"red({tk}, {t}, None, {keep})"
        if len(S) >= 3:
            keep = True
        else:
            keep = self.r() < 0.4
        if keep:
            ones = [i for i, x in enumerate(S) if x == static(1)]
            if not ones:
                keep = False
        if keep:
            ax = self.pick(ones)
            src = list(S)
            src[ax] = BDIM if (ax == 0 and ctx is None and self.r() < 0.5) else static(self.size())
        else:
            ax = int(self.rng.integers(0, len(S) + 1))
            src = list(S)
            src.insert(ax, BDIM if (ax == 0 and self.r() < 0.5) else static(self.size()))
        src = tuple(src)
        g, t = self.gen(src, d, ctx)
        at = self.axis_text(ax, len(src))
        if self.r() < 0.3:
            kw = f", axis={at}" + (", keepdims=true" if keep else "")
        else:
            kw = f", {at}" + (", true" if keep else "")
        return f"{k}({g}{kw})", f"red({tk}, {t}, {at}, {keep})"

    def op_softmax(self, S, d, ctx):
        k = self.pick(["softmax", "log_softmax"])
        g, t = self.gen(S, d, ctx)
        ax = int(self.rng.integers(0, len(S)))
        at = self.axis_text(ax, len(S))
        if ax == len(S) - 1 and self.r() < 0.4:
            return f"{k}({g})", f"torch.{k}({t}, -1)"
        return f"{k}({g}, axis={at})", f"torch.{k}({t}, {at})"

    def op_matmul(self, S, d, ctx):
        k = BDIM if (ctx is None or self.r() < 0.5) and self.r() < 0.25 else static(self.size())
        if len(S) == 2:
            A, Bs = (S[0], k), (k, S[1])
        elif self.r() < 0.5:
            A, Bs = (k,), (k, S[0])
        else:
            A, Bs = (S[0], k), (k,)
        ga, ta = self.gen(A, d, ctx)
        gb, tb = self.gen(Bs, d, ctx)
        return f"({ga} @ {gb})", f"({ta} @ {tb})"

    def op_transpose(self, S, d, ctx):
        g, t = self.gen((S[1], S[0]), d, ctx)
        return f"transpose({g})", f"({t}).T"

    def reshape_text(self, g, t, S, ctx):
        texts = [dim_text(x) for x in S]
        if ctx is not None:
            texts = [None if x[1] else tt for x, tt in zip(S, texts)]
        holes = [i for i, x in enumerate(texts) if x is None]
        if len(holes) > 1:
            return None
        if not holes and S and self.r() < 0.4:
            holes = [int(self.rng.integers(len(S)))]
        if holes:
            texts[holes[0]] = "-1"
        tt = ", ".join("-1" if x == "-1" else f"{S[i][0]} * B" if S[i][1] and S[i][0] > 1 else
                       ("B" if S[i][1] else x) for i, x in enumerate(texts))
        return f"reshape({g}, [{', '.join(texts)}])", f"({t}).reshape([{tt}])"

    def op_reshape(self, S, d, ctx):
        if nsyms(S) > 1:
            return self.op_unary(S, d, ctx)
        f, s = product(S)
        # a random source shape of the same size
        factors = []
        rest = f
        for p in (2, 3, 2, 2):
            if rest % p == 0 and self.r() < 0.6:
                factors.append(p)
                rest //= p
        if rest > 1:
            factors.append(rest)
        self.rng.shuffle(factors)
        src = [static(x) for x in factors][:3]
        if len(factors) > 3:
            src = [static(f)]
        if s:
            pos = int(self.rng.integers(0, len(src) + 1)) if self.r() < 0.3 else 0
            src.insert(pos, BDIM)
            if len(src) > 3:
                src = [BDIM, static(f)]
        while self.r() < 0.2 and len(src) < 3:
            src.insert(int(self.rng.integers(0, len(src) + 1)), static(1))
        src = tuple(src)
        g, t = self.gen(src, d, ctx)
        out = self.reshape_text(g, t, S, ctx)
        return out if out else (g, t) if src == S else self.op_unary(S, d, ctx)

    def op_loss(self, S, d, ctx):
        k = self.pick(["mse", "bce", "bcel"])
        ga, ta = self.gen(S, d, ctx)
        gb, tb = self.gen(S, d, ctx)
        if k == "mse":
            return f"mse({ga}, {gb})", f"F.mse_loss({ta}, {tb}, reduction='none')"
        if k == "bce":
            return (f"bce(sigmoid({ga}), sigmoid({gb}))",
                    f"F.binary_cross_entropy(torch.sigmoid({ta}), torch.sigmoid({tb}), reduction='none')")
        if self.r() < 0.5:
            gb, tb = f"sigmoid({gb})", f"torch.sigmoid({tb})"
        return (f"bce_with_logits({ga}, {gb})",
                f"F.binary_cross_entropy_with_logits({ta}, {tb}, reduction='none')")

    def int_labels(self, S, classes, d, ctx):
        """int labels of shape S with values below classes: an input or an argmax."""
        if ctx is None and S == (BDIM,) and self.r() < 0.6:
            y = self.label(classes)
            return y, f"{y}.long()"
        k = int(self.rng.integers(1, classes + 1))
        ax = int(self.rng.integers(0, len(S) + 1))
        src = list(S)
        src.insert(ax, static(k))
        g, t = self.gen(tuple(src), d, ctx)
        at = self.axis_text(ax, len(src))
        return f"argmax({g}, {at})", f"torch.argmax({t}, {at})"

    def op_onehot(self, S, d, ctx):
        n = S[-1][0]
        g, t = self.int_labels(S[:-1], n, d, ctx)
        return f"onehot({g}, {n})", f"F.one_hot({t}, {n}).to(DT)"

    def op_ce(self, S, d, ctx):
        c = self.size() + 1
        rows = BDIM if ctx is None else self.pick([BDIM, static(self.size())])
        gz, tz = self.gen((rows, static(c)), d, ctx)
        gy, ty = self.int_labels((rows,), c, d, ctx)
        return f"cross_entropy({gz}, {gy})", f"F.cross_entropy({tz}, {ty})"

    def defs_fitting(self, S):
        return [df for df in self.defs if df[2] == S]

    def call_def(self, df, d, ctx):
        name, args, _ = df
        gs, ts = [], []
        for _, s in args:
            g, t = self.gen(s, d, ctx)
            gs.append(g)
            ts.append(t)
        if self.r() < 0.3 and len(args) > 1:
            order = list(range(len(args)))
            self.rng.shuffle(order)
            gtext = ", ".join(f"{args[i][0]}={gs[i]}" for i in order)
        else:
            gtext = ", ".join(gs)
        return f"{name}({gtext})", f"{name}({', '.join(ts)})"

    def op_call(self, S, d, ctx):
        return self.call_def(self.pick(self.defs_fitting(S)), d, ctx)

    def op_newdef(self, S, d, ctx):
        name = f"f{self.ndefs}"
        self.ndefs += 1
        inner = DefCtx()
        body_g, body_t = self.gen(S, d + 1, inner)
        if not inner.args:
            a = self.pick(["a", "x0", "u"])
            inner.args.append((a, S))
            body_g, body_t = f"({body_g} + {a})", f"({body_t} + {a})"
        names = ", ".join(a for a, _ in inner.args)
        self.lines.append(f"def {name}({names}) = {body_g}")
        self.tlines.append(f"def {name}({names}):\n    return {body_t}")
        df = (name, inner.args, S)
        self.defs.append(df)
        return self.call_def(df, d, ctx)

    # ---- the whole program
    def program(self):
        body, tbody = [], []
        nb = int(self.rng.integers(1, 4))
        terms, tterms = [], []
        for i in range(nb):
            S = self.shape()
            self.budget = 25
            g, t = self.gen(S, int(self.rng.integers(2, 5)))
            name = f"h{i}"
            body.append(f"{name} = {g}")
            tbody.append(f"{name} = {t}")
            self.binds.append((name, S))
            red = self.pick(["sum", "mean", "max", "logsumexp"])
            tk = {"sum": "torch.sum", "mean": "torch.mean", "max": "torch.amax",
                  "logsumexp": "torch.logsumexp"}[red]
            terms.append(f"{red}({name})")
            tterms.append(f"red({tk}, {name}, None, False)")
        self.budget = 30
        g, t = self.gen((), int(self.rng.integers(2, 6)))
        terms.append(g)
        tterms.append(t)
        if not self.params:
            name = self.new_param(self.shape(batch=False))
            terms.append(f"sum(square({name}))")
            tterms.append(f"torch.sum(torch.square({name}))")
        loss_g = " + ".join(terms)
        loss_t = " + ".join(tterms)
        if self.uses_b and not self.inputs and not self.labels:
            self.new_input((BDIM,))
        head = (["model random"] if self.r() < 0.2 else []) + ["dim B"]
        for n, s in self.inputs:
            head.append(f"input {n}: [{', '.join(dim_text(x) for x in s)}]")
        for n, c in self.labels:
            head.append(f"input {n}: int[B]")
        for n, s in self.params:
            if s == () and self.r() < 0.5:
                head.append(f"param {n} = 0.5")
            else:
                head.append(f"param {n}: [{', '.join(dim_text(x) for x in s)}] = normal(0, 1)")
        opt = self.pick(["", " with sgd(lr = 0.1)", " with adam()"])
        if self.binds and self.r() < 0.3:
            # Metrics and outputs are compiled but not evaluated by `grad`.
            n, s = self.binds[0]
            body.append(f"metric m0 = mean({n})")
            body.append(f"output o0 = {n}")
        text = "\n".join(head + self.lines + body + [f"minimize {loss_g}{opt}"]) + "\n"
        torch_code = "\n".join(self.tlines + tbody + [f"loss = {loss_t}"]) + "\n"
        return text, torch_code


def red(fn, x, axis, keep):
    if axis is None:
        if x.dim() == 0:
            return x
        return fn(x, tuple(range(x.dim())), keepdim=keep)
    return fn(x, axis, keepdim=keep)


def evaluate(code, params, inputs, labels, b, dtype):
    """(loss, {param: gradient}) of the torch code in dtype."""
    ns = {"torch": torch, "F": F, "red": red, "DT": dtype, "B": b,
          "C": lambda v: torch.tensor(v, dtype=dtype)}
    p = {k: torch.tensor(v, dtype=dtype, requires_grad=True) for k, v in params.items()}
    ns.update(p)
    ns.update({k: torch.tensor(v, dtype=dtype) for k, v in inputs.items()})
    ns.update({k: torch.tensor(v, dtype=torch.int64) for k, v in labels.items()})
    exec(code, ns)
    loss = ns["loss"]
    if loss.requires_grad:
        loss.backward()
    out = {"loss": loss.detach().numpy().astype(np.float64)}
    for k, v in p.items():
        out[k] = (v.grad.numpy() if v.grad is not None else np.zeros(v.shape)).astype(np.float64)
    return out


def rel_err(got, ref):
    scale = max(float(np.abs(ref).max(initial=0)), LEAST_SCALE)
    return float(np.abs(np.asarray(got, dtype=np.float64) - ref).max(initial=0)) / scale


class Case:
    """One random program with its weights and data."""

    def __init__(self, seed):
        self.seed = seed
        rng = np.random.default_rng(seed)
        gen = Generator(rng)
        self.text, self.code = gen.program()
        self.b = int(rng.integers(1, 40 if gen.big else 5))
        self.ties = gen.ties

        wide = rng.random() < 0.1  # large values: saturated sigmoids, softmax near one-hot

        def values(shape, scale):
            if wide:
                scale *= 10
            if gen.ties:
                return rng.choice([-1, -0.5, 0, 0.5, 1] if scale < 1 else [-2, -1, 0, 1, 2],
                                  size=shape).astype(np.float32)
            return rng.normal(0, scale, size=shape).astype(np.float32)

        self.params = {n: values(tuple(dim_size(x, self.b) for x in s), 0.5) for n, s in gen.params}
        self.inputs = {n: values(tuple(dim_size(x, self.b) for x in s), 1.0) for n, s in gen.inputs}
        self.labels = {n: rng.integers(0, c if c else 3, size=(self.b,)) for n, c in gen.labels}
        cols = [self.inputs[n].reshape(self.b, -1) for n, _ in gen.inputs]
        cols += [self.labels[n].reshape(self.b, 1).astype(np.float32) for n, _ in gen.labels]
        self.table = np.concatenate(cols, axis=1) if cols else None

    def reference(self):
        """(torch's float32 result, whether the program is well conditioned), or None when
        torch's float32 result is not finite."""
        try:
            r32 = evaluate(self.code, self.params, self.inputs, self.labels, self.b, torch.float32)
            r64 = evaluate(self.code, self.params, self.inputs, self.labels, self.b, torch.float64)
        except Exception as e:
            raise RuntimeError(f"torch rejects the program: {type(e).__name__}: {e}")
        if not all(np.all(np.isfinite(v)) for v in r32.values()):
            return None
        good = all(np.all(np.isfinite(r64[k])) and np.abs(r64[k]).max(initial=0) <= 1e6 and
                   rel_err(r32[k], r64[k]) <= TOLERANCE / 10 for k in r64)
        return r32, good

    def write(self, tmp):
        model = os.path.join(tmp, "model.grad")
        with open(model, "w") as f:
            f.write(self.text)
        weights = os.path.join(tmp, "w.safetensors")
        write_safetensors(weights, {k: ("F32", list(v.shape), v.flatten().tolist()) for k, v in self.params.items()})
        data = None
        if self.table is not None:
            data = os.path.join(tmp, "data.csv")
            with open(data, "w") as f:
                f.write("".join(",".join("%.9g" % v for v in row) + "\n" for row in self.table))
        return model, weights, data


def run_gradc(gradc, case, tmp, backend):
    """({name: array}, None) or (None, problem)."""
    model, weights, data = case.write(tmp)
    out = os.path.join(tmp, "g.safetensors")
    cmd = [gradc, "grad", model, "--weights", weights, "--out", out]
    if data:
        cmd += ["--data", data]
    env = dict(os.environ)
    env.pop("GRADC_BACKEND", None)
    if backend == "interp":
        env["GRADC_BACKEND"] = "interp"
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    except subprocess.TimeoutExpired:
        return None, "gradc grad hangs (60 s)"
    if p.returncode != 0:
        return None, f"gradc grad failed ({p.returncode}): {p.stderr.strip()}"
    if not os.path.exists(out):
        return None, "gradc grad wrote no output"
    tensors, _ = read_safetensors(out)
    return {k: np.array(v, dtype=np.float64).reshape(shape) for k, (_, shape, v) in tensors.items()}, None


def check(gradc, seed, keep=None):
    """(status, message): status 'ok', 'skip' (ill-conditioned) or 'fail'."""
    try:
        case = Case(seed)
    except Exception as e:
        return "fail", f"seed {seed}: the generator fails: {type(e).__name__}: {e}"
    try:
        want = case.reference()
    except RuntimeError as e:
        return "fail", f"{e}\n(generator bug)\n{case.text}{case.code}"
    if want is None:
        return "skip", ""
    # An ill-conditioned program is only checked for values that torch has and gradc not.
    want, good = want
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend in ("jit", "interp"):
            got, err = run_gradc(gradc, case, tmp, backend)
            if err:
                problems.append(f"[{backend}] {err}")
                continue
            worst = None
            for name, ref in want.items():
                if name not in got:
                    problems.append(f"[{backend}] {name}: missing from gradc's output")
                elif tuple(got[name].shape) != tuple(ref.shape):
                    problems.append(f"[{backend}] {name}: shape {list(got[name].shape)}, torch {list(ref.shape)}")
                elif not good:
                    if not np.all(np.isfinite(got[name])):
                        worst = (math.inf, name, got[name], ref)
                else:
                    e = rel_err(got[name], ref)
                    if e > TOLERANCE and (worst is None or e > worst[0]):
                        worst = (e, name, got[name], ref)
            if worst:
                e, name, g, r = worst
                what = f"relative error {e:.3g}" if good else "not finite where torch is"
                problems.append(f"[{backend}] worst: {name}: {what}\n"
                                f"    gradc {np.array2string(g.flatten()[:8], precision=6)}\n"
                                f"    torch {np.array2string(r.flatten()[:8], precision=6)}")
        if problems and keep:
            dest = os.path.join(keep, f"seed{seed}")
            shutil.copytree(tmp, dest, dirs_exist_ok=True)
            with open(os.path.join(dest, "torch.py"), "w") as f:
                f.write(case.code)
    if not problems:
        return ("ok" if good else "skip"), ""
    return "fail", (f"seed {seed} (B = {case.b}{', tie data' if case.ties else ''}):\n"
                    + "\n".join(problems) + "\n--- model\n" + case.text + "--- torch\n" + case.code)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("gradc")
    ap.add_argument("--seed", type=int, default=int(os.environ.get("GRADC_TEST_SEED", "1")))
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--keep", help="copy the files of each failing program to DIR/seedS")
    ap.add_argument("--show", action="store_true", help="print each program")
    a = ap.parse_args()
    if a.keep:
        os.makedirs(a.keep, exist_ok=True)
    seeds = list(range(a.seed, a.seed + a.count))
    if a.show:
        for s in seeds:
            c = Case(s)
            print(f"--- seed {s} (B = {c.b})\n{c.text}--- torch\n{c.code}")
    if a.jobs > 1:
        import multiprocessing
        with multiprocessing.Pool(a.jobs) as pool:
            results = pool.starmap(check, [(a.gradc, s, a.keep) for s in seeds])
    else:
        results = [check(a.gradc, s, a.keep) for s in seeds]
    counts = {"ok": 0, "skip": 0, "fail": 0}
    for s, (status, msg) in zip(seeds, results):
        counts[status] += 1
        if status == "fail":
            print(f"FAILED {msg}\n")
    print(f"{counts['ok'] + counts['fail']} random programs from seed {a.seed}: {counts['ok']} agree with "
          f"PyTorch {torch.__version__} (relative error <= {TOLERANCE:g}), {counts['fail']} do not; "
          f"{counts['skip']} ill-conditioned ones skipped")
    sys.exit(1 if counts["fail"] else 0)


if __name__ == "__main__":
    main()
