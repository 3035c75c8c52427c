#!/usr/bin/env python3
"""What `gradc train` guarantees when things go wrong (docs/reliability.md).

Usage: reliability_cli.py PATH/TO/gradc

Checks: the NaN trap names the first non-finite value's model line, column and source text,
the step and the batch rows, with and without --check-numerics, and leaves the last
checkpoint as it was; resuming with a changed model (other shapes, other hash) is an error,
and so are eval and predict with a checkpoint whose tensors do not fit (an edited model whose
shapes agree only warns); a float64 run checkpoints F64 and resumes bit for bit, and a
checkpoint of the other float type is converted;
a model whose buffers exceed --max-memory or the machine's memory is refused with the figure
before training; --max-memory takes K, M and G suffixes; a second SIGTERM exits at once and
leaves a checkpoint that loads.
"""

import array
import json
import os
import random
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
NAN_MODEL = os.path.join(HERE, "nan_log.grad")
CLASSIFY = os.path.join(ROOT, "tests", "runtime", "classify.grad")

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


def regression_data(path, rows, zero_at=None):
    lines = ["x,y"]
    for i in range(rows):
        x = 0.0 if i == zero_at else 0.5 + (i % 7) * 0.25
        lines.append("%g,%g" % (x, 0.3 * (i % 5)))
    return write(path, "\n".join(lines) + "\n")


def nan_trap(tmp):
    bad = regression_data(os.path.join(tmp, "bad.csv"), 64, zero_at=37)
    good = regression_data(os.path.join(tmp, "good.csv"), 64)
    want = ("nan_log.grad:9:5: error: log of 0 gives -inf in 'log(x)' at step 10, "
            "batch rows 36..39")
    for extra in ([], ["--check-numerics"]):
        rc, out, err = run("train", NAN_MODEL, "--data", bad, "--batch-size", "4", "--no-shuffle",
                           *extra)
        first = err.splitlines()[0] if err else ""
        check(rc == 1, "NaN trap %s: exit status %d" % (extra, rc))
        check(first.endswith(want), "NaN trap %s: got %r" % (extra, first))
        check("u = log(x) @ w + b" in err, "NaN trap %s: the source line is quoted: %r" % (extra, err))
    # Shuffled: the same value and line, the step where its batch came.
    rc, out, err = run("train", NAN_MODEL, "--data", bad, "--batch-size", "4", "--epochs", "2")
    check(rc == 1 and re.search(r"nan_log.grad:9:5: error: log of 0 gives -inf in 'log\(x\)' at step "
                                r"\d+, batch rows \d+\.\.\d+ of epoch 1's shuffled order", err),
          "NaN trap, shuffled: %r" % err)
    # A later epoch, resumed from a checkpoint: the checkpoint stays as it was.
    ckpt = os.path.join(tmp, "ckpt.safetensors")
    rc, _, err = run("train", NAN_MODEL, "--data", good, "--batch-size", "4", "--save", ckpt)
    check(rc == 0, "good epoch: %s" % err)
    with open(ckpt, "rb") as f:
        before = f.read()
    rc, _, err = run("train", NAN_MODEL, "--data", bad, "--batch-size", "4", "--no-shuffle",
                     "--init", ckpt, "--save", ckpt, "--epochs", "1")
    check(rc == 1 and "at step 26, batch rows 36..39" in err, "NaN after resume: %r" % err)
    with open(ckpt, "rb") as f:
        check(f.read() == before, "the checkpoint before the NaN is left as it was")
    check(sorted(os.listdir(tmp)) == ["bad.csv", "ckpt.safetensors", "good.csv"],
          "no temporary file is left: %s" % os.listdir(tmp))


