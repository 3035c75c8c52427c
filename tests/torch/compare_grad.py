#!/usr/bin/python3
"""`gradc grad` against PyTorch 1.13: the loss and every gradient, for the example models
and the models of tests/torch/models/ (which between them use every built-in).

For each model: random float32 weights are written as safetensors, the data is a slice of
the example's CSV file or random rows, `gradc grad` writes the loss and gradients, and the
same computation written with torch (float32, autograd) must agree to a relative error of
1e-4 per tensor: max |gradc - torch| <= 1e-4 * max |torch|.

Every model runs twice: JIT-compiled (float32) and through the reference interpreter
(GRADC_BACKEND=interp). Then digits.grad over one batch of 60,000 rows (JIT), to 5e-6: the
sums over a long batch must keep PyTorch's accuracy.

Usage: /usr/bin/python3 tests/torch/compare_grad.py PATH/TO/gradc
Exit status 0 when every model agrees, 1 otherwise, 77 (skipped) when torch is missing.
"""
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
          "install Debian's python3-torch to compare gradients")
    sys.exit(77)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "examples")
MODELS = os.path.join(ROOT, "tests", "torch", "models")
TOLERANCE = 1e-4
LONG_TOLERANCE = 5e-6


# ---- safetensors (F32), as docs/language.md describes it: numpy arrays over the shared reader

sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
import clitest  # noqa: E402


def write_safetensors(path, tensors):
    clitest.write_safetensors(path, {name: ("F32", list(np.shape(v)), np.asarray(v, dtype="<f4").ravel().tolist())
                                     for name, v in tensors.items()})


def read_safetensors(path):
    tensors, _ = clitest.read_safetensors(path)
    out = {}
    for name, (dtype, shape, values) in tensors.items():
        assert dtype == "F32", (name, dtype)
        out[name] = np.array(values, dtype="<f4").reshape(shape)
    return out


# ---- the models, written with torch

def ce(z, y):
    return F.cross_entropy(z, y)


def mlp(act):
    return lambda p, x: act(x @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]


def classifier(act):
    return lambda p, d: ce(mlp(act)(p, d["x"]), d["y"])


def regression(p, d):
    return ((mlp(torch.relu)(p, d["x"]) - d["y"]) ** 2).mean()


def xor(p, d):
    z = torch.tanh(d["x"] @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]
    return F.binary_cross_entropy_with_logits(z, d["y"], reduction="none").mean()


def linear(p, d):
    return ((d["x"] @ p["w"] + p["b"] - d["y"]) ** 2).mean()


def rosenbrock(p, d):
    a, b = p["a"], p["b"]
    return (1 - a) ** 2 + 100 * (b - a ** 2) ** 2


def ops_unary(p, d):
    z = d["x"] @ p["W"]
    c = p["c"]
    a = torch.exp(z) + torch.log(c + z * z) + torch.sqrt(c) * torch.sin(z) + torch.cos(z) * torch.tanh(z)
    b = (torch.sigmoid(z) * F.softplus(z) + torch.abs(z) + torch.relu(z) + F.leaky_relu(z, 0.2)
         - F.leaky_relu(-z, 0.01))
    return (a * b).mean()


def ops_binary(p, d):
    u = d["x"] @ p["W"]
    y, pp, q = d["y"], p["p"], p["q"]
    v = torch.maximum(u, y) - torch.minimum(u, 0.5 * y) + u / pp + pp ** 2 + (u - y) ** 2 * 0.1 + -u
    w = torch.abs(u) ** q + pp ** q / (1 + u * u)
    return (v + w).sum() / 10


def ops_where(p, d):
    x = d["x"]
    z = x @ p["W"]
    m = torch.where(z > 0, z, 0.1 * z) + torch.where(x <= 0.5, z * z, -z) + z.detach() * z
    one = torch.ones_like(z)
    n = torch.where(z < 0.3, one, z) * (z >= 0.1).float() + (z == z).float() * z + (z != 0).float() * torch.sin(z)
    return (m + n).mean()


def ops_reduce(p, d):
    z = d["x"] @ p["W"]
    r = z.sum(1) + z.mean(1) + z.amax(1) + z.amin(-1) + torch.logsumexp(z, 1)
    s = (z * z.mean(0, keepdim=True)).sum() + z.amax() + z.amin() + torch.logsumexp(z.flatten(), 0) + z.mean(0).sum()
    return r.mean() + s / 10 + (z.amax(0, keepdim=True) * z.amin(1, keepdim=True)).mean()


