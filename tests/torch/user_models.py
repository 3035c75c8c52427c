#!/usr/bin/python3
"""Small models as a PyTorch user would port them, against PyTorch 1.13, command by command.

Each model mixes features of gradc's statements, expressions and optimisers (docs/language.md)
the way real models do: several outputs and mse, residual blocks, a scalar param broadcast,
softmax / log_softmax / logsumexp over axis 0 and -1 with keepdims, max / min with ties, a
reshaped batch, where / maximum / minimum, a custom leaky_relu slope, bce at saturation,
onehot + mse, defs calling defs with keywords and constants, int labels compared with floats,
fixed batch sizes, `[k]@[k,n]` and `[m,k]@[k]`, models without inputs, params that do not reach
the loss (which torch.optim leaves as they are), and every optimiser with its options. For each
model, from the same start weights (`--init`, written here):
  - `gradc grad`: the loss and every gradient,
  - `gradc eval --json`: the loss and every metric,
  - `gradc predict`: the header (NAME, or NAME_0.. for several columns) and every value,
  - `gradc train --no-shuffle --steps N --save`: the params after N steps of torch.optim,
    in float32 and, for some, with --dtype f64 (the checkpoint's NAME.f64 tensors);
must agree with torch to a relative error of 1e-4 per tensor (grad, eval, predict; as
compare_grad.py) and 2e-4 after training (as compare_train.py); 1e-11 in float64.

Usage: /usr/bin/python3 tests/torch/user_models.py PATH/TO/gradc [NAME...]
Exit status 0 when every model agrees, 1 otherwise, 77 (skipped) when torch is missing.
"""
import json
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:
    print(f"SKIPPED: PyTorch is not installed for {sys.executable} ({e}); "
          "install Debian's python3-torch to compare models")
    sys.exit(77)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support"))
import clitest  # noqa: E402

TOLERANCE, TRAIN_TOLERANCE, F64_TOLERANCE = 1e-4, 2e-4, 1e-11
T = torch
torch.set_num_threads(1)
GRADC = None


class Case:
    """A model: its text, params {name: shape}, inputs [(name, columns, kind)] (kind: "float",
    "unit" in (0, 1), "bin" 0/1, "half" multiples of 0.5 in [-1, 1] for ties, or a class
    count), rows, the torch forward (params, data) -> (loss, {metric}, {output}), and an
    optimiser to train with."""

    def __init__(self, name, model, params, inputs, rows, fwd, opt=None, steps=5, batch=None,
                 weights=None, f64=False):
        self.name, self.model, self.params, self.inputs, self.rows = name, model, params, inputs, rows
        self.fwd, self.opt, self.steps, self.batch, self.weights, self.f64 = fwd, opt, steps, batch, weights, f64


CASES = []


def case(*args, **kwargs):
    def add(fwd):
        CASES.append(Case(args[0], args[1], args[2], args[3], args[4], fwd, *args[5:], **kwargs))
        return fwd
    return add


@case("residual_regression", """
dim B
input x: [B, 4]
input y: [B, 3]
param W0: [4, 8] = glorot
param b0: [8] = zeros
param W1: [8, 8] = he
param b1: [8] = zeros
param Wo: [8, 3] = glorot
param bo: [3] = zeros
def block(h, W, b) = h + relu(h @ W + b)
z = block(tanh(x @ W0 + b0), W1, b1) @ Wo + bo
output pred = z
metric mae = mean(abs(z - y))
minimize mean(mse(z, y)) with adam(lr = 0.01, weight_decay = 0.1)
""", {"W0": (4, 8), "b0": (8,), "W1": (8, 8), "b1": (8,), "Wo": (8, 3), "bo": (3,)},
      [("x", 4, "float"), ("y", 3, "float")], 20,
      lambda ps: T.optim.Adam(ps, lr=0.01, weight_decay=0.1, foreach=False), 7, 8, f64=True)
