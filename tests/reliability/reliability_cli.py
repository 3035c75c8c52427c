#!/usr/bin/env python3
"""What `gradc train` guarantees when things go wrong (docs/reliability.md).

Usage: reliability_cli.py PATH/TO/gradc

Checks: the NaN trap names the first non-finite value's model line, column and source text,
the step and the batch rows, with and without --check-numerics, and leaves the last
checkpoint as it was; a value masked before anything the step writes stops training only with
--check-numerics; resuming with a model of other shapes is an error, an edited model file (other
hash) takes the params with a warning, and the optimiser's state unless it names another optimiser;
a model whose buffers exceed --max-memory or the machine's memory is refused with the figure
before training (also when the batch dim is not the first dim declared); --max-memory takes
K, M and G suffixes; running out of memory anyway is one error line naming the model; a second
SIGTERM exits at once and leaves a checkpoint that loads.
"""

import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support"))
import clitest  # noqa: E402
from clitest import check, run, write  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
NAN_MODEL = os.path.join(HERE, "nan_log.grad")
MASKED_MODEL = os.path.join(HERE, "nan_masked.grad")
CLASSIFY = os.path.join(ROOT, "tests", "runtime", "classify.grad")


def regression_data(path, rows, zero_at=None):
    lines = ["x,y"]
    for i in range(rows):
        x = 0.0 if i == zero_at else 0.5 + (i % 7) * 0.25
        lines.append("%g,%g" % (x, 0.3 * (i % 5)))
    return write(path, "\n".join(lines) + "\n")


def nan_trap(tmp):
    bad = regression_data(os.path.join(tmp, "bad.csv"), 64, zero_at=37)
    good = regression_data(os.path.join(tmp, "good.csv"), 64)
    # The row with x = 0 is data row 37, line 39 of the file (after the header).
    want = ("nan_log.grad:9:5: error: log of 0 gives -inf in 'log(x)' at step 10, "
            "batch rows 36..39, in the row read from %s:39" % bad)
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
                                r"\d+, batch rows \d+\.\.\d+ of epoch 1's shuffled order, in the row read from "
                                + re.escape(bad) + r":39\n", err),
          "NaN trap, shuffled: %r" % err)
    # A later epoch, resumed from a checkpoint: the checkpoint stays as it was.
    ckpt = os.path.join(tmp, "ckpt.safetensors")
    rc, _, err = run("train", NAN_MODEL, "--data", good, "--batch-size", "4", "--save", ckpt)
    check(rc == 0, "good epoch: %s" % err)
    with open(ckpt, "rb") as f:
        before = f.read()
    rc, _, err = run("train", NAN_MODEL, "--data", bad, "--batch-size", "4", "--no-shuffle",
                     "--init", ckpt, "--save", ckpt, "--epochs", "1")
    check(rc == 1 and "at step 26, batch rows 36..39, in the row read from %s:39\n" % bad in err,
          "NaN after resume: %r" % err)
    with open(ckpt, "rb") as f:
        check(f.read() == before, "the checkpoint before the NaN is left as it was")
    check(sorted(os.listdir(tmp)) == ["bad.csv", "ckpt.safetensors", "good.csv"],
          "no temporary file is left: %s" % os.listdir(tmp))
    # A value that is not finite in every row of the batch comes from a param (here w = 1000),
    # not from a row: no data line is named.
    model = write(os.path.join(tmp, "allrows.grad"), "dim B\ninput x: [B, 1]\ninput y: [B, 1]\n"
                  "param w: [1, 1] = const(1000)\nminimize mean(square(exp(x @ w) - y))\n")
    rows = write(os.path.join(tmp, "allrows.csv"), "x,y\n0.5,1\n1,2\n0.75,0\n2,1\n")
    rc, _, err = run("train", model, "--data", rows, "--batch-size", "4", "--no-shuffle")
    check(rc == 1 and err.startswith("%s:5:22: error: exp of 500 overflows to inf in 'exp(x @ w)' at step 1, "
                                     "batch rows 0..3\n" % model), "every row non-finite: %r" % err)
    os.remove(model)
    os.remove(rows)


