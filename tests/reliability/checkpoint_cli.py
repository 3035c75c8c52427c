#!/usr/bin/env python3
"""Checkpoints across float types and models (docs/reliability.md, "Exact resume").

Usage: checkpoint_cli.py PATH/TO/gradc

Checks: every file gradc train --save writes holds F32 tensors under the param and optimiser
state names (docs/language.md, "Weights and checkpoints"); a float64 run (--dtype f64) also
stores their exact values as F64 under `NAME.f64`, so 2 epochs equal 1 epoch plus 1 resumed
epoch, bit for bit; a float32 run reads such a file's F32 tensors, and a file without the copies
(a float32 run's) is converted on loading (F32 to float64 exactly); a file whose params are F64
(another tool's) is read (F64 to float32 rounded to nearest); a stale copy (the F32 tensor
rewritten) is ignored; eval and predict with a checkpoint whose tensors do not fit the model (a
param of another shape, a missing param) fail with `CKPT: error: ...` naming both model hashes,
and with the checkpoint of an edited model whose shapes agree they warn and go on; params named
`__step__` and `__epoch__` do not collide with the step and epoch counters (`gradc.step`,
`gradc.epoch`); a checkpoint resumed with another optimiser starts that optimiser's state and
count afresh, also when the two name their state alike (Adam and AdamW, RMSProp and Adagrad); a
header padded with NULs rather than spaces, or with spaces before its `{`, is an error, and so
is a name given twice in one object of the header; a run that writes CKPT removes the
CKPT.tmp.PID files that killed runs left (and no other file).
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

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support"))
import clitest  # noqa: E402
from clitest import check, read_safetensors, run, write, write_safetensors  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CLASSIFY = os.path.join(os.path.dirname(HERE), "runtime", "classify.grad")


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


STATES = ("W", "b", "W.m", "W.v", "b.m", "b.v")


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
    tensors, meta = read_safetensors(whole)
    check(meta.get("gradc.epoch") == "2", "f64 checkpoint metadata: %r" % meta)
    check(sorted(tensors) == sorted(STATES + tuple(n + ".f64" for n in STATES) + ("gradc.step", "gradc.epoch")),
          "f64 checkpoint tensors: %r" % sorted(tensors))
    for name in STATES:
        f32, f64 = tensors.get(name, ("", [], [])), tensors.get(name + ".f64", ("", [], []))
        check(f32[0] == "F32", "f64 checkpoint holds %s as F32 (docs/language.md): %r" % (name, f32))
        check(f64[0] == "F64" and f64[1] == f32[1], "f64 checkpoint holds %s.f64 as F64: %r" % (name, f64))
        check(f32[2] == list(array.array("f", f64[2])), "%s is %s.f64 rounded to nearest" % (name, name))
        check(f64[2] != f32[2], "%s.f64 holds more than float precision" % name)
    with open(whole, "rb") as a, open(half, "rb") as b:
        check(a.read() == b.read(), "f64: 2 epochs equal 1 epoch + 1 resumed epoch, bit for bit")

    # A float32 run reads the F32 tensors and ignores the copies (--epochs 0 saves what was loaded).
    narrowed = os.path.join(tmp, "narrowed.safetensors")
    rc, _, err = run("train", CLASSIFY, "--data", data, "--epochs", "0", "--init", whole,
                     "--save", narrowed)
    check(rc == 0, "an f64 checkpoint in an f32 run: %r" % err)
    small, meta32 = read_safetensors(narrowed)
    check(meta32.get("gradc.step") == meta.get("gradc.step"), "the counters carry over: %r" % meta32)
    check(sorted(small) == sorted(STATES + ("gradc.step", "gradc.epoch")),
          "an f32 checkpoint has no F64 copies: %r" % sorted(small))
    for name in STATES:
        check(small[name] == tensors[name], "an f32 run keeps %s: %r %r" % (name, small[name], tensors[name]))
    # A float64 run from a file without the copies: F32 converted exactly.
    widened = os.path.join(tmp, "widened.safetensors")
    rc, _, err = run(*base, "--epochs", "0", "--init", narrowed, "--save", widened)
    check(rc == 0, "an f32 checkpoint in an f64 run: %r" % err)
    wide, _ = read_safetensors(widened)
    for name in STATES:
        check(wide[name] == small[name] and wide[name + ".f64"] == ("F64",) + small[name][1:],
              "F32 -> float64 is exact for %s" % name)
    # A float64 run takes the exact copies: loaded and saved again, the file is the same.
    again = os.path.join(tmp, "again.safetensors")
    rc, _, err = run(*base, "--epochs", "0", "--init", whole, "--save", again)
    check(rc == 0, "an f64 checkpoint in an f64 run: %r" % err)
    with open(whole, "rb") as a, open(again, "rb") as b:
        check(a.read() == b.read(), "f64: loaded and saved again, bit for bit")
    # A copy that no longer rounds to its F32 tensor (another tool rewrote W) is ignored.
    stale = dict(tensors, W=("F32", [2, 3], [0.5] * 6))
    rc, _, err = run(*base, "--epochs", "0", "--init", write_safetensors(os.path.join(tmp, "stale.safetensors"),
                     stale, meta), "--save", again)
    check(rc == 0, "a stale copy: %r" % err)
    fresh, _ = read_safetensors(again)
    check(fresh["W.f64"] == ("F64", [2, 3], [0.5] * 6) and fresh["b.f64"] == tensors["b.f64"],
          "a stale copy is ignored, the others are used: %r" % (fresh["W.f64"],))

    # Params stored as F64 by another tool (no F32 tensors): converted.
    third = [0.1, -1 / 3, 2.0 / 7, 1e-9, -0.6, 1 / 9]
    foreign = write_safetensors(os.path.join(tmp, "foreign.safetensors"),
                            {"W": ("F64", [2, 3], third), "b": ("F64", [3], third[:3])})
    for dtype, want in (("f32", list(array.array("f", third))), ("f64", third)):
        out = os.path.join(tmp, "foreign_%s.safetensors" % dtype)
        rc, _, err = run("train", CLASSIFY, "--data", data, "--dtype", dtype, "--epochs", "0",
                         "--init", foreign, "--save", out)
        check(rc == 0, "F64 params in an %s run: %r" % (dtype, err))
        got, _ = read_safetensors(out)
        check(got["W"] == ("F32", [2, 3], list(array.array("f", third))), "F64 params as F32 (%s)" % dtype)
        if dtype == "f64":
            check(got["W.f64"] == ("F64", [2, 3], want), "F64 params read exactly by an f64 run")
    for cmd in ("eval", "predict"):
        rc, out, err = run(cmd, CLASSIFY, "--weights", whole, "--data", data)
        check(rc == 0 and out, "%s reads an f64 run's checkpoint: %r" % (cmd, err))
        rc, out, err = run(cmd, CLASSIFY, "--weights", foreign, "--data", data)
        check(rc == 0 and out, "%s reads F64 params: %r" % (cmd, err))
    # An F64 value beyond float32's range is an error in a float32 run (it became inf), and
    # is read by a float64 run.
    huge = write_safetensors(os.path.join(tmp, "huge.safetensors"),
                             {"W": ("F64", [2, 3], [0.5, 1e300, 0, 0, 0, 0]), "b": ("F64", [3], [0, 0, 0])})
    want = huge + ": error: tensor 'W' holds 1e+300 (element 1), too large for float32\n"
    for args in (("eval", CLASSIFY, "--weights", huge, "--data", data),
                 ("train", CLASSIFY, "--data", data, "--epochs", "0", "--init", huge)):
        rc, out, err = run(*args)
        check(rc == 1 and err == want, "%s with a value beyond float32: %r" % (args[0], err))
    rc, _, err = run("train", CLASSIFY, "--data", data, "--epochs", "0", "--dtype", "f64", "--init", huge)
    check(rc == 0, "a float64 run reads a value beyond float32: %r" % err)


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
            r"^\S*c.safetensors: error: no tensor for the model's param 'c' \(of shape \[3\]\)" + hashes, err.strip()),
            "%s, a missing param: %r" % (cmd, err))
        rc, out, err = run(cmd, edited, "--weights", ckpt, "--data", data)
        check(rc == 0 and out and err.strip().endswith(
            "c.safetensors: warning: the checkpoint was written for another version of the model "
            "(the shapes agree, so it is used)"), "%s, an edited model: %r" % (cmd, err))
        rc, out, err = run(cmd, CLASSIFY, "--weights", ckpt, "--data", data)
        check(rc == 0 and out and err == "", "%s, the same model: %r" % (cmd, err))
    # grad and gradcheck read the weights as eval does: an edited model is warned about too.
    grads = os.path.join(tmp, "g.safetensors")
    for cmd in (["grad", "--out", grads], ["gradcheck"]):
        for model, warned in ((edited, True), (CLASSIFY, False)):
            rc, out, err = run(cmd[0], model, "--weights", ckpt, "--data", data, *cmd[1:])
            check(rc == 0 and err == ("%s: warning: the checkpoint was written for another version of the model "
                                      "(the shapes agree, so it is used)\n" % ckpt if warned else ""),
                  "%s, %s model: %r" % (cmd[0], "an edited" if warned else "the same", err))


def counter_names(tmp):
    # The step and epoch counters are stored under names no param can have: a model whose
    # params are called __step__ and __epoch__ saves them and resumes from them like any other.
    data = write(os.path.join(tmp, "c.csv"), "x1,x2,y\n0,1,0\n1,0,1\n2,2,2\n1,1,0\n")
    src = (open(CLASSIFY).read().replace("param W:", "param __step__:").replace("param b:", "param __epoch__:")
           .replace("x @ W + b", "x @ __step__ + __epoch__"))
    check("x @ __step__ + __epoch__" in src, "renamed classify model: %r" % src)
    model = write(os.path.join(tmp, "counters.grad"), src)
    one, two, resumed = (os.path.join(tmp, n + ".safetensors") for n in ("one", "two", "resumed"))
    for out, epochs, init in ((one, "1", []), (two, "2", []), (resumed, "1", ["--init", one])):
        rc, _, err = run("train", model, "--data", data, "--epochs", epochs, "--save", out, *init)
        check(rc == 0, "train %s: %s" % (out, err))
    t, meta = read_safetensors(two)
    check(set(t) >= {"__step__", "__epoch__", "gradc.step", "gradc.epoch"}, "tensors: %r" % sorted(t))
    check(t["__step__"][1] == [2, 3] and t["__epoch__"][1] == [3] and t["gradc.step"][1:] == ([], [2.0])
          and t["gradc.epoch"][1:] == ([], [2.0]) and meta.get("gradc.step") == "2",
          "params and counters: %r %r" % (t.get("gradc.step"), meta))
    r, rmeta = read_safetensors(resumed)
    check(r["__step__"] == t["__step__"] and r["__epoch__"] == t["__epoch__"] and rmeta.get("gradc.step") == "2",
          "1 epoch + 1 resumed epoch equals 2 epochs")


def bad_counters(tmp):
    """A checkpoint's counters are whole numbers: metadata such as '12abc' or '1e3' (read as 12
    and 1 before), a 'gradc.optimizer_step' outside 0 .. step, and a counter tensor holding nan
    or 2.5 are errors naming the file."""
    data = write(os.path.join(tmp, "c.csv"), "x1,x2,y\n0,1,0\n1,0,1\n2,2,2\n1,1,0\n")
    ckpt = os.path.join(tmp, "c.safetensors")
    rc, _, err = run("train", CLASSIFY, "--data", data, "--save", ckpt)
    check(rc == 0, "classify trains: %s" % err)
    tensors, meta = read_safetensors(ckpt)
    bad = os.path.join(tmp, "bad.safetensors")
    for key, value in (("gradc.step", "12abc"), ("gradc.epoch", "1e3"), ("gradc.seed", "-1"), ("gradc.step", "-1")):
        write_safetensors(bad, tensors, dict(meta, **{key: value}))
        rc, out, err = run("train", CLASSIFY, "--data", data, "--init", bad, "--epochs", "0")
        check(rc == 1 and err == "%s: error: metadata '%s' is not a whole number: '%s'\n" % (bad, key, value),
              "metadata %s = %r: rc %d, err %r" % (key, value, rc, err))
    # The optimiser's count lies between 0 and the step (a negative one made Adam's step negative).
    for value in ("-2", str(int(meta["gradc.step"]) + 1)):
        write_safetensors(bad, tensors, dict(meta, **{"gradc.optimizer_step": value}))
        rc, out, err = run("train", CLASSIFY, "--data", data, "--init", bad, "--epochs", "0")
        want = "%s: error: metadata 'gradc.optimizer_step' %s is not between 0 and 'gradc.step' %s\n" % (
            bad, value, meta["gradc.step"])
        check(rc == 1 and err == want, "optimizer_step %s: rc %d, err %r" % (value, rc, err))
    bare = {k: v for k, v in meta.items() if k not in ("gradc.step", "gradc.epoch", "gradc.batch")}
    for value, text in ((float("nan"), "nan"), (2.5, "2.5"), (-1.0, "-1")):
        write_safetensors(bad, dict(tensors, **{"gradc.step": ("F32", [], [value])}), bare)
        rc, out, err = run("train", CLASSIFY, "--data", data, "--init", bad, "--epochs", "0")
        check(rc == 1 and err == "%s: error: tensor 'gradc.step' is not a count: %s\n" % (bad, text),
              "tensor gradc.step = %r: rc %d, err %r" % (value, rc, err))


def other_optimizer(tmp):
    """A checkpoint resumed with another optimiser: that optimiser's state starts at zero and its
    count t at 1 (Adam's bias corrections), as a new torch.optim optimiser's would, so resuming
    an SGD checkpoint with Adam equals starting Adam from the checkpoint's params alone; the
    count carries on from there when that run is resumed in turn."""
    model = os.path.join(os.path.dirname(HERE), "runtime", "rosenbrock.grad")
    sgd, adam, fresh = (os.path.join(tmp, n + ".safetensors") for n in ("sgd", "adam", "fresh"))
    params = os.path.join(tmp, "params.safetensors")
    rc, _, err = run("train", model, "--steps", "5", "--save", sgd)
    check(rc == 0, "sgd steps: %s" % err)
    tensors, _ = read_safetensors(sgd)
    write_safetensors(params, {"a": tensors["a"], "b": tensors["b"]})
    rc, _, err = run("train", model, "--optimizer", "adam", "--steps", "3", "--init", sgd, "--save", adam)
    check(rc == 0, "adam resumed from sgd: %s" % err)
    rc, _, err = run("train", model, "--optimizer", "adam", "--steps", "3", "--init", params, "--save", fresh)
    check(rc == 0, "adam from the params: %s" % err)
    for _ in range(2):
        a, ameta = read_safetensors(adam)
        f, fmeta = read_safetensors(fresh)
        check(all(a[k] == f[k] for k in ("a", "b", "a.m", "a.v", "b.m", "b.v")),
              "resumed with adam equals adam from the params: %r %r" % (a, f))
        check(ameta.get("gradc.optimizer_step") == fmeta.get("gradc.optimizer_step")
              and int(ameta.get("gradc.step", "-1")) == int(fmeta.get("gradc.step", "-1")) + 5,
              "counters: %r %r" % (ameta, fmeta))
        for ckpt in (adam, fresh):
            rc, _, err = run("train", model, "--optimizer", "adam", "--steps", "2", "--init", ckpt, "--save", ckpt)
            check(rc == 0, "adam resumed with adam: %s" % err)
    check(read_safetensors(fresh)[1].get("gradc.optimizer_step") == "7", "adam's count after 3 + 2 + 2 steps")
    # A checkpoint naming an optimiser that is none is corrupt: an error, not a silent switch
    # (which threw the state away).
    tensors, meta = read_safetensors(fresh)
    meta["gradc.optimizer"] = "foo"
    bad = write_safetensors(os.path.join(tmp, "bad_optimizer.safetensors"), tensors, meta)
    out = os.path.join(tmp, "out.safetensors")
    rc, _, err = run("train", model, "--optimizer", "adam", "--steps", "1", "--init", bad, "--save", out)
    check(rc == 1 and err == "%s: error: metadata 'gradc.optimizer' is 'foo', which is no optimiser (sgd, adam, adamw, "
          "rmsprop, adagrad)\n" % bad and not os.path.exists(out), "gradc.optimizer 'foo': %d %r" % (rc, err))


def kindred_optimizers(tmp):
    """Adam and AdamW name their buffers alike (`a.m`, `a.v`), and so do RMSProp and Adagrad
    (`a.sq`), yet one's state is no state of the other's: a checkpoint resumed with the other
    starts its state at zero and its count at 1, as after any switch, also when the run
    switches back to the model's own optimiser; the same optimiser resumes its state."""
    model = os.path.join(tmp, "m.grad")
    write(model, "param a = -1.5\nparam b = 2.0\nminimize (1 - a)^2 + 10 * (b - a^2)^2 with rmsprop(lr = 0.01)\n")
    first, ckpt, fresh, params = (os.path.join(tmp, n + ".safetensors") for n in ("first", "ckpt", "fresh", "params"))

    def train(init, save, steps, *flags):
        rc, _, err = run("train", model, "--steps", str(steps), "--init", init, "--save", save, *flags)
        check(rc == 0, "train %s from %s: %s" % (" ".join(flags), os.path.basename(init), err))
        return read_safetensors(save)

    def params_of(path):
        tensors, _ = read_safetensors(path)
        write_safetensors(params, {"a": tensors["a"], "b": tensors["b"]})
        return params

    # (the first run's flags, the second run's flags, the state they have in common)
    for one, other, names in ((["--optimizer", "adam"], ["--optimizer", "adamw"], ("a.m", "a.v", "b.m", "b.v")),
                              (["--optimizer", "adamw"], ["--optimizer", "adam"], ("a.m", "a.v", "b.m", "b.v")),
                              ([], ["--optimizer", "adagrad"], ("a.sq", "b.sq")),
                              (["--optimizer", "adagrad"], [], ("a.sq", "b.sq"))):
        rc, _, err = run("train", model, "--steps", "4", "--save", first, *one)
        check(rc == 0, "train %s: %s" % (" ".join(one), err))
        got, meta = train(first, ckpt, 3, *other)
        want, wmeta = train(params_of(first), fresh, 3, *other)
        what = "%s then %s" % (" ".join(one) or "rmsprop", " ".join(other) or "rmsprop")
        check(all(got[k] == want[k] for k in ("a", "b") + names),
              "%s equals %s from the params alone: %r %r" % (what, " ".join(other) or "rmsprop", got, want))
        check(meta.get("gradc.step") == "7" and meta.get("gradc.optimizer_step") == "3",
              "%s: counters %r" % (what, meta))
        # The same optimiser again resumes its state and count.
        got, meta = train(ckpt, ckpt, 2, *other)
        want, _ = train(fresh, fresh, 2, *other)
        check(all(got[k] == want[k] for k in ("a", "b") + names) and meta.get("gradc.optimizer_step") == "5",
              "%s, resumed with %s again: %r %r %r" % (what, " ".join(other) or "rmsprop", got, want, meta))

    # Part of a state is none either: a checkpoint that holds Adagrad's `a.sq` and does not
    # say whose it is (a file of an older gradc), resumed by RMSProp with momentum (`a.sq`
    # and `a.mom`), starts RMSProp's whole state afresh, not its `a.sq` from Adagrad's.
    write(model, "param a = -1.5\nparam b = 2.0\nminimize (1 - a)^2 + 10 * (b - a^2)^2 with rmsprop(lr = 0.01, momentum = 0.5)\n")
    rc, _, err = run("train", model, "--steps", "4", "--save", first, "--optimizer", "adagrad")
    check(rc == 0, "train --optimizer adagrad: %s" % err)
    tensors, meta = read_safetensors(first)
    check(meta.pop("gradc.optimizer", None) == "adagrad", "the checkpoint names its optimiser: %r" % meta)
    write_safetensors(first, tensors, meta)
    got, meta = train(first, ckpt, 3)
    want, _ = train(params_of(first), fresh, 3)
    check(all(got[k] == want[k] for k in ("a", "b", "a.sq", "a.mom", "b.sq", "b.mom"))
          and meta.get("gradc.optimizer_step") == "3",
          "adagrad's a.sq without its name, then rmsprop with momentum: %r %r %r" % (got, want, meta))


def nan_weights(tmp):
    """NaN weights load (as torch.load takes them); eval reports `nan`, never `-nan` (the
    sign bit of x86's NaN from sqrt(-1)), as Python prints it, and JSON null."""
    model = os.path.join(tmp, "m.grad")
    with open(model, "w") as f:
        f.write("param a = 1\nmetric r = sqrt(a)\nminimize sqrt(a) + a\n")
    weights = os.path.join(tmp, "w.safetensors")
    for value in (-1.0, float("nan")):
        write_safetensors(weights, {"a": ("F32", [], [value])})
        rc, out, err = run("eval", model, "--weights", weights)
        check(rc == 0 and out == "loss nan\nr nan\n", "eval with a = %r: rc %d, out %r, err %r" % (value, rc, out, err))
        rc, out, err = run("eval", model, "--weights", weights, "--json")
        check(rc == 0 and out == '{"loss":null,"r":null}\n', "eval --json with a = %r: %r" % (value, out))
    # A NaN metric (the loss stays finite, so training goes on) and a NaN output: `nan` in
    # train's epoch line, its --metrics file and predict's CSV too.
    model = os.path.join(tmp, "d.grad")
    with open(model, "w") as f:
        f.write("dim B\ninput x: [B, 1]\nparam a = 1\nmetric r = sqrt(mean(x) - 10)\n"
                "output o = sqrt(x - 10)\nminimize mean(x * a)\n")
    data, metrics = os.path.join(tmp, "d.csv"), os.path.join(tmp, "metrics.csv")
    with open(data, "w") as f:
        f.write("1\n2\n")
    rc, out, err = run("train", model, "--data", data, "--val", data, "--save", weights, "--metrics", metrics)
    check(rc == 0 and "  r nan  " in out and "val_r nan" in out and "-nan" not in out,
          "train with a NaN metric: rc %d, out %r, err %r" % (rc, out, err))
    with open(metrics) as f:
        rows = f.read().splitlines()
    check(len(rows) == 2 and rows[1].split(",")[3] == "nan" and rows[1].split(",")[5] == "nan",
          "--metrics with a NaN metric: %r" % rows)
    rc, out, err = run("predict", model, "--weights", weights, "--data", data)
    check(rc == 0 and out == "o\nnan\nnan\n", "predict with a NaN output: rc %d, out %r, err %r" % (rc, out, err))


def padded_header(tmp):
    """A safetensors header may be padded with spaces (JSON white space) after its JSON
    object; NUL padding, any other byte after the object, or white space before it is a
    damaged file: one line `FILE: error: ...`."""
    model = os.path.join(tmp, "m.grad")
    write(model, "param a = 1\nminimize a * a\n")
    text = json.dumps({"a": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}}).encode()
    # The whole message: it names the byte, and the padding JSON allows (not spaces only).
    nul = ("the safetensors header holds a NUL byte (at byte %d of the file); it may be padded with white "
           "space only (spaces, tabs, line breaks)\n" % (8 + len(text)))
    for pad, want in ((b" ", None), (b"\n", None), (b"\0", nul),
                      (b"x", "the safetensors header is not valid JSON")):
        header = text + pad * (8 - len(text) % 8)
        weights = os.path.join(tmp, "w.safetensors")
        with open(weights, "wb") as f:
            f.write(struct.pack("<Q", len(header)) + header + array.array("f", [2.0]).tobytes())
        for cmd in (["eval", model, "--weights", weights], ["train", model, "--init", weights, "--steps", "1"]):
            rc, out, err = run(*cmd)
            if want is None:
                check(rc == 0 and err == "", "%s, header padded with %r: rc %d, err %r" % (cmd[0], pad, rc, err))
            else:
                check(rc == 1 and err.startswith("%s: error: %s" % (weights, want)) and err.count("\n") == 1,
                      "%s, header padded with %r: rc %d, err %r" % (cmd[0], pad, rc, err))
    # The header begins with its object's `{`: white space goes after it, never before (the
    # safetensors library refuses that as InvalidHeaderStart).
    for lead in (b" ", b"\n", b"\t", b"\r\n", b"        "):
        header = lead + text
        header += b" " * ((8 - len(header) % 8) % 8)
        weights = os.path.join(tmp, "w.safetensors")
        with open(weights, "wb") as f:
            f.write(struct.pack("<Q", len(header)) + header + array.array("f", [2.0]).tobytes())
        for cmd in (["eval", model, "--weights", weights], ["train", model, "--init", weights, "--steps", "1"]):
            rc, out, err = run(*cmd)
            check(rc == 1 and err == "%s: error: the safetensors header begins with white space; it must begin "
                  "with '{' (spaces may only pad it after the JSON object)\n" % weights,
                  "%s, header after %r: rc %d, err %r" % (cmd[0], lead, rc, err))