def residual_regression(p, d):
    h = T.tanh(d["x"] @ p["W0"] + p["b0"])
    z = (h + T.relu(h @ p["W1"] + p["b1"])) @ p["Wo"] + p["bo"]
    return F.mse_loss(z, d["y"]), {"mae": (z - d["y"]).abs().mean()}, {"pred": z}


@case("temperature_softmax", """
dim B
input x: [B, 5]
param W: [5, 4] = normal(0, 0.1)
param t = 2.0
z = x @ W / t
c = logsumexp(z, axis=-1, keepdims=true)
output lse = c
output logp = log_softmax(z, axis=-1)
metric lse_all = logsumexp(z)
minimize sum(softmax(z, axis=0) * log_softmax(z)) / B + mean(c * logsumexp(z, axis=0, keepdims=true)) + t^2 with sgd(lr = 0.1, momentum = 0.9, nesterov = true, weight_decay = 0.01)
""", {"W": (5, 4), "t": ()}, [("x", 5, "float")], 12,
      lambda ps: T.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01, foreach=False), 6, 5,
      f64=True)
def temperature_softmax(p, d):
    z = d["x"] @ p["W"] / p["t"]
    c = T.logsumexp(z, -1, keepdim=True)
    loss = (T.softmax(z, 0) * T.log_softmax(z, -1)).sum() / z.shape[0] + (c * T.logsumexp(z, 0, keepdim=True)).mean() \
        + p["t"] ** 2
    return loss, {"lse_all": T.logsumexp(z.flatten(), 0)}, {"lse": c, "logp": T.log_softmax(z, -1)}


@case("ties", """
dim B
input x: [B, 4]
param s = 1.0
param c: [4] = zeros
z = x * s + c
m = max(z, axis=1) + sum(min(z, axis=0)) + max(z) - min(z, axis=-1, keepdims=true)
q = maximum(z, c) - minimum(z, x) + where(x > 0, z, 2 * z)
minimize mean(m) + mean(q)
""", {"s": (), "c": (4,)}, [("x", 4, "half")], 10, weights={"s": 1.0, "c": np.zeros(4)})
def ties(p, d):
    x = d["x"]
    z = x * p["s"] + p["c"]
    m = z.amax(1) + z.amin(0).sum() + z.amax() - z.amin(-1, keepdim=True)
    q = T.maximum(z, p["c"]) - T.minimum(z, x) + T.where(x > 0, z, 2 * z)
    return m.mean() + q.mean(), {}, {}


@case("reshaped_batch", """
dim B
input x: [B, 6]
param g: [2, 1] = ones
param W: [3, 2] = glorot
r = reshape(x, [B, 2, 3])
s = sum(r * g, axis=1)
v = reshape(reshape(r, [-1, 3]) @ W, [B, 4])
output vv = v
output ss = s
minimize sum(mean(s, axis=0)^2) + mean(v * v) + mean(logsumexp(r, axis=2)) with rmsprop(lr = 0.01, alpha = 0.9, momentum = 0.8, eps = 1e-6)
""", {"g": (2, 1), "W": (3, 2)}, [("x", 6, "float")], 9,
      lambda ps: T.optim.RMSprop(ps, lr=0.01, alpha=0.9, momentum=0.8, eps=1e-6, foreach=False), 6, 4, f64=True)
def reshaped_batch(p, d):
    r = d["x"].reshape(-1, 2, 3)
    s = (r * p["g"]).sum(1)
    v = (r.reshape(-1, 3) @ p["W"]).reshape(-1, 4)
    return (s.mean(0) ** 2).sum() + (v * v).mean() + T.logsumexp(r, 2).mean(), {}, {"vv": v, "ss": s}


