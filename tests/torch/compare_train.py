#!/usr/bin/python3
"""20 steps of `gradc train --no-shuffle` against torch.optim, for every optimiser setting.

A small tanh network is trained on the first rows of the iris training set in mini-batches
(the last one smaller), starting from the same random weights (`--init`). After 20 steps the
params that `gradc train --save` writes must agree with PyTorch's to a relative error of 2e-4
per tensor: max |gradc - torch| <= 2e-4 * max |torch|.

Usage: /usr/bin/python3 tests/torch/compare_train.py PATH/TO/gradc
Exit status 0 when every optimiser agrees, 1 otherwise, 77 (skipped) when torch is missing.
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
          "install Debian's python3-torch to compare training")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support"))
from compare_grad import ROOT, read_safetensors, write_safetensors  # noqa: E402

TOLERANCE = 2e-4
F64_TOLERANCE = 1e-12
STEPS, BATCH, ROWS = 20, 32, 120

MODEL = """model iris_opt
dim B
input x: [B, 4]
input y: int[B]
param W1: [4, 8] = zeros
param b1: [8]    = zeros
param W2: [8, 3] = zeros
param b2: [3]    = zeros
h = tanh(x @ W1 + b1)
minimize cross_entropy(h @ W2 + b2, y) with {optimizer}
"""

# (gradc optimiser, torch optimiser)
CONFIGS = [
    ("sgd(lr = 0.1)", lambda p: torch.optim.SGD(p, lr=0.1, foreach=False)),
    ("sgd(lr = 0.05, momentum = 0.9)", lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, foreach=False)),
    ("sgd(lr = 0.05, momentum = 0.8, dampening = 0.3, weight_decay = 0.01)",
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01, foreach=False)),
    ("sgd(lr = 0.05, momentum = 0.9, nesterov = true)",
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, foreach=False)),
    ("adam(lr = 0.01)", lambda p: torch.optim.Adam(p, lr=0.01, foreach=False)),
    ("adam(lr = 0.01, beta1 = 0.8, beta2 = 0.99, eps = 1e-6, weight_decay = 0.05)",
     lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05, foreach=False)),
    ("adamw(lr = 0.01, weight_decay = 0.1)", lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1, foreach=False)),
    # beta2 close to 1: the bias correction 1 - beta2^t is PyTorch's (computed in double), not
    # 1 - pow(beta2, t) from beta2 rounded to float32 (1e-3 of 1 - 0.99999 off).
    ("adam(lr = 0.05, beta2 = 0.99999)", lambda p: torch.optim.Adam(p, lr=0.05, betas=(0.9, 0.99999), foreach=False)),
    ("adamw(lr = 0.05, beta1 = 0.999, beta2 = 0.9999)",
     lambda p: torch.optim.AdamW(p, lr=0.05, betas=(0.999, 0.9999), foreach=False)),
    ("rmsprop(lr = 0.01)", lambda p: torch.optim.RMSprop(p, lr=0.01, foreach=False)),
    ("rmsprop(lr = 0.005, alpha = 0.9, momentum = 0.5)",
     lambda p: torch.optim.RMSprop(p, lr=0.005, alpha=0.9, momentum=0.5, foreach=False)),
    ("adagrad(lr = 0.1)", lambda p: torch.optim.Adagrad(p, lr=0.1, foreach=False)),
]
SHAPES = {"W1": (4, 8), "b1": (8,), "W2": (8, 3), "b2": (3,)}


def torch_train(weights, x, y, make):
    p = {k: torch.tensor(v, requires_grad=True) for k, v in weights.items()}
    opt = make(list(p.values()))
    batches = (ROWS + BATCH - 1) // BATCH
    for step in range(STEPS):
        b = step % batches
        xb, yb = x[b * BATCH:(b + 1) * BATCH], y[b * BATCH:(b + 1) * BATCH]
        opt.zero_grad()
        loss = F.cross_entropy(torch.tanh(xb @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"], yb)
        loss.backward()
        opt.step()
    return {k: v.detach().numpy() for k, v in p.items()}


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    gradc = sys.argv[1]
    rng = np.random.default_rng(7)
    with open(os.path.join(ROOT, "examples", "data", "iris_train.csv")) as f:
        lines = [l for l in f.read().splitlines() if l.strip()]
    rows = lines[1:ROWS + 1]
    table = np.array([[np.float32(float(c)) for c in l.split(",")] for l in rows], dtype=np.float32)
    x, y = torch.tensor(table[:, :4]), torch.tensor(table[:, 4].astype(np.int64))
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data.csv")
        with open(data, "w") as f:
            f.write("\n".join([lines[0]] + rows) + "\n")
        for optimizer, make in CONFIGS:
            weights = {k: rng.normal(0, 0.5, size=s).astype(np.float32) for k, s in SHAPES.items()}
            model, init, save = (os.path.join(tmp, n) for n in ("m.grad", "w.safetensors", "ck.safetensors"))
            with open(model, "w") as f:
                f.write(MODEL.format(optimizer=optimizer))
            write_safetensors(init, weights)
            epochs = str((STEPS * BATCH + ROWS - 1) // ROWS + 1)
            r = subprocess.run([gradc, "train", model, "--data", data, "--init", init, "--save", save,
                                "--no-shuffle", "--batch-size", str(BATCH), "--epochs", epochs,
                                "--steps", str(STEPS)], capture_output=True, text=True)
            problems = []
            if r.returncode != 0:
                problems.append(f"gradc train failed ({r.returncode}): {r.stderr.strip()}")
            else:
                got, want = read_safetensors(save), torch_train(weights, x, y, make)
                if "gradc.step" not in got or float(got["gradc.step"]) != STEPS:
                    problems.append(f"the checkpoint says {got.get('gradc.step')} steps, not {STEPS}")
                for name, ref in want.items():
                    err = float(np.abs(got[name].astype(np.float64) - ref).max()) / float(np.abs(ref).max())
                    if not err <= TOLERANCE:
                        problems.append(f"{name}: relative error {err:.3g}")
            print(("ok     " if not problems else "FAILED ") + optimizer)
            for p in problems:
                print("       " + p)
            failed += bool(problems)
    print(f"{len(CONFIGS) - failed} of {len(CONFIGS)} optimisers agree with torch.optim {torch.__version__} "
          f"after {STEPS} steps (relative error <= {TOLERANCE:g})")
    failed += float64_runs(gradc, lines, rows)
    sys.exit(1 if failed else 0)


def float64_runs(gradc, lines, rows):
    """The same runs with --dtype f64 against torch in float64: the CSV values are read as
    doubles, the start weights are F64, and the checkpoint's exact copies (NAME.f64) agree with
    torch to F64_TOLERANCE."""
    import clitest
    table = np.array([[float(c) for c in l.split(",")] for l in rows])
    x, y = torch.tensor(table[:, :4]), torch.tensor(table[:, 4].astype(np.int64))
    rng = np.random.default_rng(11)
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        data, model, init, save = (os.path.join(tmp, n) for n in ("d.csv", "m.grad", "w.st", "ck.st"))
        with open(data, "w") as f:
            f.write("\n".join([lines[0]] + rows) + "\n")
        for optimizer, make in CONFIGS:
            weights = {k: rng.normal(0, 0.5, size=s) for k, s in SHAPES.items()}
            with open(model, "w") as f:
                f.write(MODEL.format(optimizer=optimizer))
            clitest.write_safetensors(init, {k: ("F64", list(v.shape), v.ravel().tolist()) for k, v in weights.items()})
            r = subprocess.run([gradc, "train", model, "--data", data, "--init", init, "--save", save, "--no-shuffle",
                                "--batch-size", str(BATCH), "--steps", str(STEPS), "--dtype", "f64"],
                               capture_output=True, text=True)
            problems = [f"gradc train failed ({r.returncode}): {r.stderr.strip()}"] if r.returncode else []
            if not problems:
                got = {k: np.array(v[2]).reshape(v[1]) for k, v in clitest.read_safetensors(save)[0].items()}
                for name, ref in torch_train(weights, x, y, make).items():
                    err = float(np.abs(got[name + ".f64"] - ref).max()) / float(np.abs(ref).max())
                    if not err <= F64_TOLERANCE:
                        problems.append(f"{name}: relative error {err:.3g}")
            print(("ok     " if not problems else "FAILED ") + "float64 " + optimizer)
            for p in problems:
                print("       " + p)
            failed += bool(problems)
    print(f"{len(CONFIGS) - failed} of {len(CONFIGS)} optimisers agree with torch.optim in float64 "
          f"(relative error <= {F64_TOLERANCE:g})")
    return failed


if __name__ == "__main__":
    main()