def ops_softmax(p, d):
    z = d["x"] @ p["W"]
    pr, q = torch.softmax(z, 1), torch.softmax(z, 0)
    hot = F.one_hot(d["y"], 4).float()
    return -(hot * torch.log_softmax(z, -1)).sum(1).mean() + (pr * q).mean() + torch.log_softmax(z, 0).mean()


def ops_layout(p, d):
    r = d["x"].reshape(-1, 2, 3)
    s = r.reshape(-1, 3) @ p["W"]
    t = s.T @ s
    u, w = p["v"] @ t, t @ p["v"]
    return (u * w).mean() / 100


def ops_losses(p, d):
    z = d["x"] @ p["W"]
    return (F.binary_cross_entropy(torch.sigmoid(z), d["y"], reduction="none").mean()
            + F.binary_cross_entropy_with_logits(z, d["y"], reduction="none").mean()
            + ((z - d["t"]) ** 2).mean() + ce(d["x"] @ p["V"], d["k"]))


def ops_repeated_dim(p, d):
    s = d["x"] @ p["W"]
    t = torch.tanh(s * s.T)
    u = t.reshape(t.shape[0], 1, t.shape[0])
    return (u.amax(2).mean() + t.mean(0).sum() + (u.mean(1) ** 2).sum()
            + torch.logsumexp(u * (d["x"] @ p["v"]), -1, keepdim=True).mean())


def ops_bce_edges(p, d):
    z = d["x"] @ p["W"]
    q = torch.minimum(torch.maximum(2 * z, torch.zeros(())), torch.ones(()))
    bce = lambda a: F.binary_cross_entropy(a, d["y"], reduction="none").mean()
    return bce(q) + bce(torch.sigmoid(z)) + bce(torch.sigmoid(40 + z)) + bce(torch.sigmoid(8 * z - 95))


def ops_def_constants(p, d):
    z = F.leaky_relu(d["x"] @ p["W"], 0.2)
    hot = F.one_hot(d["y"], 4).float()
    nll = -(hot * torch.log_softmax(z, 1)).sum(1).mean()
    pairs = lambda rows: z.reshape(rows, -1, 2).amax(-1).sum(1)
    return (nll + (z - torch.logsumexp(z, 0, keepdim=True)).mean() + (z - torch.logsumexp(z, -1, keepdim=True)).mean()
            + (pairs(z.shape[0]) * pairs(1)).mean())



def ops_named_constants(p, d):
    z = F.leaky_relu(d["x"] @ p["W"], 0.1) * p["c"]
    hot = F.one_hot(d["y"], 4).float()
    nll = -(hot * torch.log_softmax(z, 1)).sum(1).mean()
    norm = (z - torch.logsumexp(z, -1, keepdim=True)).mean()
    flat = z.reshape(1, -1).sum(1).mean()
    return nll + norm + flat + 0.2 * z.mean()

# (model file, torch loss, params {name: (shape, kind)}, inputs [(name, width, kind)], data)
# kind of a param: "normal" or "positive"; of an input: "float", "unit" (in (0, 1)) or an int
# class count; data: (CSV file, rows) or the number of random rows.
MLP = lambda n_in, hidden, n_out: {"W1": ((n_in, hidden), "normal"), "b1": ((hidden,), "normal"),
                                   "W2": ((hidden, n_out), "normal"), "b2": ((n_out,), "normal")}