@case("leaky_classifier", """
dim N
input x: [N, 3]
input y: int[N]
param W1: [3, 6] = he
param b1: [6] = zeros
param W2: [6, 6] = he
param W3: [6, 4] = glorot
h = leaky_relu(x @ W1 + b1, 0.2)
z = leaky_relu(slope = 0.05, x = h @ W2) @ W3
output cls = argmax(z, axis = 1)
metric acc = mean(argmax(z, axis=-1) == y)
metric first = mean(y == 0.0)
minimize cross_entropy(z, y) with adagrad(lr = 0.1, eps = 1e-8)
""", {"W1": (3, 6), "b1": (6,), "W2": (6, 6), "W3": (6, 4)}, [("x", 3, "float"), ("y", 1, 4)], 15,
      lambda ps: T.optim.Adagrad(ps, lr=0.1, eps=1e-8, foreach=False), 8, 6, f64=True)
def leaky_classifier(p, d):
    h = F.leaky_relu(d["x"] @ p["W1"] + p["b1"], 0.2)
    z = F.leaky_relu(h @ p["W2"], 0.05) @ p["W3"]
    return F.cross_entropy(z, d["y"]), {"acc": (z.argmax(1) == d["y"]).float().mean(),
                                        "first": (d["y"] == 0).float().mean()}, {"cls": z.argmax(1)}


@case("bce_saturated", """
dim B
input x: [B, 3]
input y: [B, 2]
param W: [3, 2] = normal(0, 1)
q = sigmoid(x @ W * 30)
output prob = q
minimize mean(bce(q, y)) with sgd(lr = 0.001)
""", {"W": (3, 2)}, [("x", 3, "float"), ("y", 2, "bin")], 16, lambda ps: T.optim.SGD(ps, lr=0.001), 3, 16)
def bce_saturated(p, d):
    q = T.sigmoid(d["x"] @ p["W"] * 30.0)
    return F.binary_cross_entropy(q, d["y"]), {}, {"prob": q}


@case("onehot_mse", """
dim B
input x: [B, 4]
input y: int[B]
param W: [4, 3] = glorot
param b: [3] = zeros
z = softmax(x @ W + b)
metric acc = mean(argmax(z, axis=1) == y)
metric ones = mean(y == 1.0)
minimize mean(mse(z, onehot(y, 3))) with adamw(lr = 0.05, weight_decay = 0.2, beta1 = 0.8)
""", {"W": (4, 3), "b": (3,)}, [("x", 4, "float"), ("y", 1, 3)], 14,
      lambda ps: T.optim.AdamW(ps, lr=0.05, weight_decay=0.2, betas=(0.8, 0.999), foreach=False), 7, 5)
def onehot_mse(p, d):
    z = T.softmax(d["x"] @ p["W"] + p["b"], 1)
    return (((z - F.one_hot(d["y"], 3).float()) ** 2).mean(),
            {"acc": (z.argmax(1) == d["y"]).float().mean(), "ones": (d["y"] == 1).float().mean()}, {})


@case("defs_with_keywords", """
dim B
input x: [B, 2]
input y: [B, 1]
param W1: [2, 5] = glorot
param b1: [5] = zeros
param W2: [5, 1] = glorot
param b2: [1] = zeros
def dense(x, W, b) = x @ W + b
def layer(x, W, b, s) = leaky_relu(dense(b = b, W = W, x = x), slope = s)
z = dense(layer(x, W1, s = 0.3, b = b1), W2, b2)
output p = sigmoid(z)
minimize mean(bce_with_logits(z, y)) with sgd(lr = 0.1, momentum = 0.5, dampening = 0.1)
""", {"W1": (2, 5), "b1": (5,), "W2": (5, 1), "b2": (1,)}, [("x", 2, "float"), ("y", 1, "bin")], 10,
      lambda ps: T.optim.SGD(ps, lr=0.1, momentum=0.5, dampening=0.1, foreach=False), 6, 3)
def defs_with_keywords(p, d):
    z = F.leaky_relu(d["x"] @ p["W1"] + p["b1"], 0.3) @ p["W2"] + p["b2"]
    return F.binary_cross_entropy_with_logits(z, d["y"]), {}, {"p": T.sigmoid(z)}


