#!/usr/bin/env python3
"""Checkpoints across float types and models (docs/reliability.md, "Exact resume").

Usage: checkpoint_cli.py PATH/TO/gradc

Checks: a float64 run (--dtype f64) checkpoints its params and optimiser states as F64, and 2
epochs equal 1 epoch plus 1 resumed epoch, bit for bit; a checkpoint of the other float type
is converted on loading (F64 to float32 rounded to nearest, F32 to float64 exactly); eval and
predict with a checkpoint whose tensors do not fit the model (a param of another shape, a
missing param) fail with `CKPT: error: ...` naming both model hashes, and with the checkpoint
of an edited model whose shapes agree they warn and go on.
"""

import array
import json
import os
import random
import re
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CLASSIFY = os.path.join(os.path.dirname(HERE), "runtime", "classify.grad")

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def run(*args):
    p = subprocess.run([GRADC, *args], capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def blobs(path, rows):
    """Three noisy clusters of 2-d points, labels 0..2 (classify.grad's data)."""
    rng = random.Random(7)
    centres = [(0, 3), (3, -2), (-3, -2)]
    lines = ["x1,x2,y"]
    for i in range(rows):
        c = i % 3
        lines.append("%.4f,%.4f,%d" % (centres[c][0] + rng.gauss(0, 1.5),
                                       centres[c][1] + rng.gauss(0, 1.5), c))
    return write(path, "\n".join(lines) + "\n")


def read_tensors(path):
    """{name: (dtype, values)} of a safetensors file, and its metadata."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        a, b = info["data_offsets"]
        code = {"F32": "f", "F64": "d"}[info["dtype"]]
        out[name] = (info["dtype"], list(array.array(code, blob[8 + n + a:8 + n + b])))
    return out, meta


def float64_resume(tmp):
    data = blobs(os.path.join(tmp, "blobs.csv"), 300)
    base = ["train", CLASSIFY, "--data", data, "--batch-size", "16", "--seed", "3", "--dtype", "f64"]
    whole = os.path.join(tmp, "whole.safetensors")
    half = os.path.join(tmp, "half.safetensors")
    rc, _, err = run(*base, "--epochs", "2", "--save", whole)
    check(rc == 0, "f64, 2 epochs: %r" % err)
    rc, _, err = run(*base, "--epochs", "1", "--save", half)
    check(rc == 0, "f64, 1 epoch: %r" % err)
    rc, _, err = run(*base, "--epochs", "1", "--init", half, "--save", half)
    check(rc == 0, "f64, 1 resumed epoch: %r" % err)
    tensors, meta = read_tensors(whole)
    check(meta.get("gradc.epoch") == "2", "f64 checkpoint metadata: %r" % meta)
    for name in ("W", "b", "W.m", "W.v", "b.m", "b.v"):
        check(tensors.get(name, ("",))[0] == "F64",
              "f64 checkpoint holds %s as F64: %r" % (name, tensors.get(name)))
    with open(whole, "rb") as a, open(half, "rb") as b:
        check(a.read() == b.read(), "f64: 2 epochs equal 1 epoch + 1 resumed epoch, bit for bit")

    # The other float type: loaded and converted (--epochs 0 saves what was loaded).
    narrowed = os.path.join(tmp, "narrowed.safetensors")
    rc, _, err = run("train", CLASSIFY, "--data", data, "--epochs", "0", "--init", whole,
                     "--save", narrowed)
    check(rc == 0, "an f64 checkpoint in an f32 run: %r" % err)
    small, meta32 = read_tensors(narrowed)
    check(meta32.get("gradc.step") == meta.get("gradc.step"), "the counters carry over: %r" % meta32)
    for name in ("W", "b", "W.m", "W.v"):
        want = list(array.array("f", tensors[name][1]))  # rounded to nearest
        check(small[name] == ("F32", want), "F64 -> float32 rounds %s: %r %r" % (name, small[name], want))
    widened = os.path.join(tmp, "widened.safetensors")
    rc, _, err = run(*base, "--epochs", "0", "--init", narrowed, "--save", widened)
    check(rc == 0, "an f32 checkpoint in an f64 run: %r" % err)
    wide, _ = read_tensors(widened)
    for name in ("W", "b", "W.m", "W.v"):
        check(wide[name] == ("F64", small[name][1]), "F32 -> float64 is exact for %s" % name)
    for cmd in ("eval", "predict"):
        rc, out, err = run(cmd, CLASSIFY, "--weights", whole, "--data", data)
        check(rc == 0 and out, "%s reads an F64 checkpoint: %r" % (cmd, err))


def other_model(tmp):
    data = write(os.path.join(tmp, "c.csv"), "x1,x2,y\n0,1,0\n1,0,1\n2,2,2\n1,1,0\n")
    ckpt = os.path.join(tmp, "c.safetensors")
    rc, _, err = run("train", CLASSIFY, "--data", data, "--save", ckpt)
    check(rc == 0, "classify trains: %s" % err)
    src = open(CLASSIFY).read()
    wider = write(os.path.join(tmp, "wider.grad"), src.replace("[2, 3]", "[2, 4]").replace("[3]", "[4]"))
    more = write(os.path.join(tmp, "more.grad"),
                 src.replace("z = x @ W + b", "z = x @ W + b + c")
                    .replace("param b:", "param c: [3] = zeros\nparam b:"))
    edited = write(os.path.join(tmp, "edited.grad"), src.replace("lr = 0.05", "lr = 0.04"))
    hashes = (r" \(the checkpoint was written for another model: model hash [0-9a-f]{16}, "
              r"this model's is [0-9a-f]{16}\)$")
    for cmd in ("eval", "predict"):
        rc, out, err = run(cmd, wider, "--weights", ckpt, "--data", data)
        check(rc == 1 and out == "" and re.match(
            r"^\S*c.safetensors: error: tensor 'W' has shape \[2, 3\], but the model's param 'W' "
            r"has shape \[2, 4\]" + hashes, err.strip()), "%s, other shapes: %r" % (cmd, err))
        rc, out, err = run(cmd, more, "--weights", ckpt, "--data", data)
        check(rc == 1 and out == "" and re.match(
            r"^\S*c.safetensors: error: no tensor 'c' for the model's param 'c'" + hashes, err.strip()),
            "%s, a missing param: %r" % (cmd, err))
        rc, out, err = run(cmd, edited, "--weights", ckpt, "--data", data)
        check(rc == 0 and out and err.strip().endswith(
            "c.safetensors: warning: the checkpoint was written for another version of the model "
            "(the shapes agree, so it is used)"), "%s, an edited model: %r" % (cmd, err))
        rc, out, err = run(cmd, CLASSIFY, "--weights", ckpt, "--data", data)
        check(rc == 0 and out and err == "", "%s, the same model: %r" % (cmd, err))


def main():
    global GRADC
    GRADC = sys.argv[1]
    for part in (float64_resume, other_model):
        with tempfile.TemporaryDirectory() as tmp:
            part(tmp)
    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    print("all checkpoint checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