def masked_nan(tmp):
    """A value that becomes -inf inside the step but is masked by relu before anything the step
    writes: plain training goes on, --check-numerics stops at that value's line and step."""
    bad = regression_data(os.path.join(tmp, "bad.csv"), 64, zero_at=37)
    ckpt = os.path.join(tmp, "m.safetensors")
    rc, out, err = run("train", MASKED_MODEL, "--data", bad, "--batch-size", "4", "--no-shuffle",
                       "--save", ckpt)
    check(rc == 0, "masked -inf, plain train goes on: %d %r" % (rc, err))
    check(os.path.exists(ckpt), "masked -inf, plain train saves")
    os.remove(ckpt)
    want = ("nan_masked.grad:11:10: error: log of 0 gives -inf in 'log(x)' at step 10, "
            "batch rows 36..39, in the row read from %s:39" % bad)
    rc, out, err = run("train", MASKED_MODEL, "--data", bad, "--batch-size", "4", "--no-shuffle",
                       "--check-numerics", "--save", ckpt)
    first = err.splitlines()[0] if err else ""
    check(rc == 1, "masked -inf, --check-numerics: exit status %d" % rc)
    check(first.endswith(want), "masked -inf, --check-numerics: got %r" % first)
    check("h = relu(log(x))" in err, "masked -inf: the source line is quoted: %r" % err)
    check(not os.path.exists(ckpt), "masked -inf, --check-numerics: nothing is saved")
    # The reference interpreter as the backend (no check-mode flag: every written value is
    # scanned instead) still names a written non-finite value.
    env_rc = subprocess.run([clitest.GRADC, "train", NAN_MODEL, "--data", bad, "--batch-size", "4",
                             "--no-shuffle", "--check-numerics"], capture_output=True, text=True,
                            timeout=300, env=dict(os.environ, GRADC_BACKEND="interp"))
    check(env_rc.returncode == 1 and "nan_log.grad:9:5: error: log of 0 gives -inf in 'log(x)' at "
          "step 10, batch rows 36..39, in the row read from %s:39\n" % bad in env_rc.stderr,
          "interp backend: %r" % env_rc.stderr)


def times_zero(tmp):
    """0 * x is NaN where x is infinite, as in PyTorch: it is not simplified away."""
    model = write(os.path.join(tmp, "zero.grad"),
                  "model zero\nparam x: [2] = ones\nminimize sum(log(x - 1) * 0)\n")
    rc, out, err = run("train", model, "--steps", "1")
    check(rc == 1 and err.startswith("%s:3:14: error: log of 0 gives -inf in 'log(x - 1)' at step 1"
                                     % model), "0 * -inf: %d %r" % (rc, err))