@case("fixed_batch", """
input x: [4, 3]
param W: [3, 2] = normal(0, 1)
z = x @ W
output zz = z
minimize sum(z * z) / 4 + sum(max(z, axis=0))
""", {"W": (3, 2)}, [("x", 3, "float")], 4, lambda ps: T.optim.SGD(ps, lr=0.01), 3, 4)
def fixed_batch(p, d):
    z = d["x"] @ p["W"]
    return (z * z).sum() / 4 + z.amax(0).sum(), {}, {"zz": z}


@case("fixed_batch_of_one", """
input x: [1, 3]
input y: int[1]
param W: [3, 4] = glorot
z = x @ W
output pr = softmax(z)
minimize cross_entropy(z, y) with sgd(lr = 0.5, momentum = 0.9, nesterov = true)
""", {"W": (3, 4)}, [("x", 3, "float"), ("y", 1, 4)], 1,
      lambda ps: T.optim.SGD(ps, lr=0.5, momentum=0.9, nesterov=True, foreach=False), 4, 1)
def fixed_batch_of_one(p, d):
    z = d["x"] @ p["W"]
    return F.cross_entropy(z, d["y"]), {}, {"pr": T.softmax(z, 1)}


@case("vector_products", """
dim B
input x: [B, 3]
param v: [3] = normal(0, 1)
param u: [3] = normal(0, 1)
param w: [2] = normal(0, 1)
param M: [3, 2] = normal(0, 1)
a = v @ M
b = x @ u
c = x @ M
output bo = b
output co = c + a
metric bm = mean(b)
minimize mean((c + a)^2) + mean(b^2) + sum(v * (M @ w)) with adam(lr = 0.01)
""", {"v": (3,), "u": (3,), "w": (2,), "M": (3, 2)}, [("x", 3, "float")], 8,
      lambda ps: T.optim.Adam(ps, lr=0.01, foreach=False), 5, 8)
def vector_products(p, d):
    a, b, c = p["v"] @ p["M"], d["x"] @ p["u"], d["x"] @ p["M"]
    return (((c + a) ** 2).mean() + (b ** 2).mean() + p["v"] @ (p["M"] @ p["w"]), {"bm": b.mean()},
            {"bo": b, "co": c + a})


@case("no_inputs", """
param A: [3, 3] = normal(0, 0.5)
param k = 0.5
metric norm2 = sum(A * A)
minimize sum((A @ transpose(A))^2) - 2 * sum(A * A) + (k - 2)^2 * abs(k) with adam(lr = 0.05, beta2 = 0.9)
""", {"A": (3, 3), "k": ()}, [], 0, lambda ps: T.optim.Adam(ps, lr=0.05, betas=(0.9, 0.9), foreach=False), 10,
      f64=True)
def no_inputs(p, d):
    A, k = p["A"], p["k"]
    return ((A @ A.T) ** 2).sum() - 2 * (A * A).sum() + (k - 2) ** 2 * k.abs(), {"norm2": (A * A).sum()}, {}


@case("layer_norm", """
dim B
input x: [B, 5]
input y: [B, 2]
param W: [5, 6] = glorot
param g: [6] = ones
param be: [6] = zeros
param V: [6, 2] = glorot
h = x @ W
mu = mean(h, axis=-1, keepdims=true)
var = mean((h - mu)^2, axis=-1, keepdims=true)
z = ((h - mu) / sqrt(var + 1e-5) * g + be) @ V
output z_out = z
metric rows = B
minimize sum(mse(z, y)) / B with adam(lr = 0.01, beta1 = 0.5, eps = 1e-6, weight_decay = 0.01)
""", {"W": (5, 6), "g": (6,), "be": (6,), "V": (6, 2)}, [("x", 5, "float"), ("y", 2, "float")], 11,
      lambda ps: T.optim.Adam(ps, lr=0.01, betas=(0.5, 0.999), eps=1e-6, weight_decay=0.01, foreach=False), 6, 4)