def raw_weights(path, header, data):
    """A safetensors file of the header text as given (padded with spaces) and the data bytes."""
    header = header.encode()
    header += b" " * ((8 - len(header) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + data)
    return path


def duplicate_names(tmp):
    """A name given twice in one object of the header (two tensors 'a', a tensor with two
    dtypes, two __metadata__) is an error naming it, as the safetensors library refuses it;
    the JSON reader would keep the last one silently."""
    model = write(os.path.join(tmp, "m.grad"), "param a = 1\nminimize a * a\n")
    entry = '{"dtype": "F32", "shape": [], "data_offsets": [0, 4]}'
    two = array.array("f", [2.0]).tobytes()
    for header, want in (
            ('{"a": %s, "a": %s}' % (entry, entry), "the safetensors header holds two tensors named 'a'"),
            ('{"a": {"dtype": "F64", "dtype": "F32", "shape": [], "data_offsets": [0, 4]}}',
             "tensor 'a' names 'dtype' twice in the safetensors header"),
            ('{"__metadata__": {"k": "1"}, "a": %s, "__metadata__": {"k": "2"}}' % entry,
             "the safetensors header holds __metadata__ twice"),
            ('{"__metadata__": {"k": "1", "k": "2"}, "a": %s}' % entry,
             "__metadata__ names 'k' twice in the safetensors header")):
        weights = raw_weights(os.path.join(tmp, "w.safetensors"), header, two)
        for cmd in (["eval", model, "--weights", weights], ["train", model, "--init", weights, "--steps", "1"]):
            rc, out, err = run(*cmd)
            check(rc == 1 and err == "%s: error: %s\n" % (weights, want),
                  "%s, header %s: rc %d, err %r" % (cmd[0], header, rc, err))
    # The same name in two tensors' entries is no duplicate.
    weights = raw_weights(os.path.join(tmp, "w.safetensors"), '{"__metadata__": {"dtype": "x"}, "a": %s}' % entry, two)
    rc, out, err = run("eval", model, "--weights", weights)
    check(rc == 0 and out == "loss 4\n" and err == "", "distinct names: rc %d, out %r, err %r" % (rc, out, err))


def stale_temps(tmp):
    # A run killed while it wrote its checkpoint (SIGKILL) left CKPT.tmp.PID; the next run that
    # writes CKPT removes such files of processes that are gone and untouched for a minute, and
    # no other file.
    data = blobs(os.path.join(tmp, "blobs.csv"), 30)
    ckpt = os.path.join(tmp, "ckpt.safetensors")
    gone = [subprocess.Popen(["true"]) for _ in range(2)]
    for p in gone:
        p.wait()
    dead, dead2 = gone[0].pid, gone[1].pid
    old = os.stat(data).st_mtime - 120
    files = {"%s.tmp.%d" % (ckpt, dead): (old, False),          # stale: removed
             "%s.tmp.%d" % (ckpt, dead2): (None, True),          # a dead process's, but just written
             "%s.tmp.%d" % (ckpt, os.getpid()): (old, True),     # a live process's
             "%s.tmp.%d.o" % (ckpt, dead): (old, True),          # not a temporary file of CKPT
             os.path.join(tmp, "other.safetensors.tmp.%d" % dead): (old, True)}
    for path, (mtime, _) in files.items():
        write(path, "half a checkpoint")
        if mtime is not None:
            os.utime(path, (mtime, mtime))
    rc, _, err = run("train", CLASSIFY, "--data", data, "--epochs", "1", "--save", ckpt)
    check(rc == 0, "train --save over stale temporary files: %d %r" % (rc, err))
    for path, (_, kept) in files.items():
        check(os.path.exists(path) == kept, "%s %s" % (os.path.basename(path), "kept" if kept else "removed"))
    check(sorted(os.listdir(tmp)) == sorted(["blobs.csv", "ckpt.safetensors"] +
                                            [os.path.basename(p) for p, (_, k) in files.items() if k]),
          "the folder holds %r" % sorted(os.listdir(tmp)))


def main():
    clitest.GRADC = sys.argv[1]
    for part in (float64_resume, other_model, counter_names, bad_counters, other_optimizer, kindred_optimizers,
                 nan_weights,
                 padded_header, duplicate_names, stale_temps):
        with tempfile.TemporaryDirectory() as tmp:
            part(tmp)
    if clitest.failures:
        print("%d failure(s)" % len(clitest.failures))
        return 1
    print("all checkpoint checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