def blobs(path, rows):
    """Three noisy clusters of 2-d points, labels 0..2 (classify.grad's data)."""
    rng = random.Random(7)
    centres = [(0, 3), (3, -2), (-3, -2)]
    lines = ["x1,x2,y"]
    for i in range(rows):
        c = i % 3
        lines.append("%.4f,%.4f,%d" % (centres[c][0] + rng.gauss(0, 1.5), centres[c][1] + rng.gauss(0, 1.5), c))
    return write(path, "\n".join(lines) + "\n")


def changed_model(tmp):
    data = write(os.path.join(tmp, "c.csv"), "x1,x2,y\n0,1,0\n1,0,1\n2,2,2\n1,1,0\n")
    ckpt = os.path.join(tmp, "c.safetensors")
    rc, _, err = run("train", CLASSIFY, "--data", data, "--save", ckpt)
    check(rc == 0, "classify trains: %s" % err)
    src = open(CLASSIFY).read()
    wider = write(os.path.join(tmp, "wider.grad"),
                  src.replace("[2, 3]", "[2, 4]").replace("[3]", "[4]").replace("int[B]", "int[B]"))
    rc, _, err = run("train", wider, "--data", data, "--init", ckpt)
    check(rc == 1 and "c.safetensors: error: tensor 'W' has shape [2, 3], but the model's param 'W' "
          "has shape [2, 4]" in err, "other shapes: %r" % err)
    edited = write(os.path.join(tmp, "edited.grad"), src.replace("lr = 0.05", "lr = 0.04"))
    rc, _, err = run("train", edited, "--data", data, "--init", ckpt)
    check(rc == 1 and re.search(r"c.safetensors: error: the checkpoint was written for another model "
                                r"\(model hash [0-9a-f]{16}, this model's is [0-9a-f]{16}\)", err),
          "other hash: %r" % err)
    rc, _, err = run("train", CLASSIFY, "--data", data, "--init", ckpt)
    check(rc == 0, "the same model resumes: %r" % err)
    # eval and predict: a checkpoint whose tensors do not fit the model is an error naming both
    # model hashes; one that fits but was written for an edited model file is used, with a warning.
    more = write(os.path.join(tmp, "more.grad"),
                 src.replace("z = x @ W + b", "z = x @ W + b + c").replace("param b:", "param c: [3] = zeros\nparam b:"))
    hashes = r" \(the checkpoint was written for another model: model hash [0-9a-f]{16}, this model's is [0-9a-f]{16}\)$"
    for cmd in ("eval", "predict"):
        rc, out, err = run(cmd, wider, "--weights", ckpt, "--data", data)
        check(rc == 1 and out == "" and re.match(
            r"^\S*c.safetensors: error: tensor 'W' has shape \[2, 3\], but the model's param 'W' has "
            r"shape \[2, 4\]" + hashes, err.strip()), "%s, other shapes: %r" % (cmd, err))
        rc, out, err = run(cmd, more, "--weights", ckpt, "--data", data)
        check(rc == 1 and out == "" and re.match(
            r"^\S*c.safetensors: error: no tensor 'c' for the model's param 'c'" + hashes, err.strip()),
            "%s, a missing param: %r" % (cmd, err))
        rc, out, err = run(cmd, edited, "--weights", ckpt, "--data", data)
        check(rc == 0 and out and err.strip().endswith(
            "c.safetensors: warning: the checkpoint was written for another version of the model "
            "(the shapes agree, so it is used)"), "%s, an edited model: %r" % (cmd, err))


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
    """A float64 run checkpoints F64 tensors and resumes bit for bit; a checkpoint of the other
    float type is converted (F32 to float64 exactly, F64 to float32 rounded to nearest)."""
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
        check(tensors.get(name, ("",))[0] == "F64", "f64 checkpoint holds %s as F64: %r" % (name, tensors.get(name)))
    with open(whole, "rb") as a, open(half, "rb") as b:
        check(a.read() == b.read(), "f64: 2 epochs equal 1 epoch + 1 resumed epoch, bit for bit")

    # The other float type: loaded and converted (--epochs 0 saves what was loaded).
    narrowed = os.path.join(tmp, "narrowed.safetensors")
    rc, _, err = run("train", CLASSIFY, "--data", data, "--epochs", "0", "--init", whole, "--save", narrowed)
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