def layer_norm(p, d):
    h = d["x"] @ p["W"]
    mu = h.mean(-1, keepdim=True)
    var = ((h - mu) ** 2).mean(-1, keepdim=True)
    z = ((h - mu) / T.sqrt(var + 1e-5) * p["g"] + p["be"]) @ p["V"]
    return ((z - d["y"]) ** 2).sum() / z.shape[0], {"rows": T.tensor(float(z.shape[0]))}, {"z_out": z}


@case("int_labels_as_values", """
dim B
input x: [B, 1]
input y: int[B]
param r: [1, 3] = normal(0, 1)
a = x * r
c = reshape(y, [B, 1])
z = where(c, a, -a) + (c == 2) * r
output z2 = z
metric pos = mean(y > 0.5)
minimize mean(sigmoid(z) * softplus(-z)) + sum(max(z, axis=0, keepdims=true)^2)
""", {"r": (1, 3)}, [("x", 1, "float"), ("y", 1, 3)], 9, lambda ps: T.optim.SGD(ps, lr=0.01), 4, 4)
def int_labels_as_values(p, d):
    c = d["y"].reshape(-1, 1)
    a = d["x"] * p["r"]
    z = T.where(c != 0, a, -a) + (c == 2).float() * p["r"]
    return ((T.sigmoid(z) * F.softplus(-z)).mean() + (z.amax(0, keepdim=True) ** 2).sum(),
            {"pos": (d["y"] > 0.5).float().mean()}, {"z2": z})


@case("vector_softmax", """
dim B
input x: [B, 6]
param v: [4] = normal(0, 1)
param t = 1.5
x3 = reshape(x, [-1, 2, 3]) * t
r = max(x3, axis=1, keepdims=true) - min(x3, axis=2, keepdims=true) + logsumexp(x3, axis=1, keepdims=true)
minimize sum(softmax(v) * log_softmax(v, axis=0)) + logsumexp(t) + mean(r) + sum(mean(sum(x3, axis=2), axis=0)) with rmsprop(lr = 0.02, momentum = 0.9)
""", {"v": (4,), "t": ()}, [("x", 6, "float")], 7,
      lambda ps: T.optim.RMSprop(ps, lr=0.02, momentum=0.9, foreach=False), 5, 3)
def vector_softmax(p, d):
    v, t = p["v"], p["t"]
    x3 = d["x"].reshape(-1, 2, 3) * t
    r = x3.amax(1, keepdim=True) - x3.amin(2, keepdim=True) + T.logsumexp(x3, 1, keepdim=True)
    return ((T.softmax(v, 0) * T.log_softmax(v, 0)).sum() + T.logsumexp(t.reshape(1), 0) + r.mean()
            + x3.sum(2).mean(0).sum(), {}, {})


@case("powers_and_kinks", """
dim B
input x: [B, 3]
param W: [3, 3] = normal(0, 1)
z = x @ W
k = leaky_relu(x, 0.3) + relu(x) * 2 + abs(x) * 3 + maximum(x, 0 * x) + minimum(x, 0) * 5
minimize mean(z^2 + z^3 * 0.1 + (abs(z) + 0.1)^0.5 + (1 + z * z)^-1 + square(z) - (-z)^2) + sum(W^2) + mean(k @ W) with sgd(lr = 0.01, weight_decay = 0.5)
""", {"W": (3, 3)}, [("x", 3, "half")], 6, lambda ps: T.optim.SGD(ps, lr=0.01, weight_decay=0.5), 4, 6)
def powers_and_kinks(p, d):
    x = d["x"]
    z = x @ p["W"]
    k = F.leaky_relu(x, 0.3) + T.relu(x) * 2 + x.abs() * 3 + T.maximum(x, 0 * x) + T.minimum(x, T.zeros(())) * 5
    return ((z ** 2 + z ** 3 * 0.1 + (z.abs() + 0.1) ** 0.5 + (1 + z * z) ** -1 + T.square(z) - (-z) ** 2).mean()
            + p["W"].pow(2).sum() + (k @ p["W"]).mean(), {}, {})