def nonfinite_params(tmp):
    """A step whose loss is finite but whose update leaves a param NaN (a NaN gradient from a
    where() branch the loss does not take): the run stops at that step, even the last of an
    epoch or of the run, and saves nothing, instead of saving NaN weights with exit status 0."""
    model = write(os.path.join(tmp, "masked_grad.grad"),
                  "dim B\ninput x: [B, 1]\ninput y: [B, 1]\nparam w: [1, 1] = ones\nu = x @ w\n"
                  "minimize mean(square(where(u > 0, sqrt(u), u) - y)) with sgd(lr = 0.1)\n")
    data = write(os.path.join(tmp, "d.csv"), "x,y\n1,1\n2,1\n1,0\n3,1\n1,1\n2,0\n1,1\n-1,0\n")
    ckpt = os.path.join(tmp, "w.safetensors")
    rc, out, err = run("train", model, "--data", data, "--batch-size", "4", "--no-shuffle", "--save", ckpt)
    check(rc == 1 and re.match(re.escape(model) + r":6:35: error: sqrt of a negative number \(-0\.9\d*\) gives nan "
                               r"in 'sqrt\(u\)' at step 2, batch rows 4\.\.7, in the row read from "
                               + re.escape(data) + r":9\n", err),
          "a NaN param after the epoch's last step: %d %r" % (rc, err))
    check("epoch 1/1" not in out, "the failing epoch is not reported: %r" % out)
    check(not os.path.exists(ckpt), "a NaN param after the epoch's last step: nothing is saved")
    # The same NaN gradient in the first batch: the next step's loss is NaN, and the error names
    # the step that made w NaN, not the param "holding nan before" the next one.
    first = write(os.path.join(tmp, "first.csv"), "x,y\n1,1\n-1,0\n" + "1,1\n2,0\n" * 5)
    rc, out, err = run("train", model, "--data", first, "--batch-size", "4", "--no-shuffle", "--save", ckpt)
    check(rc == 1 and err.startswith("%s:6:35: error: sqrt of a negative number (-1) gives nan in 'sqrt(u)' "
                                     "at step 1, batch rows 0..3, in the row read from %s:3\n" % (model, first)),
          "a NaN param after a step inside the epoch: %d %r" % (rc, err))
    check(not os.path.exists(ckpt), "a NaN param after a step inside the epoch: nothing is saved")
    free = write(os.path.join(tmp, "masked_free.grad"),
                 "param a = 1\nminimize where(a > 2, sqrt(-a), square(a)) with sgd(lr = 0.1)\n")
    rc, out, err = run("train", free, "--steps", "1", "--save", ckpt)
    check(rc == 1 and err.startswith("%s:2:23: error: sqrt of a negative number (-1) gives nan in "
                                     "'sqrt(-a)' at step 1\n" % free),
          "without inputs, a NaN param after the run's last step: %d %r" % (rc, err))
    check(not os.path.exists(ckpt), "without inputs: nothing is saved")
    # A learning rate beyond float32's range: a bad flag, or an error at the optimiser.
    xor, xor_data = os.path.join(ROOT, "examples", "xor.grad"), os.path.join(ROOT, "examples", "data", "xor.csv")
    rc, _, err = run("train", xor, "--data", xor_data, "--lr", "1e300", "--save", ckpt)
    check(rc == 2 and err == "gradc: error: --lr 1e300 is too large for float32 (at most 3.4028235e+38): use "
          "a smaller one or --dtype f64 (see gradc train --help)\n", "--lr 1e300: %d %r" % (rc, err))
    rc, _, err = run("train", xor, "--data", xor_data, "--lr", "1e300", "--dtype", "f64", "--save", ckpt)
    check(rc == 0, "--lr 1e300 in float64: %d %r" % (rc, err))
    # (A number literal beyond float32's range is an error of the model itself; a constant
    # expression, folded in double precision, may still go beyond it.)
    big = write(os.path.join(tmp, "big_lr.grad"), open(xor).read().replace("lr = 0.5", "lr = 1e20 * 1e20"))
    rc, _, err = run("train", big, "--data", xor_data)
    check(rc == 1 and err.startswith("%s:21:20: error: the learning rate 1e+40 is too large for float32" % big),
          "lr = 1e20 * 1e20 in the model: %d %r" % (rc, err))
    # So are the optimiser's other settings and the params' values (as folded constants),
    # which made a constant loss (eps) or an error only at step 1 (the value).
    for name, text, want in [
            ("big_eps", "param a = 1\nminimize square(a) with adam(eps = 1e20 * 1e20)\n",
             ":2:25: error: the optimiser's eps 1e+40 is too large for float32 (at most 3.4028235e+38): "
             "use a smaller one or --dtype f64\n"),
            ("big_value", "param a = 1e20 * 1e20\nminimize square(a)\n",
             ":1:7: error: the value 1e+40 of param a is too large for float32 (at most 3.4028235e+38): "
             "use a smaller one or --dtype f64\n"),
            ("big_normal", "param w: [2] = normal(0, 1e20 * 1e20)\nminimize sum(square(w))\n",
             ":1:7: error: the initialiser argument 1e+40 of param w is too large for float32"),
    ]:
        path = write(os.path.join(tmp, name + ".grad"), text)
        saved = os.path.join(tmp, name + ".safetensors")
        rc, _, err = run("train", path, "--steps", "1", "--save", saved)
        check(rc == 1 and err.startswith(path + want) and not os.path.exists(saved),
              "%s in float32: %d %r" % (name, rc, err))
        rc, _, err = run("train", path, "--steps", "1", "--dtype", "f64")
        check(rc == 0 or "too large for float32" not in err, "%s in float64: %d %r" % (name, rc, err))
        # A float32 `compile` bakes the same settings and initial values into its code: the
        # same error (it wrote an object whose state started at inf).
        obj = os.path.join(tmp, name + ".o")
        rc, _, err = run("compile", path, "-o", obj)
        check(rc == 1 and err.startswith(path + want) and not os.path.exists(obj),
              "compile %s in float32: %d %r" % (name, rc, err))
        rc, _, err = run("compile", path, "-o", obj, "--dtype", "f64")
        check(rc == 0, "compile %s in float64: %d %r" % (name, rc, err))
        # Every command that compiles a float32 step with them: the same error (bench timed a
        # step whose state started at inf); the others, which do not take them as float32
        # (check, and gradcheck, which computes in float64), warn of it and go on.
        for command in (["bench"], ["inspect", "--stage", "llvm"], ["inspect", "--stage", "loops"]):
            rc, out, err = run(*command, path)
            check(rc == 1 and err.startswith(path + want) and out == "",
                  "%s %s in float32: %d %r" % (" ".join(command), name, rc, err))
            rc, _, err = run(*command, path, "--dtype", "f64")
            check(rc == 0 and err == "", "%s %s in float64: %d %r" % (" ".join(command), name, rc, err))
        for command in (["check"], ["gradcheck"], ["inspect", "--stage", "ir"]):
            rc, _, err = run(*command, path)
            check(rc == 0 and err.startswith(path + want.replace(": error: ", ": warning: ")),
                  "%s %s: %d %r" % (" ".join(command), name, rc, err))
    # The source text of a value of the minimize statement stops before `with`.
    rc, _, err = run("train", os.path.join(ROOT, "examples", "rosenbrock.grad"), "--lr", "1", "--steps", "100")
    check(rc == 1 and "gives inf in '* (b - a^2)^2' at step 3\n" in err, "rosenbrock diverges: %r" % err)


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
    # An edited model file (another hash) whose params fit takes the checkpoint's params and
    # counters with a warning. With the same optimiser (here Adam's learning rate edited) it
    # takes Adam's state too: the epoch equals the unedited model's resumed with --lr 0.04, bit
    # for bit. With another optimiser whose state has the same names (AdamW) the state starts
    # afresh: the epoch equals one from a file of the params alone.
    def tensors_of(path):
        return clitest.read_safetensors(path)[0]
    saved = tensors_of(ckpt)
    edited = write(os.path.join(tmp, "edited.grad"), src.replace("lr = 0.05", "lr = 0.04"))
    resumed, same = os.path.join(tmp, "resumed.safetensors"), os.path.join(tmp, "same.safetensors")
    rc, out, err = run("train", edited, "--data", data, "--init", ckpt, "--save", resumed)
    check(rc == 0 and err == "%s: warning: the checkpoint was written for another version of the model (the shapes "
          "agree, so it is used)\n" % ckpt and "epoch 2/2" in out, "an edited lr: %d %r %r" % (rc, err, out))
    rc, _, err = run("train", CLASSIFY, "--data", data, "--init", ckpt, "--save", same, "--lr", "0.04")
    got, want = tensors_of(resumed), tensors_of(same)
    check(rc == 0 and all(got[n] == want[n] for n in ("W", "b", "W.m", "W.v")) and got["W"] != saved["W"],
          "an edited lr resumes Adam's state: %r" % err)
    adamw = write(os.path.join(tmp, "adamw.grad"), src.replace("adam(", "adamw("))
    fresh = os.path.join(tmp, "fresh.safetensors")
    rc, out, err = run("train", adamw, "--data", data, "--init", ckpt, "--save", resumed, "--no-shuffle")
    check(rc == 0 and err == "%s: warning: the checkpoint was written for another version of the model (the shapes "
          "agree, so its params are used; the optimiser's state starts afresh)\n" % ckpt and "epoch 2/2" in out,
          "another optimiser: %d %r %r" % (rc, err, out))
    params = clitest.write_safetensors(os.path.join(tmp, "params.safetensors"), {n: saved[n] for n in ("W", "b")})
    rc, _, err = run("train", adamw, "--data", data, "--init", params, "--save", fresh, "--no-shuffle")
    got, want = tensors_of(resumed), tensors_of(fresh)
    check(rc == 0 and all(got[n] == want[n] for n in ("W", "b", "W.m", "W.v")) and got["W"] != saved["W"],
          "another optimiser: the params of the checkpoint, AdamW afresh: %r" % err)
    rc, _, err = run("train", CLASSIFY, "--data", data, "--init", ckpt)
    check(rc == 0 and err == "", "the same model resumes: %r" % err)