CASES = [
    ("examples/xor.grad", xor, MLP(2, 8, 1), [("x", 2, "float"), ("y", 1, "float")], ("xor.csv", 4)),
    ("examples/digits.grad", classifier(torch.relu), MLP(64, 128, 10), [("x", 64, "float"), ("y", 1, 10)],
     ("digits_train.csv", 200)),
    ("examples/iris.grad", classifier(torch.relu), MLP(4, 16, 3), [("x", 4, "float"), ("y", 1, 3)],
     ("iris_train.csv", 120)),
    ("examples/wine.grad", classifier(torch.tanh), MLP(13, 32, 3), [("x", 13, "float"), ("y", 1, 3)],
     ("wine_train.csv", 142)),
    ("examples/breast_cancer.grad", classifier(torch.relu), MLP(30, 32, 2), [("x", 30, "float"), ("y", 1, 2)],
     ("breast_cancer_train.csv", 200)),
    ("examples/diabetes.grad", regression, MLP(10, 32, 1), [("x", 10, "float"), ("y", 1, "float")],
     ("diabetes_train.csv", 200)),
    ("examples/linear_regression.grad", linear, {"w": ((1, 1), "normal"), "b": ((1,), "normal")},
     [("x", 1, "float"), ("y", 1, "float")], ("linear_regression_train.csv", 200)),
    ("examples/rosenbrock.grad", rosenbrock, {"a": ((), "normal"), "b": ((), "normal")}, [], 0),
    ("tests/torch/models/ops_unary.grad", ops_unary, {"W": ((4, 4), "normal"), "c": ((4,), "positive")},
     [("x", 4, "float")], 16),
    ("tests/torch/models/ops_binary.grad", ops_binary,
     {"W": ((3, 3), "normal"), "p": ((3,), "positive"), "q": ((), "positive")},
     [("x", 3, "float"), ("y", 3, "float")], 16),
    ("tests/torch/models/ops_where.grad", ops_where, {"W": ((5, 5), "normal")}, [("x", 5, "float")], 16),
    ("tests/torch/models/ops_reduce.grad", ops_reduce, {"W": ((6, 4), "normal")}, [("x", 6, "float")], 16),
    ("tests/torch/models/ops_softmax.grad", ops_softmax, {"W": ((5, 4), "normal")},
     [("x", 5, "float"), ("y", 1, 4)], 16),
    ("tests/torch/models/ops_layout.grad", ops_layout, {"W": ((3, 4), "normal"), "v": ((4,), "normal")},
     [("x", 6, "float")], 16),
    ("tests/torch/models/ops_losses.grad", ops_losses, {"W": ((3, 2), "normal"), "V": ((3, 3), "normal")},
     [("x", 3, "float"), ("y", 2, "unit"), ("t", 2, "float"), ("k", 1, 3)], 16),
    ("tests/torch/models/ops_repeated_dim.grad", ops_repeated_dim,
     {"W": ((3, 1), "normal"), "v": ((3,), "normal")}, [("x", 3, "float")], 5),
    ("tests/torch/models/ops_bce_edges.grad", ops_bce_edges, {"W": ((3, 3), "normal")},
     [("x", 3, "float"), ("y", 3, "unit")], 16),
    ("tests/torch/models/ops_def_constants.grad", ops_def_constants, {"W": ((6, 4), "normal")},
     [("x", 6, "float"), ("y", 1, 4)], 16),
    ("tests/torch/models/ops_named_constants.grad", ops_named_constants,
     {"W": ((6, 4), "normal"), "c": ((), "positive")}, [("x", 6, "float"), ("y", 1, 4)], 16),
]


def make_weights(rng, params):
    out = {}
    for name, (shape, kind) in params.items():
        v = rng.normal(0, 0.5, size=shape) if kind == "normal" else rng.uniform(0.5, 1.5, size=shape)
        out[name] = np.asarray(v, dtype=np.float32)
    return out


def make_data(rng, inputs, data, tmp):
    """Writes the CSV gradc reads and returns its rows as a float32 array (labels are whole)."""
    if isinstance(data, tuple):
        name, rows = data
        with open(os.path.join(EXAMPLES, "data", name)) as f:
            lines = f.read().splitlines()
        header, body = lines[0], [l for l in lines[1:] if l.strip()][:rows]
        text = [header] + body
        table = np.array([[np.float32(float(c)) for c in l.split(",")] for l in body], dtype=np.float32)
    else:
        cols = []
        for _, width, kind in inputs:
            if kind == "float":
                cols.append(rng.normal(0, 1, size=(data, width)))
            elif kind == "unit":
                cols.append(rng.uniform(0.05, 0.95, size=(data, width)))
            else:
                cols.append(rng.integers(0, kind, size=(data, 1)))
        table = np.concatenate(cols, axis=1).astype(np.float32)
        text = [",".join("%.9g" % v for v in row) for row in table]
    path = os.path.join(tmp, "data.csv")
    with open(path, "w") as f:
        f.write("\n".join(text) + "\n")
    return path, table


def split_inputs(inputs, table):
    out, col = {}, 0
    for name, width, kind in inputs:
        block = table[:, col:col + width]
        col += width
        out[name] = torch.tensor(block[:, 0].astype(np.int64)) if isinstance(kind, int) else torch.tensor(block)
    return out