@case("tied_autoencoder", """
dim B
input x: [B, 8]
param W: [8, 3] = glorot
param bh: [3] = zeros
param bv: [8] = zeros
h = sigmoid(x @ W + bh)
r = sigmoid(h @ transpose(W) + bv)
output code = h
metric err = mean((r > 0.5) != x)
minimize mean(sum(bce(r, x), axis=1)) with adam(lr = 0.05, beta1 = 0.85, beta2 = 0.98)
""", {"W": (8, 3), "bh": (3,), "bv": (8,)}, [("x", 8, "bin")], 23,
      lambda ps: T.optim.Adam(ps, lr=0.05, betas=(0.85, 0.98), foreach=False), 9, 7)
def tied_autoencoder(p, d):
    h = T.sigmoid(d["x"] @ p["W"] + p["bh"])
    r = T.sigmoid(h @ p["W"].T + p["bv"])
    return (F.binary_cross_entropy(r, d["x"], reduction="none").sum(1).mean(),
            {"err": ((r > 0.5).float() != d["x"]).float().mean()}, {"code": h})


@case("token_attention", """
dim B
input x: [B, 12]
input y: [B, 6]
param Wq: [4, 4] = glorot
param Wk: [4, 4] = glorot
param Wv: [4, 2] = glorot
def tokens(x, n) = reshape(x, [-1, n])
t = tokens(x, 4)
a = softmax(t @ Wq @ transpose(t @ Wk) / 2)
o = reshape(a @ (t @ Wv), [B, 6])
output o2 = o
minimize mean(mse(o, y)) with adamw(lr = 0.01)
""", {"Wq": (4, 4), "Wk": (4, 4), "Wv": (4, 2)}, [("x", 12, "float"), ("y", 6, "float")], 10,
      lambda ps: T.optim.AdamW(ps, lr=0.01, foreach=False), 6, 4)
def token_attention(p, d):
    t = d["x"].reshape(-1, 4)
    a = T.softmax((t @ p["Wq"]) @ (t @ p["Wk"]).T / 2.0, -1)
    o = (a @ (t @ p["Wv"])).reshape(-1, 6)
    return ((o - d["y"]) ** 2).mean(), {}, {"o2": o}


@case("one_column_inputs", """
dim B
input x: [B]
input y: [B]
param w = 0.5
param b = 0
z = x * w + b
output yhat = z
metric r2 = 1 - sum((z - y)^2) / sum((y - mean(y))^2)
minimize mean(mse(z, y)) + (w - 1)^2 * 0.1 with sgd(lr = 0.1, momentum = 0.9, nesterov = true)
""", {"w": (), "b": ()}, [("x", 1, "float"), ("y", 1, "float")], 13,
      lambda ps: T.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, foreach=False), 6, 5, f64=True)
def one_column_inputs(p, d):
    x, y = d["x"][:, 0], d["y"][:, 0]
    z = x * p["w"] + p["b"]
    return (F.mse_loss(z, y) + (p["w"] - 1) ** 2 * 0.1, {"r2": 1 - ((z - y) ** 2).sum() / ((y - y.mean()) ** 2).sum()},
            {"yhat": z})


@case("unused_params", """
dim B
input x: [B, 3]
input y: [B, 2]
param W: [3, 2] = glorot
param scale: [2] = ones
param thr = 0.5
z = x @ W
output pred = z * scale
metric scaled_mae = mean(abs(z * scale - y))
minimize mean(mse(z, y)) + mean(stop_gradient(thr) * z) + mean(z > thr) with adamw(lr = 0.05, weight_decay = 0.3)
""", {"W": (3, 2), "scale": (2,), "thr": ()}, [("x", 3, "float"), ("y", 2, "float")], 10,
      lambda ps: T.optim.AdamW(ps, lr=0.05, weight_decay=0.3, foreach=False), 6, 4, f64=True)