def memory(tmp):
    data = write(os.path.join(tmp, "m.csv"), "x1,x2,y\n0,1,0\n1,0,1\n2,2,2\n1,1,0\n")
    rc, _, err = run("train", CLASSIFY, "--data", data, "--max-memory", "100")
    check(rc == 1 and re.search(r"classify.grad: error: the compiled program needs [0-9.]+ (bytes|KiB) "
                                r"\(\d+ bytes: .*\) for batches of 4 rows, more than --max-memory 100",
                                err), "--max-memory 100: %r" % err)
    for flag in ("4K", "64M", "2G", "1048576"):
        rc, _, err = run("train", CLASSIFY, "--data", data, "--max-memory", flag)
        check(rc == 0, "--max-memory %s: %r" % (flag, err))
    rc, _, err = run("train", CLASSIFY, "--data", data, "--max-memory", "12Q")
    check(rc == 1 and "--max-memory takes a number of bytes such as 512M or 2G, not '12Q'" in err,
          "--max-memory 12Q: %r" % err)
    for cmd in (["eval", "--weights", "w"], ["predict", "--weights", "w"], ["bench"]):
        rc, _, err = run(cmd[0], CLASSIFY, *cmd[1:], *([] if cmd[0] == "bench" else ["--data", data]),
                         "--max-memory", "10")
        check(rc == 1 and "more than --max-memory 10" in err, "%s --max-memory: %r" % (cmd[0], err))
    # 4 GiB of params with Adam's two states: more than any memory the test runs on... or refused by
    # the machine's figure.
    big = write(os.path.join(tmp, "big.grad"),
                "dim B\ninput x: [B, 65536]\ninput y: int[B]\nparam W: [65536, 65536] = zeros\n"
                "minimize cross_entropy(x @ W, y) with adam(lr = 0.01)\n")
    rc, _, err = run("bench", big, "--batch-size", "1", "--max-memory", "16G")
    check(rc == 1 and "GiB" in err and "more than --max-memory 16G" in err, "a huge model: %r" % err)
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if pages < 48 << 30:
        rc, _, err = run("bench", big, "--batch-size", "1")
        check(rc == 1 and "more than the machine's memory" in err, "a huge model, no flag: %r" % err)
    # A batch so large that rows x width overflows 64 bits is refused, not allocated.
    rc, _, err = run("bench", CLASSIFY, "--batch-size", str(2**62))
    check(rc == 1 and "more than the machine's memory" in err, "an enormous batch: %r" % err)


def second_signal(tmp):
    """A second SIGTERM exits at once (143); the checkpoint on disk stays whole and loads."""
    lines = ["x1,x2,y"] + ["%d,%d,%d" % (i % 5, (i * 7) % 5, i % 3) for i in range(3000)]
    data = write(os.path.join(tmp, "s.csv"), "\n".join(lines) + "\n")
    path = os.path.join(tmp, "s.safetensors")
    for gap in (0.0, 0.001, 0.01):
        p = subprocess.Popen([GRADC, "train", CLASSIFY, "--data", data, "--batch-size", "8",
                              "--epochs", "1000000", "--save", path],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(2)
        p.send_signal(signal.SIGTERM)
        time.sleep(gap)
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = None
        check(rc == 143, "two SIGTERMs %gs apart: exit %r" % (gap, rc))
        if os.path.exists(path):
            rc, _, err = run("eval", CLASSIFY, "--weights", path, "--data", data)
            check(rc == 0, "the checkpoint after two signals loads: %r" % err)


def main():
    global GRADC
    GRADC = sys.argv[1]
    for part in (nan_trap, changed_model, float64_resume, memory, second_signal):
        with tempfile.TemporaryDirectory() as tmp:
            part(tmp)
    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    print("all reliability checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