def memory(tmp):
    data = write(os.path.join(tmp, "m.csv"), "x1,x2,y\n0,1,0\n1,0,1\n2,2,2\n1,1,0\n")
    rc, _, err = run("train", CLASSIFY, "--data", data, "--max-memory", "100")
    check(rc == 1 and re.search(r"classify.grad: error: the compiled program needs [0-9.]+ (bytes|KiB) "
                                r"\(\d+ bytes: .*\) for batches of 4 rows, more than --max-memory 100",
                                err), "--max-memory 100: %r" % err)
    # A batch so large that the inputs alone overflow any memory: the work is not counted (its
    # size would overflow 64 bits), and the message says so rather than "work 0 bytes".
    rc, _, err = run("bench", CLASSIFY, "--batch-size", "9223372036854775807")
    check(rc == 1 and err.count("\n") == 1 and "needs more than " in err and "work not counted" in err
          and "work 0 bytes" not in err, "bench with a batch of 2^63-1 rows: %r" % err)
    for flag in ("4K", "64M", "2G", "1048576"):
        rc, _, err = run("train", CLASSIFY, "--data", data, "--max-memory", flag)
        check(rc == 0, "--max-memory %s: %r" % (flag, err))
    rc, _, err = run("train", CLASSIFY, "--data", data, "--max-memory", "12Q")
    check(rc == 2 and err.count("\n") == 1
          and "gradc: error: --max-memory: takes a number of bytes such as 512M or 2G, not '12Q'" in err,
          "--max-memory 12Q (a bad flag: exit 2): %r" % err)
    # The batch dim need not be the first dim declared (`dim T, B`): the work is counted for the
    # batch's rows all the same (it was counted for 1 row, so the model trained past the limit).
    rows = write(os.path.join(tmp, "wide.csv"), "a,b,c,d\n" + "1,2,3,4\n" * 600)
    needs = []
    for dims in ("B", "T, B"):
        wide = write(os.path.join(tmp, "wide.grad"), "dim %s\ninput x: [B, 4]\nparam W: [4, 4000] = ones\n"
                     "minimize mean(relu(x @ W))\n" % dims)
        rc, _, err = run("train", wide, "--data", rows, "--batch-size", "512", "--max-memory", "4M")
        m = re.search(r"needs .* \((\d+) bytes: .*\) for batches of 512 rows, more than --max-memory 4M", err)
        needs.append(m.group(1) if rc == 1 and m else err)
    check(needs[0] == needs[1] and needs[0].isdigit(), "dim T, B counts the memory of dim B: %r" % needs)
    # One row is "batches of 1 row" (it read "1 rows").
    one = write(os.path.join(tmp, "one.csv"), "x1,x2\n0,1\n")
    rc, _, err = run("predict", CLASSIFY, "--weights", "w", "--data", one, "--max-memory", "10")
    check(rc == 1 and re.search(r"\) for batches of 1 row, more than --max-memory 10\n$", err),
          "predict of one row, --max-memory 10: %r" % err)
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
    # gradcheck (float64 copies of the params, no --max-memory) out of address space: one line
    # naming the model, exit status 1. (AddressSanitizer's shadow memory does not fit in a
    # limited address space: not under it.)
    def limit_address_space():
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))
    ldd = subprocess.run(["ldd", clitest.GRADC], capture_output=True, text=True)
    if not re.search(r"lib(clang_rt\.)?asan", ldd.stdout):
        p = subprocess.run([clitest.GRADC, "gradcheck", big], capture_output=True, text=True,
                           preexec_fn=limit_address_space, timeout=300)
        check(p.returncode == 1 and p.stderr == big + ": error: out of memory: the model's tensors do not "
              "fit in this machine's memory\n", "gradcheck of a huge model: %r %r" % (p.returncode, p.stderr))
    # A batch so large that rows x width overflows 64 bits is refused, not allocated.
    rc, _, err = run("bench", CLASSIFY, "--batch-size", str(2**62))
    check(rc == 1 and "more than the machine's memory" in err, "an enormous batch: %r" % err)