def unused_params(p, d):
    # scale and thr do not reach the loss: their .grad stays None and torch.optim leaves them
    # as they are (no weight decay).
    z = d["x"] @ p["W"]
    loss = F.mse_loss(z, d["y"]) + (p["thr"].detach() * z).mean() + (z > p["thr"]).float().mean()
    return loss, {"scaled_mae": (z * p["scale"] - d["y"]).abs().mean()}, {"pred": z * p["scale"]}


@case("unused_params_momentum", """
dim B
input x: [B, 3]
input y: int[B]
param W: [3, 4] = glorot
param bias: [4] = zeros
z = x @ W
metric acc = mean(argmax(z + bias, axis=1) == y)
minimize cross_entropy(z, y) with sgd(lr = 0.1, momentum = 0.9, weight_decay = 0.1)
""", {"W": (3, 4), "bias": (4,)}, [("x", 3, "float"), ("y", 1, 4)], 9,
      lambda ps: T.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1, foreach=False), 5, 3)
def unused_params_momentum(p, d):
    z = d["x"] @ p["W"]
    return F.cross_entropy(z, d["y"]), {"acc": ((z + p["bias"]).argmax(1) == d["y"]).float().mean()}, {}


# ---- the comparison

def relerr(got, want):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return float("inf")
    return float(np.abs(got - want).max(initial=0)) / max(float(np.abs(want).max(initial=0)), 1e-12)