def compare(gradc, case, rng, tmp, backend):
    path, loss_fn, params, inputs, data = case
    weights = make_weights(rng, params)
    wpath, gpath = os.path.join(tmp, "w.safetensors"), os.path.join(tmp, "g.safetensors")
    write_safetensors(wpath, weights)
    cmd = [gradc, "grad", os.path.join(ROOT, path), "--weights", wpath, "--out", gpath]
    table = None
    if inputs:
        dpath, table = make_data(rng, inputs, data, tmp)
        cmd += ["--data", dpath]
    env = dict(os.environ)
    env.pop("GRADC_BACKEND", None)
    if backend == "interp":
        env["GRADC_BACKEND"] = "interp"
    run = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if run.returncode != 0:
        return [f"gradc grad failed ({run.returncode}): {run.stderr.strip()}"]
    got = read_safetensors(gpath)

    p = {k: torch.tensor(v, requires_grad=True) for k, v in weights.items()}
    d = split_inputs(inputs, table) if inputs else {}
    loss = loss_fn(p, d)
    loss.backward()
    want = {"loss": loss.detach().numpy()}
    want.update({k: v.grad.numpy() for k, v in p.items()})

    problems = []
    for name, ref in want.items():
        if name not in got:
            problems.append(f"{name}: missing from gradc's output")
            continue
        g = got[name]
        if g.shape != ref.shape:
            problems.append(f"{name}: shape {g.shape}, torch {ref.shape}")
            continue
        scale = max(float(np.abs(ref).max(initial=0)), 1e-12)
        err = float(np.abs(g.astype(np.float64) - ref).max(initial=0)) / scale
        if not err <= TOLERANCE:
            problems.append(f"{name}: relative error {err:.3g} (gradc {g.flatten()[:4]}, torch {ref.flatten()[:4]})")
    return problems


def compare_long_batch(gradc, rng, tmp, rows=60000):
    """digits.grad over one batch of `rows` rows (pixels 0..16, as in the data set): the sums
    over the batch (the bias gradients, the weight gradients' sums over p) must keep
    PyTorch's accuracy, LONG_TOLERANCE, where one float chain over all rows lost 3e-5."""
    table = np.concatenate([rng.integers(0, 17, size=(rows, 64)), rng.integers(0, 10, size=(rows, 1))], axis=1)
    dpath = os.path.join(tmp, "long.csv")
    with open(dpath, "w") as f:
        f.write("\n".join(",".join(map(str, r)) for r in table.tolist()) + "\n")
    weights = {k: np.asarray(rng.normal(0, 0.1, size=shape), dtype=np.float32)
               for k, (shape, _) in MLP(64, 128, 10).items()}
    wpath, gpath = os.path.join(tmp, "w.safetensors"), os.path.join(tmp, "g.safetensors")
    write_safetensors(wpath, weights)
    env = {k: v for k, v in os.environ.items() if k != "GRADC_BACKEND"}
    run = subprocess.run([gradc, "grad", os.path.join(EXAMPLES, "digits.grad"), "--weights", wpath,
                          "--data", dpath, "--out", gpath], capture_output=True, text=True, env=env)
    if run.returncode != 0:
        return [f"gradc grad failed ({run.returncode}): {run.stderr.strip()}"]
    got = read_safetensors(gpath)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in weights.items()}
    t = table.astype(np.float32)
    classifier(torch.relu)(p, {"x": torch.tensor(t[:, :64]), "y": torch.tensor(table[:, 64])}).backward()
    problems = []
    for name, v in p.items():
        ref = v.grad.numpy()
        err = float(np.abs(got[name].astype(np.float64) - ref).max()) / float(np.abs(ref).max())
        if not err <= LONG_TOLERANCE:
            problems.append(f"{name}: relative error {err:.3g} over {rows} rows")
    return problems


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    gradc = sys.argv[1]
    rng = np.random.default_rng(1234)
    torch.manual_seed(0)
    failed, runs = 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        for backend in ("jit", "interp"):
            for case in CASES:
                problems = compare(gradc, case, rng, tmp, backend)
                print(("ok     " if not problems else "FAILED ") + f"[{backend}] " + case[0])
                for p in problems:
                    print("       " + p)
                failed += bool(problems)
                runs += 1
        problems = compare_long_batch(gradc, rng, tmp)
        print(("ok     " if not problems else "FAILED ") + "[jit] examples/digits.grad, one batch of 60000 rows")
        for p in problems:
            print("       " + p)
        failed += bool(problems)
        runs += 1
    print(f"{runs - failed} of {runs} runs agree with PyTorch {torch.__version__} "
          f"(relative error <= {TOLERANCE:g})")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
