#!/usr/bin/python3
"""Ties wherever the tied values sit: `gradc grad` and `gradc predict` on equal values at
every position of a tensor (docs/language.md, "Expressions": max/min reductions split the
gradient evenly among tied elements, argmax takes the first maximal index). Equal inputs must
give bitwise-equal values in a loop's vector body and its remainder, in a matrix product's full
tiles and its edge and overlapping tiles (33 rows = 5 tiles of 6 + 3; 19 columns = 2 vectors and
a masked one; a sum over 1,100 values in blocks), with one thread or two, in float32 and float64
and in the interpreter. No PyTorch needed: the expected gradients are exact splits.

Usage: /usr/bin/python3 tests/torch/tie_positions.py PATH/TO/gradc
"""
import math
import os
import random
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support"))
import clitest  # noqa: E402
from clitest import check, failures  # noqa: E402

B, D, H, N = 33, 1100, 19, 45
MODEL = f"""dim B
input x: [B, {D}]
input r: [B, 1]
param V: [{D}, {H}] = zeros
param W: [{D}, {H}] = zeros
param q: [{H}] = zeros
param p: [1] = zeros
param t = 0.0
param w: [{N}] = zeros
param m: [9, 17] = zeros
e = tanh(x @ W)
output am = argmax(exp(x @ W) - e, axis=1)
minimize sum(max(tanh(x @ V) + r * p, axis=0)) + sum(max(e + q * t, axis=1)) + max(exp(w)) + min(log(w)) + max(tanh(w)) + min(sin(w)) + max(w^2.5) + max(softplus(w)) + sum(max(exp(m), axis=1)) + sum(min(log(m), axis=0))
"""


def main():
    clitest.GRADC = sys.argv[1]
    rng = random.Random(5)
    row = [rng.gauss(0, 0.05) for _ in range(D)]        # every row of x the same
    rs = [rng.uniform(-1, 1) for _ in range(B)]          # r differs per row: grad p = H * mean(r)
    qs = [rng.uniform(-1, 1) for _ in range(H)]          # q differs per column: grad t = B * mean(q)
    wcol = [rng.gauss(0, 0.3) for _ in range(D)]         # every column of W the same
    weights = {
        "V": ("F32", [D, H], [rng.gauss(0, 0.3) for _ in range(D * H)]),
        "W": ("F32", [D, H], [wcol[i] for i in range(D) for _ in range(H)]),
        "q": ("F32", [H], qs), "p": ("F32", [1], [0.0]), "t": ("F32", [], [0.0]),
        "w": ("F32", [N], [0.7] * N), "m": ("F32", [9, 17], [0.7] * (9 * 17)),
    }
    with tempfile.TemporaryDirectory() as tmp:
        model = clitest.write(os.path.join(tmp, "ties.grad"), MODEL)
        wts = clitest.write_safetensors(os.path.join(tmp, "w.safetensors"), weights)
        data = clitest.write(os.path.join(tmp, "d.csv"),
                             "".join(",".join(map(repr, row + [rs[b]])) + "\n" for b in range(B)))
        out = os.path.join(tmp, "g.safetensors")
        for label, env, args in [("f32, 1 thread", {}, ["--threads", "1"]), ("f32, 2 threads", {}, ["--threads", "2"]),
                                 ("f64, 2 threads", {}, ["--threads", "2", "--dtype", "f64"]),
                                 ("interpreter", {"GRADC_BACKEND": "interp"}, ["--threads", "1"])]:
            saved = {k: os.environ.get(k) for k in env}
            os.environ.update(env)
            try:
                code, _, err = clitest.run("grad", model, "--weights", wts, "--data", data, "--out", out, *args)
                pcode, pout, perr = clitest.run("predict", model, "--weights", wts, "--data", data, *args[:2])
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            check(code == 0 and pcode == 0, f"{label}: gradc exits 0 ({err}{perr})")
            if code != 0 or pcode != 0:
                continue
            g = {k: v[2] for k, v in clitest.read_safetensors(out)[0].items()}

            def close(a, b):
                return abs(a - b) <= 1e-5 * max(1.0, abs(b))
            check(close(g["p"][0], H * sum(rs) / B), f"{label}: equal rows split max(axis=0): grad p {g['p'][0]} != {H * sum(rs) / B}")
            check(close(g["t"][0], B * sum(qs) / H), f"{label}: equal columns split max(axis=1): grad t {g['t'][0]} != {B * sum(qs) / H}")
            ew = math.exp(0.7)
            expect_w = (ew + 1 / 0.7 + (1 - math.tanh(0.7) ** 2) + math.cos(0.7) + 2.5 * 0.7 ** 1.5 + 1 / (1 + math.exp(-0.7))) / N
            check(len(set(g["w"])) == 1 and close(g["w"][0], expect_w), f"{label}: grad w of a constant param is not one even split: {sorted(set(g['w']))}")
            expect_m = ew / 17 + 1 / 0.7 / 9
            check(len(set(g["m"])) == 1 and close(g["m"][0], expect_m), f"{label}: grad m of a constant param is not one even split: {sorted(set(g['m']))}")
            lines = pout.split()
            check(lines[0] == "am" and lines[1:] == ["0"] * B, f"{label}: argmax over equal columns is not 0 in every row: {lines[1:]}")
    if failures:
        print(f"{len(failures)} failed")
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