def run(*args):
    p = subprocess.run([GRADC, *args], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def read(path):
    return {k: np.array(v[2], dtype=np.float64).reshape(v[1]) for k, v in clitest.read_safetensors(path)[0].items()}


def make_table(c, rng):
    cols = []
    for _, width, kind in c.inputs:
        size = (c.rows, width)
        cols.append(rng.normal(0, 1, size) if kind == "float" else rng.uniform(0.05, 0.95, size) if kind == "unit"
                    else rng.integers(0, 2, size) if kind == "bin" else rng.integers(-2, 3, size) / 2
                    if kind == "half" else rng.integers(0, kind, size))
    return np.concatenate(cols, axis=1).astype(np.float64) if cols else np.zeros((0, 0))


def split(c, table, dtype):
    out, col = {}, 0
    for name, width, kind in c.inputs:
        block = table[:, col:col + width]
        col += width
        out[name] = torch.tensor(block[:, 0].astype(np.int64)) if isinstance(kind, int) else torch.tensor(block, dtype=dtype)
    return out


def torch_train(c, weights, data, dtype):
    p = {k: torch.tensor(v, dtype=dtype, requires_grad=True) for k, v in weights.items()}
    opt = c.opt(list(p.values()))
    batch = c.batch or c.rows
    batches = -(-c.rows // batch) if c.inputs else 1
    for step in range(c.steps):
        b = step % batches
        opt.zero_grad()
        c.fwd(p, {k: v[b * batch:(b + 1) * batch] for k, v in data.items()})[0].backward()
        opt.step()
    return {k: v.detach().numpy() for k, v in p.items()}


def compare(c, tmp, seed):
    rng = np.random.default_rng(seed)
    problems = []
    weights = {k: rng.normal(0, 0.5, size=s) for k, s in c.params.items()}
    weights.update({k: np.asarray(v, dtype=np.float64) for k, v in (c.weights or {}).items()})
    w32 = {k: v.astype(np.float32) for k, v in weights.items()}
    model, wpath = os.path.join(tmp, c.name + ".grad"), os.path.join(tmp, "w.safetensors")
    with open(model, "w") as f:
        f.write(c.model)
    clitest.write_safetensors(wpath, {k: ("F32", list(v.shape), v.ravel().tolist()) for k, v in w32.items()})
    table = make_table(c, rng).astype(np.float32).astype(np.float64)
    data_args = []
    if c.inputs:
        dpath = os.path.join(tmp, "d.csv")
        with open(dpath, "w") as f:
            f.write("".join(",".join(repr(float(v)) for v in row) + "\n" for row in table))
        data_args = ["--data", dpath]
    data = split(c, table, torch.float32)

    def within(what, got, want, tol=TOLERANCE):
        err = relerr(got, want)
        if not err <= tol:
            problems.append(f"{what}: relative error {err:.3g} (gradc {np.ravel(got)[:4]}, torch {np.ravel(want)[:4]})")

    p = {k: torch.tensor(v, requires_grad=True) for k, v in w32.items()}
    loss, metrics, outputs = c.fwd(p, data)
    loss.backward()

    gpath = os.path.join(tmp, "g.safetensors")
    rc, _, err = run("grad", model, "--weights", wpath, *data_args, "--out", gpath)
    if rc:
        problems.append(f"grad failed ({rc}): {err.strip()}")
    else:
        got = read(gpath)
        within("grad loss", got["loss"], loss.detach().numpy())
        for k, v in p.items():
            within("grad " + k, got[k], v.grad.numpy() if v.grad is not None else np.zeros(v.shape))

    rc, out, err = run("eval", model, "--weights", wpath, *data_args, "--json")
    if rc:
        problems.append(f"eval failed ({rc}): {err.strip()}")
    else:
        got = json.loads(out)
        if list(got) != ["loss"] + list(metrics):
            problems.append(f"eval --json keys {list(got)}, want {['loss'] + list(metrics)}")
        within("eval loss", got.get("loss"), loss.detach().numpy())
        for k, v in metrics.items():
            within("eval " + k, got.get(k, np.nan), v.detach().numpy())

    if outputs:
        rc, out, err = run("predict", model, "--weights", wpath, *data_args)
        if rc:
            problems.append(f"predict failed ({rc}): {err.strip()}")
        else:
            lines = out.splitlines()
            header, values = lines[0].split(","), np.array([[float(v) for v in l.split(",")] for l in lines[1:]])
            want_header, want = [], []
            for k, v in outputs.items():
                v = v.detach().numpy().reshape(c.rows, -1)
                want_header += [k] if v.shape[1] == 1 else [f"{k}_{i}" for i in range(v.shape[1])]
                want.append(v)
            if header != want_header:
                problems.append(f"predict header {header}, want {want_header}")
            else:
                within("predict", values, np.concatenate(want, axis=1))

    if c.opt:
        runs = [("f32", np.float32, torch.float32, TRAIN_TOLERANCE)]
        if c.f64:
            runs.append(("f64", np.float64, torch.float64, F64_TOLERANCE))
        for dtype, npt, tt, tol in runs:
            start = {k: v.astype(npt) for k, v in weights.items()}
            clitest.write_safetensors(wpath, {k: (dtype.upper(), list(v.shape), v.ravel().tolist())
                                              for k, v in start.items()})
            save = os.path.join(tmp, "ck.safetensors")
            rc, _, err = run("train", model, *data_args, "--init", wpath, "--save", save, "--no-shuffle",
                             "--steps", str(c.steps), "--batch-size", str(c.batch or max(c.rows, 1)),
                             "--dtype", dtype)
            if rc:
                problems.append(f"train --dtype {dtype} failed ({rc}): {err.strip()}")
                continue
            got = read(save)
            for k, v in torch_train(c, start, split(c, table, tt), tt).items():
                within(f"train --dtype {dtype} {k}", got[k + ".f64" if dtype == "f64" else k], v, tol)
    return problems


def main():
    global GRADC
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    GRADC = sys.argv[1]
    wanted = sys.argv[2:]
    failed = ran = 0
    for i, c in enumerate(CASES):
        if wanted and c.name not in wanted:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            problems = compare(c, tmp, 100 + i)
        print(("ok     " if not problems else "FAILED ") + c.name)
        for p in problems:
            print("       " + p)
        failed += bool(problems)
        ran += 1
    print(f"{ran - failed} of {ran} models agree with PyTorch {torch.__version__}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