def second_signal(tmp):
    """A second SIGTERM exits at once (143); the checkpoint on disk stays whole and loads."""
    lines = ["x1,x2,y"] + ["%d,%d,%d" % (i % 5, (i * 7) % 5, i % 3) for i in range(3000)]
    data = write(os.path.join(tmp, "s.csv"), "\n".join(lines) + "\n")
    path = os.path.join(tmp, "s.safetensors")
    for gap in (0.0, 0.001, 0.01):
        if os.path.exists(path):
            os.remove(path)
        p = subprocess.Popen([clitest.GRADC, "train", CLASSIFY, "--data", data, "--batch-size", "8",
                              "--epochs", "1000000", "--save", path],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # Training has begun (the signal handlers are in place) once the first epoch's
        # checkpoint is there: on a loaded machine compiling can take longer than any fixed wait.
        waited = 0.0
        while not os.path.exists(path) and waited < 120 and p.poll() is None:
            time.sleep(0.05)
            waited += 0.05
        time.sleep(0.2)
        p.send_signal(signal.SIGTERM)
        time.sleep(gap)
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = None
        check(rc == 143, "two SIGTERMs %gs apart: exit %r" % (gap, rc))
        check(os.path.exists(path), "a checkpoint was written before the signals")
        rc, _, err = run("eval", CLASSIFY, "--weights", path, "--data", data)
        check(rc == 0, "the checkpoint after two signals loads: %r" % err)


def main():
    clitest.GRADC = sys.argv[1]
    for part in (nan_trap, masked_nan, times_zero, nonfinite_params, changed_model, memory, second_signal):
        with tempfile.TemporaryDirectory() as tmp:
            part(tmp)
    if clitest.failures:
        print("%d failure(s)" % len(clitest.failures))
        return 1
    print("all reliability checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
