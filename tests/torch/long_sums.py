#!/usr/bin/python3
"""Long sums, `gradc grad` against a float64 reference.

A sum or mean over an axis that is neither the first nor the last (`sum(x, axis=1)` of
[A, N, K]), the gradient of a param broadcast over middle or trailing axes ([A, 1, 1, K]
against [A, N, M, K], [A, 1, 1] against [A, N, K]) or over the first and last axes ([1, 1, 1]
against [N, 1, K]: the reduced axes are not the trailing ones) and a sum of everything whose rows are
long ([2, 200000, 3], or [2, B]: the transpose of an input) add up to 600,000 numbers per
result. PyTorch float32 sums them in a cascade and is within a few 1e-7 of the float64
value; gradc must be within 1e-6 (relative error per tensor, max |gradc - float64| <=
1e-6 * max |float64|). The float32 PyTorch of the same computation is checked against the
same bound (a check of the check).

Usage: /usr/bin/python3 tests/torch/long_sums.py PATH/TO/gradc
Exit status 0 when every case agrees, 1 otherwise, 77 (skipped) when torch is missing.
"""
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
except ImportError as e:
    print(f"SKIPPED: PyTorch is not installed for {sys.executable} ({e}); "
          "install Debian's python3-torch to compare sums")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_grad import read_safetensors, write_safetensors  # noqa: E402

TOLERANCE = 1e-6

# (name, model, params {name: shape}, torch loss over the params and the data x (or None),
# columns of x: [B, columns] with B = DATA_ROWS, or 0 for no data)
DATA_ROWS = 500000
CASES = [
    ("sum and mean over axis 1 of [2, 100000, 10]", """
param Z: [2, 100000, 10] = zeros
param T: [2, 10] = zeros
minimize sum(sum(Z, axis=1) * T) + sum(mean(Z, axis=1, keepdims=true) * T) / 100
""", {"Z": (2, 100000, 10), "T": (2, 10)},
     lambda p, x: (p["Z"].sum(1) * p["T"]).sum() + (p["Z"].mean(1, keepdim=True) * p["T"]).sum() / 100, 0),
    ("sum over axis -2 of [1, 300000, 3]", """
param Z: [1, 300000, 3] = zeros
param T: [3] = zeros
minimize sum(sum(Z, axis=-2) * T)
""", {"Z": (1, 300000, 3), "T": (3,)}, lambda p, x: (p["Z"].sum(-2) * p["T"]).sum(), 0),
    ("a sum of everything over rows of 600000", """
param Z: [2, 200000, 3] = zeros
minimize mean(Z * Z) + sum(Z) / 1000
""", {"Z": (2, 200000, 3)}, lambda p, x: (p["Z"] * p["Z"]).mean() + p["Z"].sum() / 1000, 0),
    ("a sum of everything over rows of the batch (transpose of [B, 2])", """
dim B
input x: [B, 2]
param w = 1
minimize mean(transpose(x) * w)
""", {"w": ()}, lambda p, x: (x.T * p["w"]).mean(), 2),
    ("the gradient of a param broadcast over the last two axes", """
param Z: [2, 300000, 2] = zeros
param P: [2, 1, 1] = zeros
minimize sum((Z + P) * Z)
""", {"Z": (2, 300000, 2), "P": (2, 1, 1)}, lambda p, x: ((p["Z"] + p["P"]) * p["Z"]).sum(), 0),
    ("the gradient of a param broadcast over axes 1 and 2", """
param Z: [2, 300, 400, 5] = zeros
param P: [2, 1, 1, 5] = zeros
minimize sum((Z + P) * Z)
""", {"Z": (2, 300, 400, 5), "P": (2, 1, 1, 5)}, lambda p, x: ((p["Z"] + p["P"]) * p["Z"]).sum(), 0),
    ("the gradient of a param broadcast over the first and last axes", """
param Z: [300000, 1, 2] = zeros
param P: [1, 1, 1] = zeros
minimize sum((Z + P) * Z)
""", {"Z": (300000, 1, 2), "P": (1, 1, 1)}, lambda p, x: ((p["Z"] + p["P"]) * p["Z"]).sum(), 0),
]


def torch_grads(loss_fn, weights, data, dtype):
    p = {k: torch.tensor(v.astype(np.float64), dtype=dtype, requires_grad=True) for k, v in weights.items()}
    loss = loss_fn(p, None if data is None else torch.tensor(data.astype(np.float64), dtype=dtype))
    loss.backward()
    out = {"loss": loss.detach().double().numpy()}
    out.update({k: v.grad.double().numpy() for k, v in p.items()})
    return out


def rel(x, ref):
    return float(np.abs(np.asarray(x, np.float64) - ref).max()) / max(float(np.abs(ref).max()), 1e-30)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    gradc = sys.argv[1]
    rng = np.random.default_rng(5)
    torch.set_num_threads(1)
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, model, params, loss_fn, columns in CASES:
            # Values around 10 (a long sum's rounding grows with its partial sums).
            weights = {k: (rng.normal(10, 1, s) if k == "Z" else rng.normal(0, 1, s)).astype(np.float32)
                       for k, s in params.items()}
            mpath, wpath, gpath = (os.path.join(tmp, n) for n in ("m.grad", "w.safetensors", "g.safetensors"))
            with open(mpath, "w") as f:
                f.write(model)
            write_safetensors(wpath, weights)
            args, data = [gradc, "grad", mpath, "--weights", wpath, "--out", gpath], None
            if columns:
                data = rng.normal(10, 1, (DATA_ROWS, columns)).astype(np.float32)
                dpath = os.path.join(tmp, "data.csv")
                np.savetxt(dpath, data, fmt="%.9g", delimiter=",")
                args += ["--data", dpath]
            r = subprocess.run(args, capture_output=True, text=True)
            problems = []
            if r.returncode != 0:
                problems.append(f"gradc grad failed ({r.returncode}): {r.stderr.strip()}")
            else:
                got = read_safetensors(gpath)
                ref, f32 = (torch_grads(loss_fn, weights, data, t) for t in (torch.float64, torch.float32))
                for k, want in ref.items():
                    e, et = rel(got[k], want), rel(f32[k], want)
                    if not e <= TOLERANCE:
                        problems.append(f"{k}: relative error {e:.3g} (PyTorch float32: {et:.3g})")
                    if not et <= TOLERANCE:
                        problems.append(f"{k}: PyTorch float32 itself is {et:.3g} from float64")
            print(("ok     " if not problems else "FAILED ") + name)
            for p in problems:
                print("       " + p)
            failed += bool(problems)
    print(f"{len(CASES) - failed} of {len(CASES)} long sums agree with float64 (relative error <= {TOLERANCE:g})")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
