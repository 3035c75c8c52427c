#!/usr/bin/env python3
"""The command-line contract of `gradc train`, `eval`, `predict` and `bench`.

Usage: train_cli.py PATH/TO/gradc

Checks: every malformed CSV file of tests/data/ gives its one-line error with line and column
and exit status 1 (also through --val, eval and predict); the accepted oddities train;
training reaches its accuracy; the same seed gives the same weights; a run resumed from a
checkpoint (after whole epochs, or after --steps inside an epoch) ends with the weights of the
uninterrupted run, bit for bit; SIGINT / SIGTERM save a checkpoint and exit 130 / 143; the
metrics CSV; eval and predict output (also in float64, --dtype f64); --out to a FIFO writes into it; a replaced file keeps
its permissions and a write-protected one is refused; training without inputs; bench --json.
"""

import json
import os
import random
import re
import select
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support"))
import clitest  # noqa: E402
from clitest import check, read_safetensors, run  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(os.path.dirname(HERE), "data")
MODEL = os.path.join(HERE, "classify.grad")
ROSENBROCK = os.path.join(HERE, "rosenbrock.grad")


def make_blobs(path, rows, seed):
    """Three separable blobs around (0, 3), (3, -2), (-3, -2)."""
    rng = random.Random(seed)
    centres = [(0.0, 3.0), (3.0, -2.0), (-3.0, -2.0)]
    with open(path, "w") as f:
        f.write("x1,x2,label\n")
        for i in range(rows):
            c = i % 3
            x, y = centres[c]
            f.write("%.6g,%.6g,%d\n" % (x + rng.gauss(0, 0.8), y + rng.gauss(0, 0.8), c))


def quoted(text, col):
    """The row and caret that follow an error at column `col` of the one-line ASCII `text`."""
    return "%s\n%s^\n" % (text, " " * (col - 1))


def csv_errors():
    cases = {
        "too_few.csv": "3:4: error: expected 3 values, found 2\n" + quoted("3,4", 4),
        "too_many.csv": "2:7: error: expected 3 values, found 4\n" + quoted("1,2,0,5", 7),
        "trailing_comma.csv": "4:7: error: expected 3 values, found 4\n" + quoted("1,2,1,", 7),
        "not_a_number.csv": "3:3: error: 'abc' is not a number\n" + quoted("1,abc,1", 3),
        "nan.csv": "2:3: error: 'nan' is not a finite number\n" + quoted("1,nan,0", 3),
        "inf.csv": "2:1: error: '-inf' is not a finite number\n" + quoted("-inf,1,0", 1),
        "label_fraction.csv": "2:5: error: label 0.5 of 'y' is not a whole number\n" + quoted("1,2,0.5", 5),
        "label_range.csv": "2:5: error: label 3 of 'y' is outside the 3 classes 0..2\n" + quoted("1,2,3", 5),
        "label_negative.csv": "2:5: error: label -1 of 'y' is outside the 3 classes 0..2\n" + quoted("1,2,-1", 5),
        "empty.csv": " error: empty file (no data rows)\n",
        "header_only.csv": " error: no data rows (the file holds a header only)\n",
    }
    for name, tail in cases.items():
        path = os.path.join(DATA, name)
        want = "%s:%s" % (path, tail)
        rc, out, err = run("train", MODEL, "--data", path)
        check(rc == 1 and err == want and out == "",
              "train --data %s: rc %d, stderr %r, want %r" % (name, rc, err, want))
    good = os.path.join(DATA, "oddities.csv")
    bad = os.path.join(DATA, "label_range.csv")
    rc, out, err = run("train", MODEL, "--data", good, "--val", bad)
    check(rc == 1 and out == "" and err.startswith(bad + ":2:5: error:"),
          "a bad --val file is an error before training: rc %d, out %r, err %r" % (rc, out, err))
    rc, out, err = run("train", MODEL, "--data", good, "--epochs", "2", "--batch-size", "2")
    check(rc == 0 and out.count("\n") == 2 and "epoch 2/2" in out,
          "BOM, CRLF, blank lines, spaces, no final newline: rc %d, out %r, err %r" % (rc, out, err))
    rc, out, err = run("train", MODEL)
    check(rc == 1 and "give `gradc train` the data with --data FILE" in err,
          "a model with inputs needs --data: %r" % err)
    for flag in ("--save", "--metrics"):
        rc, out, err = run("train", MODEL, "--data", good, flag, "/nonexistent/dir/f")
        check(rc == 1 and out == "" and err.startswith("/nonexistent/dir/f: error: cannot write file"),
              "%s into a missing folder fails before training: %r %r" % (flag, out, err))
    for flag in ("--data", "--val"):
        rc, out, err = run("train", MODEL, "--data", good, flag, DATA)
        check(rc == 1 and err == DATA + ": error: is a directory, not a CSV file\n", "a folder as %s: %r" % (flag, err))
    rc, out, err = run("eval", MODEL, "--data", DATA, "--weights", good)
    check(rc == 1 and err == DATA + ": error: is a directory, not a CSV file\n", "a folder as eval --data: %r" % err)
    for args in (("train", MODEL, "--data", good, "--init", DATA), ("eval", MODEL, "--data", good, "--weights", DATA)):
        rc, out, err = run(*args)
        check(rc == 1 and err == DATA + ": error: is a directory, not a safetensors file\n",
              "a folder as %s: %r" % (args[-2], err))
    rc, out, err = run("check", DATA)
    check(rc == 1 and err == DATA + ": error: is a directory, not a model file\n", "a folder as the model: %r" % err)


def csv_error_quotes(tmp):
    """A CSV error, through every command that reads data, quotes its row with a caret under
    the column, as a model error quotes its line: a window of a long row, control characters
    and bytes that are not UTF-8 escaped."""
    bad = clitest.write(os.path.join(tmp, "bad.csv"), "a,b,y\n1,2,0\n1,x,1\n")
    want = bad + ":3:3: error: 'x' is not a number\n1,x,1\n  ^\n"
    good = os.path.join(DATA, "oddities.csv")
    weights = os.path.join(tmp, "quote_w.st")
    rc, _, err = run("train", MODEL, "--data", good, "--save", weights, "--steps", "1")
    check(rc == 0, "train for weights: %r" % err)
    for args in (("train", MODEL, "--data", bad), ("train", MODEL, "--data", good, "--val", bad),
                 ("eval", MODEL, "--weights", weights, "--data", bad),
                 ("predict", MODEL, "--weights", weights, "--data", bad),
                 ("grad", MODEL, "--weights", weights, "--data", bad, "--out", os.path.join(tmp, "quote_g.st")),
                 ("gradcheck", MODEL, "--weights", weights, "--data", bad)):
        rc, out, err = run(*args)
        check(rc == 1 and err == want, "%s: rc %d, err %r, want %r" % (" ".join(args[:1] + args[3:]), rc, err, want))
    # A row of 784 values: the error's row is a window around the column, `...` on each side.
    wide = os.path.join(tmp, "wide.grad")
    clitest.write(wide, "dim B\ninput x: [B, 784]\nparam w: [784] = zeros\nminimize mean((x * w) ^ 2)\n")
    cells = ["0.125"] * 784
    cells[500] = "0.5x"
    row = ",".join(cells)
    path = clitest.write(os.path.join(tmp, "wide.csv"), ",".join(["0.25"] * 784) + "\n" + row + "\n")
    rc, _, err = run("train", wide, "--data", path)
    lines = err.split("\n")
    col = len(",".join(cells[:500])) + 2
    ok = (rc == 1 and len(lines) == 4 and lines[3] == ""
          and lines[0] == "%s:2:%d: error: '0.5x' is not a number" % (path, col)
          and lines[1].startswith("...") and lines[1].endswith("...") and 60 <= len(lines[1]) <= 90
          and lines[1][3:-3] in row and lines[2].strip() == "^"
          and lines[1][len(lines[2]) - 1:].startswith("0.5x"))
    check(ok, "a 784-value row: a window around the column: %r" % err)
    # Control characters (an escape sequence, a CR) and bytes that are not UTF-8 are escaped
    # in the quoted row too: stderr stays plain text, the caret under the escape.
    # The cell in the message is escaped as in the quoted row.
    for raw, shown, col, msg in ((b"1,\x1b[31m,0\n", "1,\\x1b[31m,0", 3, "'\\x1b[31m' is not a number"),
                                 (b"1,2\r3,0\n", "1,2\\r3,0", 4, "a carriage return"),
                                 (b"1,caf\xe9,0\n", "1,caf\\xe9,0", 3, "'caf\\xe9' is not a number")):
        path = os.path.join(tmp, "ctl.csv")
        with open(path, "wb") as f:
            f.write(b"a,b,y\n" + raw)
        p = subprocess.run([clitest.GRADC, "train", MODEL, "--data", path], capture_output=True)
        err = p.stderr.decode("utf-8", "replace")
        lines = err.split("\n")
        ok = (p.returncode == 1 and len(lines) == 4 and lines[0].startswith(path + ":2:%d: error: %s" % (col, msg))
              and lines[1] == shown and lines[2] == " " * (col - 1) + "^"
              and not any((ord(c) < 32 and c != "\n") or c == "\ufffd" for c in err))
        check(ok, "row %r: the quote escapes it: %r" % (raw, err))
    # A label beyond any float's range is out of range, as 1e30 is, not "not whole".
    path = clitest.write(os.path.join(tmp, "huge_label.csv"), "x1,x2,y\n1,2,1e999\n")
    rc, _, err = run("train", MODEL, "--data", path)
    check(rc == 1 and err.startswith(path + ":2:5: error: label 1e999 of 'y' is outside the 3 classes 0..2\n"),
          "label 1e999: %r" % err)


def csv_first_line(tmp):
    """The first line is a header only when one of its cells is text: a first row of numbers
    with an empty cell or a trailing comma is a data row, and its error names line 1."""
    cases = [
        ("1,a,b\n0,1,0\n", None),
        (",x,y\n0,1,0\n", None),
        ("1,,0\n0,1,0\n", "1:3: error: missing value (column 2 of 3 is empty)"),
        ("1,2,0,\n0,1,0\n", "1:7: error: expected 3 values, found 4"),
        ("\ufeff 1 , 2\n", "1:7: error: expected 3 values, found 2"),
        ("nan,1,0\n", "1:1: error: 'nan' is not a finite number"),
        # A CR that does not end a line (classic Mac files) is an error, not a header.
        ("1,2,0\r0,1,0\r", "1:6: error: a carriage return (CR) inside a line; lines end with LF or CR LF"),
        ("x,y,z\n1,2\r,0\n", "2:4: error: a carriage return (CR) inside a line; lines end with LF or CR LF"),
    ]
    # The quoted row of each error: the BOM left out, a CR escaped.
    quotes = ["1,,0\n  ^\n", "1,2,0,\n      ^\n", " 1 , 2\n      ^\n", "nan,1,0\n^\n",
              "1,2,0\\r0,1,0\n     ^\n", "1,2\\r,0\n   ^\n"]
    for i, (text, tail) in enumerate(cases):
        path = os.path.join(tmp, "first%d.csv" % i)
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        rc, out, err = run("train", MODEL, "--data", path, "--steps", "1")
        if tail is None:
            check(rc == 0 and err == "", "first line %r is a header: rc %d, err %r" % (text, rc, err))
        else:
            want = "%s:%s\n%s" % (path, tail, quotes.pop(0))
            check(rc == 1 and err == want, "first line %r: rc %d, err %r, want %r" % (text, rc, err, want))


def train_and_resume(tmp):
    train = os.path.join(tmp, "train.csv")
    test = os.path.join(tmp, "test.csv")
    make_blobs(train, 300, 1)   # batch 32: 10 batches an epoch (the last of 12 rows)
    make_blobs(test, 90, 2)

    def ckpt(name):
        return os.path.join(tmp, name + ".safetensors")

    common = ["train", MODEL, "--data", train, "--seed", "7"]
    rc, out, err = run(*common, "--epochs", "4", "--val", test, "--save", ckpt("a"),
                       "--metrics", os.path.join(tmp, "m.csv"))
    check(rc == 0, "train: rc %d, err %r" % (rc, err))
    lines = out.splitlines()
    check(len(lines) == 4 and lines[0].startswith("epoch 1/4  loss ")
          and "  accuracy " in lines[0] and "  val_loss " in lines[0]
          and "  val_accuracy " in lines[0] and lines[0].endswith(" steps/s)"),
          "epoch lines: %r" % out)
    with open(os.path.join(tmp, "m.csv")) as f:
        rows = f.read().splitlines()
    check(rows[0] == "epoch,step,loss,accuracy,val_loss,val_accuracy", "metrics header %r" % rows[0])
    check(len(rows) == 5 and rows[4].startswith("4,40,"), "metrics rows %r" % rows)

    rc, out, err = run("eval", MODEL, "--weights", ckpt("a"), "--data", test)
    names = [l.split()[0] for l in out.splitlines()]
    check(rc == 0 and names == ["loss", "accuracy"], "eval: rc %d out %r err %r" % (rc, out, err))
    acc = float(out.splitlines()[1].split()[1])
    check(acc >= 0.95, "accuracy on separable blobs: %g" % acc)
    rc, out, err = run("eval", MODEL, "--weights", ckpt("a"), "--data", test, "--json")
    j = json.loads(out)
    check(list(j) == ["loss", "accuracy"] and j["accuracy"] == acc, "eval --json %r" % out)
    val_acc = float(rows[4].split(",")[5])
    check(abs(val_acc - acc) < 1e-6, "val_accuracy of the last epoch %g = eval's %g" % (val_acc, acc))

    rc, out, err = run("predict", MODEL, "--weights", ckpt("a"), "--data", test,
                       "--out", os.path.join(tmp, "p.csv"))
    with open(os.path.join(tmp, "p.csv")) as f:
        pred = f.read().splitlines()
    check(rc == 0 and out == "" and pred[0] == "p_0,p_1,p_2" and len(pred) == 91,
          "predict: rc %d, %r" % (rc, pred[:2]))
    check(all(abs(sum(map(float, l.split(","))) - 1) < 1e-5 for l in pred[1:]),
          "predicted probabilities sum to 1")
    # Features only (no label column) work for predict.
    feats = os.path.join(tmp, "features.csv")
    with open(test) as f, open(feats, "w") as g:
        for line in f:
            g.write(",".join(line.strip().split(",")[:2]) + "\n")
    rc, out, err = run("predict", MODEL, "--weights", ckpt("a"), "--data", feats)
    check(rc == 0 and out.splitlines() == pred, "predict from features only: rc %d err %r" % (rc, err))
    # Labels predict does not read are not checked against the classes (a test file with a
    # class the model lacks), only read past; eval, which reads them, refuses the same file.
    odd = os.path.join(tmp, "odd_labels.csv")
    with open(test) as f, open(odd, "w") as g:
        for i, line in enumerate(f):
            cells = line.strip().split(",")
            g.write(",".join(cells[:2] + (["7"] if i == 3 and cells[2].isdigit() else cells[2:])) + "\n")
    rc, out, err = run("predict", MODEL, "--weights", ckpt("a"), "--data", odd)
    check(rc == 0 and out.splitlines() == pred, "predict past a label outside the classes: rc %d err %r" % (rc, err))
    rc, out, err = run("eval", MODEL, "--weights", ckpt("a"), "--data", odd)
    check(rc == 1 and "error: label 7 of 'y' is outside the 3 classes 0..2" in err, "eval refuses it: %r" % err)
    # A row that fits neither layout names both widths.
    short = clitest.write(os.path.join(tmp, "short.csv"), "0.5\n")
    rc, out, err = run("predict", MODEL, "--weights", ckpt("a"), "--data", short)
    check(rc == 1 and err.startswith(short + ":1:4: error: expected 3 values, found 1 (or 2, only the inputs used: x)\n"),
          "predict, a row of neither width: rc %d err %r" % (rc, err))

    a, meta = read_safetensors(ckpt("a"))
    check(set(a) >= {"W", "b", "W.m", "W.v", "b.m", "b.v", "gradc.step", "gradc.epoch"},
          "checkpoint tensors %r" % sorted(a))
    check(a["gradc.step"][2] == [40.0] and a["gradc.epoch"][2] == [4.0], "step and epoch")
    check(meta.get("gradc.model") == "classify" and len(meta.get("gradc.model_hash", "")) == 16,
          "checkpoint metadata %r" % meta)

    # Same seed, same weights.
    rc, _, _ = run(*common, "--epochs", "4", "--save", ckpt("a2"))
    check(read_safetensors(ckpt("a2"))[0] == a, "the same seed gives the same weights")
    rc, _, _ = run("train", MODEL, "--data", train, "--seed", "8", "--epochs", "4", "--save", ckpt("s8"))
    check(read_safetensors(ckpt("s8"))[0]["W"] != a["W"], "another seed gives other weights")

    # 2 epochs + 2 resumed epochs = 4 epochs.
    run(*common, "--epochs", "2", "--save", ckpt("b"))
    rc, out, err = run(*common, "--init", ckpt("b"), "--epochs", "2", "--save", ckpt("b"))
    check(rc == 0 and out.splitlines()[0].startswith("epoch 3/4"), "resumed epochs: %r %r" % (out, err))
    check(read_safetensors(ckpt("b"))[0] == a, "2 + 2 resumed epochs equal 4 epochs bit for bit")
    # The checkpoint keeps the seed of the data order: resuming without --seed is exact too.
    run(*common, "--epochs", "2", "--save", ckpt("b"))
    run("train", MODEL, "--data", train, "--init", ckpt("b"), "--epochs", "2", "--save", ckpt("b"))
    check(read_safetensors(ckpt("b"))[0] == a, "resumed without --seed: the checkpoint's seed")

    # --steps 15 stops inside epoch 2; resuming with --epochs 3 finishes epoch 2 (the
    # unfinished epoch counts as one of the N) and runs epochs 3 and 4.
    rc, out, err = run(*common, "--epochs", "4", "--steps", "15", "--save", ckpt("c"))
    c, cmeta = read_safetensors(ckpt("c"))
    check(c["gradc.step"][2] == [15.0] and cmeta.get("gradc.batch") == "5", "--steps 15: %r" % cmeta)
    check(len(out.splitlines()) == 2, "--steps 15 prints epochs 1 and 2 (partial): %r" % out)
    rc, out, err = run(*common, "--init", ckpt("c"), "--epochs", "3", "--save", ckpt("c"))
    check(rc == 0 and out.splitlines()[0].startswith("epoch 2/4"), "resumed inside epoch 2: %r" % out)
    check(read_safetensors(ckpt("c"))[0] == a, "a run stopped inside an epoch resumes bit for bit")

    # Weights only (no optimiser state): a new run starts from them.
    rc, out, err = run("train", MODEL, "--data", train, "--init", os.path.join(DATA, "oddities.csv"))
    check(rc == 1 and "error" in err, "--init with a file that is not safetensors: %r" % err)

    # Signals: the current step finishes, a checkpoint is written, exit 130 / 143.
    for sig, status in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        path = ckpt("sig%d" % status)
        p = subprocess.Popen([clitest.GRADC, *common, "--epochs", "100000000", "--save", path],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # Training has begun (its signal handlers are in place) once the first epoch's line is
        # printed: on a loaded machine compiling can take longer than any fixed wait.
        ready, _, _ = select.select([p.stdout], [], [], 120)
        check(bool(ready) and p.stdout.readline().startswith(b"epoch"), "signal %d: training began" % sig)
        threading.Thread(target=p.stdout.read, daemon=True).start()  # keep the pipe drained
        time.sleep(0.5)
        p.send_signal(sig)
        try:
            rc = p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = None
        check(rc == status, "signal %d: exit %r, want %d" % (sig, rc, status))
        if os.path.exists(path):
            t, m = read_safetensors(path)
            check(t["gradc.step"][2][0] > 0 and int(m["gradc.step"]) > 0, "checkpoint after a signal")
            rc, out, err = run("eval", MODEL, "--weights", path, "--data", test)
            check(rc == 0, "the checkpoint written on a signal loads: %r" % err)
        else:
            check(False, "no checkpoint after signal %d" % sig)

    # `gradc train ... | head -1`: the reader goes away after the first line; the write of a
    # later epoch line stops training as a signal does, with the checkpoint saved, exit 141
    # (what the closed pipe's SIGPIPE gives) and nothing on stderr.
    path = ckpt("pipe")
    p = subprocess.Popen([clitest.GRADC, *common, "--epochs", "100000000", "--save", path],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = p.stdout.readline()
    p.stdout.close()
    try:
        rc = p.wait(timeout=120)
        err = p.stderr.read().decode()
    except subprocess.TimeoutExpired:
        p.kill()
        rc, err = None, ""
    check(first.startswith(b"epoch 1/") and rc == 141 and err == "",
          "closed pipe: first line %r, exit %r, stderr %r" % (first, rc, err))
    if os.path.exists(path):
        t, m = read_safetensors(path)
        check(int(m["gradc.step"]) >= 10, "checkpoint after a closed pipe: step %r" % m["gradc.step"])
        rc, out, err = run("eval", MODEL, "--weights", path, "--data", test)
        check(rc == 0, "the checkpoint written after a closed pipe loads: %r" % err)
    else:
        check(False, "no checkpoint after a closed pipe")


def predict_output_rows(tmp):
    """An output without the batch dim first is a user error at the output's expression (it
    was an internal error); two outputs giving the same CSV column are an error at the later
    one's name; outputs of a model with a fixed batch size are written."""
    data = clitest.write(os.path.join(tmp, "o.csv"), "1,2,3\n4,5,6\n")
    head = "dim B\ninput x: [B, 2]\ninput y: [B, 1]\nparam W: [2, 1] = ones\nz = x @ W\n"
    tail = "minimize mean(mse(z, y))\n"
    weights = os.path.join(tmp, "o.safetensors")
    rc, _, err = run("train", clitest.write(os.path.join(tmp, "o.grad"), head + tail), "--data", data,
                     "--save", weights)
    check(rc == 0, "train o.grad: %r" % err)
    for expr, shape in (("mean(z)", "[]"), ("transpose(z)", "[1, B]"), ("reshape(x, [-1])", "[2*B]"),
                        ("reshape(x, [-1, 1])", "[2*B, 1]")):
        model = clitest.write(os.path.join(tmp, "bad_output.grad"), head + "output t = %s\n" % expr + tail)
        out_path = os.path.join(tmp, "p.csv")
        rc, out, err = run("predict", model, "--weights", weights, "--data", data, "--out", out_path)
        want = ("%s:6:12: error: output t has shape %s, but `predict` writes one row per sample: its first "
                "dim must be the batch dim B and the others numbers" % (model, shape))
        check(rc == 1 and err.splitlines()[0] == want and not os.path.exists(out_path),
              "predict, output t = %s: rc %d, err %r" % (expr, rc, err))
    # An output that names a binding is reported at its `output` statement, where the name is
    # written, not at the binding's line (which the loss may use as well).
    model = clitest.write(os.path.join(tmp, "bad_output.grad"),
                          head + "s = mean(z)\nmetric m = s\noutput t = s\n" + tail)
    rc, out, err = run("predict", model, "--weights", weights, "--data", data)
    want = ("%s:8:12: error: output t has shape [], but `predict` writes one row per sample: its first "
            "dim must be the batch dim B and the others numbers" % model)
    check(rc == 1 and out == "" and err.splitlines()[:3] == [want, "output t = s", " " * 11 + "^"],
          "predict, output t = s of a scalar binding: rc %d, err %r" % (rc, err))
    # Two outputs may not give predict's CSV the same column: `p` of shape [B, 2] writes p_0 and
    # p_1, so an output named p_1 is an error at its name (it wrote the header p_0,p_1,p_1).
    for outs, line, col, name, other in (("output p = x\noutput p_1 = z\n", 7, 8, "p_1", "p"),
                                        ("output p_0 = z\noutput p = x\n", 7, 8, "p", "p_0"),
                                        ("output p = z\noutput p_0 = x\n", 0, 0, "", "")):
        model = clitest.write(os.path.join(tmp, "columns.grad"), head + outs + tail)
        out_path = os.path.join(tmp, "p.csv")
        rc, out, err = run("predict", model, "--weights", weights, "--data", data, "--out", out_path)
        if not line:  # `p` of shape [B, 1] is the column p: no clash with p_0, p_1
            check(rc == 0, "predict, %r: rc %d, err %r" % (outs, rc, err))
            continue
        col_name = "p_1" if name == "p_1" else "p_0"
        want = ("%s:%d:%d: error: output %s gives predict's CSV the column `%s`, which output %s gives too; "
                "rename one of them" % (model, line, col, name, col_name, other))
        check(rc == 1 and err.splitlines()[0] == want and not os.path.exists(out_path),
              "predict, %r: rc %d, err %r" % (outs, rc, err))
    fixed = clitest.write(os.path.join(tmp, "fixed.grad"),
                          "input x: [2, 2]\ninput y: [2, 1]\nparam W: [2, 1] = ones\nz = x @ W\n"
                          "output s = z\nminimize mean(mse(z, y))\n")
    ones = clitest.write_safetensors(os.path.join(tmp, "ones.safetensors"), {"W": ("F32", [2, 1], [1, 1])})
    rc, out, err = run("predict", fixed, "--weights", ones, "--data", data)
    check(rc == 0 and out == "s\n3\n9\n" and err == "", "predict with a fixed batch of 2: rc %d out %r err %r" % (rc, out, err))
    # `--out -` is standard output, as without --out: no file named `-`.
    rc, out, err = run("predict", fixed, "--weights", ones, "--data", data, "--out", "-", cwd=tmp)
    check(rc == 0 and out == "s\n3\n9\n" and err == "" and not os.path.exists(os.path.join(tmp, "-")),
          "predict --out -: rc %d out %r err %r" % (rc, out, err))


def batches(tmp):
    """Steps per epoch: the last, smaller batch is kept unless --drop-last (like DataLoader);
    --drop-last with fewer rows than one batch is an error instead of training on nothing;
    --steps stops inside an epoch; --epochs defaults to 1, but --steps N alone trains N steps
    over as many epochs as they take, so N steps equal N/2 + N/2 resumed ones bit for bit;
    a --save path that is a folder fails before training."""
    data = os.path.join(tmp, "b100.csv")
    make_blobs(data, 100, 5)
    ckpt = os.path.join(tmp, "steps.safetensors")
    for extra, steps, batch in (([], 4, 0), (["--drop-last"], 3, 0), (["--epochs", "2"], 8, 0),
                                (["--batch-size", "200"], 1, 0), (["--batch-size", "100", "--drop-last"], 1, 0),
                                (["--steps", "2"], 2, 2), (["--steps", "10"], 10, 2),
                                (["--epochs", "3", "--steps", "10"], 10, 2)):
        args = ["--batch-size", "32"] + extra if "--batch-size" not in extra else extra
        rc, out, err = run("train", MODEL, "--data", data, "--save", ckpt, *args)
        _, meta = read_safetensors(ckpt) if rc == 0 else ({}, {})
        check(rc == 0 and meta.get("gradc.step") == str(steps) and meta.get("gradc.batch") == str(batch),
              "train %r: rc %d, %r, want %d steps" % (extra, rc, meta, steps))
    # The last epoch, stopped inside by --steps, is validated too, like every whole one.
    metrics = os.path.join(tmp, "steps_metrics.csv")
    rc, out, err = run("train", MODEL, "--data", data, "--val", data, "--batch-size", "32", "--steps", "6",
                       "--metrics", metrics)
    lines = out.splitlines()
    with open(metrics) as f:
        rows = f.read().splitlines()
    check(rc == 0 and len(lines) == 2 and all("  val_loss " in l and "  val_accuracy " in l for l in lines)
          and len(rows) == 3 and rows[2].startswith("2,6,") and "" not in rows[2].split(","),
          "--val with --steps stopping inside epoch 2: rc %d, out %r, metrics %r" % (rc, out, rows))
    half, full = os.path.join(tmp, "half.safetensors"), os.path.join(tmp, "full.safetensors")
    run("train", MODEL, "--data", data, "--steps", "10", "--save", full)
    run("train", MODEL, "--data", data, "--steps", "5", "--save", half)
    rc, out, err = run("train", MODEL, "--data", data, "--steps", "5", "--init", half, "--save", half)
    check(rc == 0 and out.splitlines()[0].startswith("epoch 2  loss "), "resumed --steps 5: %r %r" % (out, err))
    with open(full, "rb") as a, open(half, "rb") as b:
        check(a.read() == b.read(), "--steps 10 equals --steps 5 and 5 resumed steps, bit for bit")
    # A checkpoint stopped at batch 5 of 13 (batches of 8), resumed with batches of 32 (4 an
    # epoch): epoch 1 has nothing left, so it is over, with a warning, and --epochs 1 trains
    # epoch 2 whole (it used to count the empty epoch 1 and train nothing).
    run("train", MODEL, "--data", data, "--batch-size", "8", "--steps", "5", "--save", half)
    rc, out, err = run("train", MODEL, "--data", data, "--epochs", "1", "--init", half, "--save", half)
    _, meta = read_safetensors(half)
    check(rc == 0 and out.startswith("epoch 2/2  loss ") and meta.get("gradc.step") == "9"
          and meta.get("gradc.epoch") == "2" and meta.get("gradc.batch") == "0"
          and err == "%s: warning: the checkpoint stopped after batch 5 of epoch 1, and the data has "
          "4 batches of 32: training goes on with epoch 2\n" % data,
          "resumed past the last batch: %r %r %r" % (out, err, meta))
    rc, out, err = run("train", MODEL, "--data", data, "--batch-size", "200", "--drop-last")
    check(rc == 1 and out == "" and err == data + ": error: --drop-last with --batch-size 200 drops every "
          "row: the file has 100 rows, fewer than one batch\n", "--drop-last, no full batch: %r" % err)
    rc, out, err = run("train", MODEL, "--data", data, "--save", tmp)
    check(rc == 1 and out == "" and err == tmp + ": error: cannot write file: Is a directory\n",
          "--save FOLDER: rc %d, out %r, err %r" % (rc, out, err))


def outputs_whole(tmp):
    """Files named by --out, --save and -o appear whole or not at all: a command that cannot
    write one of its files fails before writing any (compile wrote the object, then failed on
    the header)."""
    data = os.path.join(DATA, "oddities.csv")
    weights = os.path.join(tmp, "w.safetensors")
    rc, _, err = run("train", MODEL, "--data", data, "--save", weights, "--steps", "1")
    check(rc == 0, "train: %r" % err)
    obj = os.path.join(tmp, "m.o")
    for args, bad in ((["compile", MODEL, "-o", obj, "--header", "/nonexistent/m.h"], "/nonexistent/m.h"),
                      (["compile", MODEL, "-o", tmp, "--header", os.path.join(tmp, "m.h")], tmp),
                      (["predict", MODEL, "--weights", weights, "--data", data, "--out", "/nonexistent/p.csv"],
                       "/nonexistent/p.csv"),
                      (["grad", MODEL, "--weights", weights, "--data", data, "--out", tmp], tmp),
                      # A folder that is a regular file: the check let train run its epoch first.
                      (["train", MODEL, "--data", data, "--metrics", os.path.join(tmp, "m.csv"),
                        "--save", os.path.join(weights, "w2.safetensors")], os.path.join(weights, "w2.safetensors")),
                      (["predict", MODEL, "--weights", weights, "--data", data, "--out",
                        os.path.join(weights, "p.csv")], os.path.join(weights, "p.csv"))):
        rc, out, err = run(*args)
        check(rc == 1 and out == "" and err.startswith(bad + ": error: cannot write file: ")
              and err.count("\n") == 1, "%s into %s: rc %d, err %r" % (args[0], bad, rc, err))
    check(sorted(os.listdir(tmp)) == ["w.safetensors"], "nothing else is written: %r" % os.listdir(tmp))
    # A FIFO (like /dev/null or /dev/stdout, not a regular file) is written in place, not
    # replaced by a regular file.
    fifo = os.path.join(tmp, "fifo")
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    rc, out, err = run("predict", MODEL, "--weights", weights, "--data", data, "--out", fifo)
    try:
        piped = os.read(reader, 1 << 16).decode()
    except BlockingIOError:
        piped = ""
    os.close(reader)
    rc2, want, _ = run("predict", MODEL, "--weights", weights, "--data", data)
    check(rc == 0 and rc2 == 0 and piped == want and want.count("\n") > 1 and stat.S_ISFIFO(os.stat(fifo).st_mode),
          "predict --out FIFO: rc %d, err %r, read %r" % (rc, err, piped))
    os.unlink(fifo)
    # Standard output named as a file (/dev/stdout, /proc/self/fd/1) is written through, also
    # when it is a regular file: the rename replaced the link (or failed to).
    redirected = os.path.join(tmp, "stdout.csv")
    with open(redirected, "w") as f:
        p = subprocess.run([clitest.GRADC, "predict", MODEL, "--weights", weights, "--data", data,
                            "--out", "/proc/self/fd/1"], stdout=f, stderr=subprocess.PIPE, text=True, timeout=300)
    check(p.returncode == 0 and open(redirected).read() == want,
          "predict --out /proc/self/fd/1 into a file: rc %d, err %r" % (p.returncode, p.stderr))
    # Output lost on standard output (a full disk) is an error, not a success.
    if os.path.exists("/dev/full"):
        with open("/dev/full", "w") as f:
            p = subprocess.run([clitest.GRADC, "predict", MODEL, "--weights", weights, "--data", data],
                               stdout=f, stderr=subprocess.PIPE, text=True, timeout=300)
        check(p.returncode == 1 and p.stderr == "gradc: error: cannot write standard output: No space left on device\n",
              "predict > /dev/full: rc %d, err %r" % (p.returncode, p.stderr))
    # Through a symbolic link (a relative one, and a chain of two) the file it names is
    # replaced and the link stays; a dangling link creates its file.
    os.mkdir(os.path.join(tmp, "real"))
    os.symlink("real/p.csv", os.path.join(tmp, "p.csv"))
    os.symlink("p.csv", os.path.join(tmp, "p2.csv"))
    os.symlink("real/w2.safetensors", os.path.join(tmp, "latest.safetensors"))
    rc, _, err = run("predict", MODEL, "--weights", weights, "--data", data, "--out", os.path.join(tmp, "p2.csv"))
    rc2, _, err2 = run("train", MODEL, "--data", data, "--steps", "1", "--save",
                       os.path.join(tmp, "latest.safetensors"))
    check(rc == 0 and rc2 == 0 and os.path.islink(os.path.join(tmp, "p.csv"))
          and os.path.islink(os.path.join(tmp, "p2.csv"))
          and os.path.islink(os.path.join(tmp, "latest.safetensors"))
          and open(os.path.join(tmp, "real", "p.csv")).read() == want
          and sorted(os.listdir(os.path.join(tmp, "real"))) == ["p.csv", "w2.safetensors"]
          and read_safetensors(os.path.join(tmp, "real", "w2.safetensors"))[0] == read_safetensors(weights)[0],
          "outputs through symbolic links: %r %r %r" % (err, err2, os.listdir(os.path.join(tmp, "real"))))
    # A pipe named through /dev/fd (bash's `--out >(gzip > p.csv.gz)`): a link to "pipe:[N]",
    # which is written in place, not followed to a file of that name.
    r, w = os.pipe()
    p = subprocess.run([clitest.GRADC, "predict", MODEL, "--weights", weights, "--data", data,
                        "--out", "/dev/fd/%d" % w], pass_fds=(w,), capture_output=True, text=True, timeout=300)
    os.close(w)
    with os.fdopen(r) as f:
        piped = f.read()
    check(p.returncode == 0 and piped == want, "predict --out /dev/fd/N: rc %d, err %r" % (p.returncode, p.stderr))
    # Links that name each other fail before any work, as open() does, and stay links (the
    # rename replaced one of them with a file).
    os.symlink("loop2.csv", os.path.join(tmp, "loop1.csv"))
    os.symlink("loop1.csv", os.path.join(tmp, "loop2.csv"))
    for args in (["predict", MODEL, "--weights", weights, "--data", data, "--out"],
                 ["train", MODEL, "--data", data, "--save"]):
        loop = os.path.join(tmp, "loop1.csv")
        rc, out, err = run(*args, loop)
        check(rc == 1 and out == "" and err == loop + ": error: cannot write file: Too many levels of symbolic links\n"
              and os.path.islink(loop) and os.path.islink(os.path.join(tmp, "loop2.csv")),
              "%s into links that loop: rc %d, out %r, err %r" % (args[0], rc, out, err))
    for name in ("p.csv", "p2.csv", "latest.safetensors", "loop1.csv", "loop2.csv"):
        os.unlink(os.path.join(tmp, name))
    shutil.rmtree(os.path.join(tmp, "real"))
    # A name of 255 bytes can be written (its temporary file was 255 + 12 bytes long); a longer
    # one fails before training.
    longest = os.path.join(tmp, "p" * 255)
    rc, _, err = run("predict", MODEL, "--weights", weights, "--data", data, "--out", longest)
    check(rc == 0 and open(longest).read() == want, "--out NAME of 255 bytes: rc %d, err %r" % (rc, err))
    os.unlink(longest)
    rc, out, err = run("train", MODEL, "--data", data, "--save", longest + "x")
    check(rc == 1 and out == "" and err.endswith(": error: cannot write file: File name too long\n"),
          "--save NAME of 256 bytes: rc %d, out %r, err %r" % (rc, out, err))
    # A pipe gets each --metrics line once (the whole file was written again after each epoch).
    rc, out, err = run("train", MODEL, "--data", data, "--epochs", "3", "--metrics", "/dev/stdout")
    lines = out.splitlines()
    check(rc == 0 and len(lines) == 7 and lines[0] == "epoch,step,loss,accuracy"
          and [l.split(",")[0] for l in lines[2::2]] == ["1", "2", "3"] and "epoch,step" not in out[1:],
          "--metrics /dev/stdout: rc %d, out %r" % (rc, out))


def file_modes(tmp):
    """A file that --save, --out or --metrics replaces keeps its permissions (a checkpoint made
    private with chmod 600 became 644), a new one gets open()'s 0666 less the umask (as
    torch.save gives it), and a write-protected one is refused before any work, as open()
    refuses it (the rename replaced it)."""
    # Copies, which another user can read below.
    data, model = shutil.copy(os.path.join(DATA, "oddities.csv"), tmp), shutil.copy(MODEL, tmp)
    weights, preds, metrics = (os.path.join(tmp, n) for n in ("w.safetensors", "p.csv", "m.csv"))
    old = os.umask(0o002)
    try:
        rc, _, err = run("train", model, "--data", data, "--save", weights, "--metrics", metrics, "--steps", "1")
        rc2, _, err2 = run("predict", model, "--weights", weights, "--data", data, "--out", preds)
    finally:
        os.umask(old)
    modes = [stat.S_IMODE(os.stat(f).st_mode) for f in (weights, metrics, preds)]
    check(rc == 0 and rc2 == 0 and modes == [0o664] * 3, "new files under umask 002: %r %r %r" % (modes, err, err2))
    for f in (weights, metrics, preds):
        os.chmod(f, 0o600)
    rc, _, err = run("train", model, "--data", data, "--init", weights, "--save", weights, "--metrics", metrics,
                     "--steps", "1")
    rc2, _, err2 = run("predict", model, "--weights", weights, "--data", data, "--out", preds)
    modes = [stat.S_IMODE(os.stat(f).st_mode) for f in (weights, metrics, preds)]
    check(rc == 0 and rc2 == 0 and modes == [0o600] * 3, "replaced files keep mode 600: %r %r %r" % (modes, err, err2))
    # A write-protected file, for a user other than root (root may write it, as with open()).
    if os.geteuid() == 0 and shutil.which("setpriv"):
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        probe = subprocess.run(as_nobody + [clitest.GRADC, "--version"], capture_output=True, timeout=60)
        if probe.returncode != 0:
            return  # the gradc under test cannot be run by another user here
        os.chmod(tmp, 0o777)
        for f in (weights, preds):
            os.chmod(f, 0o444)
        before = open(preds).read()
        for args, name in ((["train", model, "--data", data, "--save", preds.replace("p.csv", "w2.safetensors"),
                             "--metrics", preds, "--steps", "1"], preds),
                           (["predict", model, "--weights", weights, "--data", data, "--out", preds], preds),
                           (["train", model, "--data", data, "--init", weights, "--save", weights], weights)):
            p = subprocess.run(as_nobody + [clitest.GRADC, *args], capture_output=True, text=True, timeout=300)
            check(p.returncode == 1 and p.stdout == ""
                  and p.stderr == name + ": error: cannot write file: Permission denied\n"
                  and open(preds).read() == before and stat.S_IMODE(os.stat(name).st_mode) == 0o444
                  and not os.path.exists(preds.replace("p.csv", "w2.safetensors")),
                  "%s over a write-protected file: rc %d, out %r, err %r" % (args[0], p.returncode, p.stdout, p.stderr))


def resumed_seed(tmp):
    """A run resumed from a checkpoint keeps its data order: a --seed that differs from the
    checkpoint's is not used, with a warning (it was ignored silently); the same seed, or none,
    gives no warning."""
    data = os.path.join(DATA, "oddities.csv")
    ck = os.path.join(tmp, "seed4.safetensors")
    rc, _, err = run("train", MODEL, "--data", data, "--steps", "1", "--seed", "4", "--save", ck)
    check(rc == 0, "train --seed 4: %r" % err)
    for flags, want in ((["--seed", "9"], ck + ": warning: --seed 9 is not used: a run resumed from a checkpoint "
                         "keeps its data order (seed 4)\n"), (["--seed", "4"], ""), ([], "")):
        rc, _, err = run("train", MODEL, "--data", data, "--steps", "1", "--init", ck, *flags)
        check(rc == 0 and err == want, "--init with %r: rc %d, err %r" % (flags, rc, err))


def clashing_files(tmp):
    """An output naming an input or another output is refused before anything is written
    (`compile m.grad -o m.grad` replaced the model by an object file); --init W --save W
    resumes in place."""
    data = os.path.join(DATA, "oddities.csv")
    model, weights, both = os.path.join(tmp, "m.grad"), os.path.join(tmp, "w.st"), os.path.join(tmp, "both")
    with open(MODEL) as f:
        source = f.read()
    clitest.write(model, source)
    os.mkdir(os.path.join(tmp, "sub"))
    os.symlink("both", os.path.join(tmp, "link.o"))
    rc, _, err = run("train", model, "--data", data, "--steps", "1", "--save", weights)
    check(rc == 0, "train: %r" % err)
    with open(weights, "rb") as f:
        saved = f.read()
    for args, msg in ((["compile", model, "-o", model], "-o '%s' is also MODEL" % model),
                      (["compile", model, "-o", both, "--header", both], "-o and --header name the same file"),
                      (["train", model, "--data", data, "--save", both, "--metrics", both],
                       "--save and --metrics name the same file"),
                      # Not existing yet, under two spellings (they were compared as `both` and
                      # /tmp/.../both), and through a dangling link.
                      (["train", model, "--data", data, "--save", "both", "--metrics", "./both"],
                       "--save and --metrics name the same file"),
                      (["train", model, "--data", data, "--save", "both", "--metrics", "sub/../both"],
                       "--save and --metrics name the same file"),
                      (["compile", model, "-o", "link.o", "--header", "both"], "-o and --header name the same file"),
                      (["train", model, "--data", data, "--init", weights, "--metrics", weights],
                       "--metrics '%s' is also --init" % weights),
                      (["grad", model, "--weights", weights, "--data", data, "--out", weights],
                       "--out '%s' is also --weights" % weights)):
        rc, out, err = run(*args, cwd=tmp)
        check(rc == 2 and err.startswith("gradc: error: " + msg) and err.count("\n") == 1
              and not os.path.exists(both), "%s: rc %d, err %r" % (args, rc, err))
        if os.path.exists(both):
            os.unlink(both)
    with open(model) as f, open(weights, "rb") as g:
        check(f.read() == source and g.read() == saved, "no file was written")
    os.unlink(os.path.join(tmp, "link.o"))
    os.rmdir(os.path.join(tmp, "sub"))
    rc, _, err = run("train", model, "--data", data, "--steps", "1", "--init", weights, "--save", weights)
    check(rc == 0, "--init W --save W: rc %d, err %r" % (rc, err))


def predict_features_errors(tmp):
    """predict reads a file of just the inputs its outputs need: an error further down such a
    file is reported where it is (it was 'expected 3 values, found 2' at the first row, as if
    the labels were missing)."""
    weights = os.path.join(tmp, "features.safetensors")
    rc, _, err = run("train", MODEL, "--data", clitest.write(os.path.join(tmp, "f.csv"), "1,2,0\n3,4,1\n"),
                     "--steps", "1", "--save", weights)
    check(rc == 0, "train for predict_features_errors: %r" % err)
    good = "x1,x2\n1,2\n3,4\n"
    for bad, want in (("5,abc\n", ":4:3: error: 'abc' is not a number"),
                      ("5\n", ":4:2: error: expected 2 values, found 1"),
                      ("5,6,7,8\n", ":4:5: error: expected 2 values, found 4")):
        data = clitest.write(os.path.join(tmp, "features.csv"), good + bad + "7,8\n")
        rc, out, err = run("predict", MODEL, "--weights", weights, "--data", data)
        check(rc == 1 and out == "" and err.startswith(data + want + "\n"),
              "predict, features only with %r on line 4: rc %d, err %r" % (bad, rc, err))
    # A file of every input with a short row is that row's error, as before.
    data = clitest.write(os.path.join(tmp, "features.csv"), "1,2,0\n3,4,1\n5,6\n")
    rc, out, err = run("predict", MODEL, "--weights", weights, "--data", data)
    check(rc == 1 and err.startswith(data + ":3:4: error: expected 3 values, found 2\n"),
          "predict, a short row in a file of every input: rc %d, err %r" % (rc, err))


def bad_flags():
    """A bad flag is one line `gradc: error: ...` and exit status 2; a learning rate must be a
    finite number >= 0 (like torch.optim), a file name not empty; every command that runs a
    compiled program takes --threads (compile from 1: its threads are fixed in the code it writes)."""
    data = os.path.join(DATA, "oddities.csv")
    cases = [
        (["train", MODEL, "--data"], "--data: 1 required TEXT missing"),
        (["train", MODEL, "--data", data, "--bogus"], "the following argument was not expected: --bogus"),
        # Arguments not expected are named in the order they were written (they read "3 --seed").
        (["predict", MODEL, "--weights", data, "--data", data, "--seed", "3"],
         "the following arguments were not expected: --seed 3 (see gradc predict --help)"),
        (["inspect", MODEL, MODEL, "--weights", "w.st"],
         "the following arguments were not expected: %s --weights w.st (see gradc inspect --help)" % MODEL),
        (["train", MODEL, "--data", data, "--batch-size", "0"], "--batch-size: takes a whole number >= 1, not '0'"),
        (["train", MODEL, "--data", data, "--epochs", "-1"], "--epochs: takes a whole number (0 or more), not '-1'"),
        (["train", MODEL, "--data", data, "--steps", "1.5"], "--steps: takes a whole number (0 or more), not '1.5'"),
        (["train", MODEL, "--data", data, "--optimizer", "lbfgs"], "--optimizer: lbfgs not in"),
        (["train", MODEL, "--data", data, "--seed", "-1"], "--seed: takes a whole number from 0 to 2^64-1, not '-1'"),
        (["gradcheck", MODEL, "--seed", "18446744073709551616"],
         "--seed: takes a whole number from 0 to 2^64-1, not '18446744073709551616'"),
        (["bench", MODEL, "--batch-size", "-3"], "--batch-size: takes a whole number >= 1, not '-3'"),
        (["eval", MODEL, "--data", data], "--weights is required"),
        (["inspect", MODEL, "--stage", "tokens"], "--stage: tokens not in"),
        (["train"], "MODEL is required"),
        (["train", ""], "MODEL: takes a file name, not ''"),
        (["train", MODEL, "--data", data, "--save", ""], "--save: takes a file name, not ''"),
        (["predict", MODEL, "--weights", data, "--data", data, "--out", ""], "--out: takes a file name, not ''"),
        (["compile", MODEL, "-o", ""], "-o: takes a file name, not ''"),
        (["eval", MODEL, "--weights", data, "--data", ""], "--data: takes a file name, not ''"),
        ([], "a command is required: check, inspect, train,"),
        (["trian", MODEL], "unknown command 'trian'; the commands are check, inspect, train, eval, predict, grad, "
         "gradcheck, bench, compile; did you mean `train`?"),
        # A flag one slip from the command's own is named.
        (["train", MODEL, "--data", data, "--epoch", "3"],
         "the following arguments were not expected: --epoch 3; did you mean `--epochs`? (see gradc train --help)"),
        (["--bogus"], "unknown option '--bogus'; a command is required: check,"),
        # A mistyped command is an error also when help or the version is asked of it (it
        # printed gradc's help and exited 0, as if the command had been understood).
        (["trian", "--help"], "unknown command 'trian'; the commands are check,"),
        (["trian", MODEL, "--version"], "unknown command 'trian'; the commands are check,"),
        (["", "-h"], "a command is required, not '': check,"),
        # A value holding a line break or an escape sequence is quoted with them escaped: the
        # error stays one line and the terminal as it was.
        (["train", MODEL, "--data", data, "--epochs", "1\x1b[2J\nx"],
         "--epochs: takes a whole number (0 or more), not '1\\x1b[2J\\nx'"),
        (["train", MODEL, "--data", data, "--bogus\x1b[31m\nx"],
         "the following argument was not expected: --bogus\\x1b[31m\\nx"),
        (["compile", MODEL, "-o", "m.o", "--cpu", "a\x1b[31m"], "--cpu takes a CPU name such as skylake, not 'a\\x1b[31m'"),
    ]
    for t in ("1025", "100000", "2147483648", "-1", "1.5"):
        for cmd in (["train", MODEL, "--data", data], ["bench", MODEL]):
            cases.append((cmd + ["--threads", t], "--threads: takes a whole number from 0 to 1024, not '%s'" % t))
        cases.append((["compile", MODEL, "-o", "m.o", "--threads", t],
                      "--threads: takes a whole number from 1 to 1024, not '%s'" % t))
    # compile's threads are fixed in the compiled code, for a machine not known when it is
    # compiled: 0 (all cores for the other commands) is refused, not taken as 1.
    for t in ("0", "00"):
        cases.append((["compile", MODEL, "-o", "m.o", "--threads", t],
                      "--threads: 0 (all cores) is not available for compile: the compiled step is split for a "
                      "number of threads fixed when it is compiled, and the machine that will run it is not "
                      "known; give the number of threads, from 1 to 1024"))
    for t in ("nan", "inf", "0", "-1", "abc"):
        cases.append((["train", MODEL, "--data", data, "--mpi-timeout", t],
                      "--mpi-timeout: takes a number of seconds > 0, not '%s'" % t))
    for lr in ("nan", "inf", "-0.1", "1e-3x"):
        cases.append((["train", MODEL, "--data", data, "--lr", lr],
                      "--lr: takes a learning rate, a number >= 0, not '%s'" % lr))
    for args, msg in cases:
        rc, out, err = run(*args)
        check(rc == 2 and out == "" and err.count("\n") == 1 and err.startswith("gradc: error: " + msg)
              and "\x1b" not in err, "bad flag %r: rc %d, err %r" % (args, rc, err))
    # C1 control characters (U+009B is a terminal's CSI, as ESC [ is) and bytes that are not
    # UTF-8, in a flag's value or a file name, are escaped as in a quoted line.
    enc = os.fsencode
    for args, want_rc, msg in (
            ([b"compile", enc(MODEL), b"-o", b"m.o", b"--cpu", b"sky\xc2\x9blake"], 2, "sky\\xc2\\x9blake"),
            ([b"train", enc(MODEL), b"--data", enc(data), b"--epochs", b"1\xe9"], 2,
             "gradc: error: --epochs: takes a whole number (0 or more), not '1\\xe9'"),
            ([b"check", enc(os.path.join(HERE, "no-such-caf")) + b"\xe9\xc2\x9b.grad"], 1,
             os.path.join(HERE, "no-such-caf") + "\\xe9\\xc2\\x9b.grad: error: cannot read file: No such file or directory"),
    ):
        p = subprocess.run([enc(clitest.GRADC), *args], capture_output=True)
        try:
            err = p.stderr.decode("utf-8")
        except UnicodeDecodeError:
            err = None
        check(p.returncode == want_rc and err is not None and msg in err and err.count("\n") == 1
              and not any((ord(c) < 32 and c != "\n") or 127 <= ord(c) < 160 for c in err),
              "%r: rc %d, err %r" % (args, p.returncode, p.stderr))
    rc, out, err = run("train", MODEL, "--data", data, "--lr", "0", "--steps", "1", "--threads", "1")
    check(rc == 0, "--lr 0: rc %d, err %r" % (rc, err))
    # A value too small for a double is 0, as Python's float('1e-400') reads it (it was
    # refused as not "a number >= 0"); for --mpi-timeout that 0 is refused as 0 is.
    rc, out2, err = run("train", MODEL, "--data", data, "--lr", "1e-400", "--steps", "1", "--threads", "1")
    check(rc == 0 and out2.split("(")[0] == out.split("(")[0], "--lr 1e-400: rc %d, err %r" % (rc, err))
    rc, _, err = run("train", MODEL, "--data", data, "--mpi-timeout", "1e-400")
    check(rc == 2 and err.startswith("gradc: error: --mpi-timeout: takes a number of seconds > 0, not '"),
          "--mpi-timeout 1e-400: rc %d, err %r" % (rc, err))
    rc, out, err = run("gradcheck", MODEL, "--threads", "1")
    check(rc == 0 and "passed" in out, "gradcheck --threads 1: rc %d, err %r" % (rc, err))
    rc, out, err = run("train", "--help")
    check(rc == 0 and "--drop-last" in out, "train --help: rc %d" % rc)
    # A flag given twice takes its last value, as argparse does.
    rc, out, err = run("train", MODEL, "--data", data, "--epochs", "3", "--epochs", "2", "--threads", "1")
    check(rc == 0 and err == "" and [l.split()[1] for l in out.splitlines()] == ["1/2", "2/2"],
          "--epochs 3 --epochs 2: rc %d, out %r, err %r" % (rc, out, err))
    rc, out, err = run("inspect", MODEL, "--stage", "ir", "--stage", "opt")
    check(rc == 0 and out.startswith("func @classify_grad("), "--stage ir --stage opt: rc %d, err %r" % (rc, err))


def documented_flags():
    """docs/language.md's command table has a row per command of `gradc --help`, and each row
    names exactly the flags that `gradc COMMAND --help` lists."""
    with open(os.path.join(os.path.dirname(os.path.dirname(HERE)), "docs", "language.md")) as f:
        rows = dict(re.findall(r"^\| `gradc (\w+) ([^`]*)` \|", f.read(), re.M))
    rc, out, err = run("--help")
    commands = re.findall(r"^  (\w+) ", out.split("Subcommands:")[1], re.M)
    check(rc == 0 and commands == list(rows), "commands: --help %r, docs %r" % (commands, list(rows)))
    for cmd in commands:
        rc, out, err = run(cmd, "--help")
        listed = set(re.findall(r"^  (-[\w-]+)", out, re.M)) - {"-h"}
        documented = set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", rows.get(cmd, "")))
        check(rc == 0 and listed == documented,
              "gradc %s: flags not in docs/language.md %s, documented but not accepted %s"
              % (cmd, sorted(listed - documented), sorted(documented - listed)))
    # A flag with a choice of values names its default in the help.
    for cmd, flag in (("train", "--optimizer"), ("train", "--dtype"), ("eval", "--dtype"), ("predict", "--dtype"),
                      ("compile", "--emit"),
                      ("compile", "--dtype"), ("inspect", "--stage"), ("inspect", "--format")):
        rc, out, err = run(cmd, "--help")
        text = re.search(r"^  %s .*\n(?:   .*\n)*" % flag, out, re.M)
        check(text is not None and "default" in text.group(0), "gradc %s --help: %s names no default" % (cmd, flag))
    # --data says when it is needed (an error otherwise), the CPU what another target gets.
    for cmd, flag, want in (("train", "--data", "required when the model has inputs"),
                            ("eval", "--data", "required when the model has inputs"),
                            ("grad", "--data", "required when the model has inputs"),
                            ("compile", "--cpu", "a generic CPU for another --target")):
        rc, out, err = run(cmd, "--help")
        text = re.search(r"^  %s .*\n(?:   .*\n)*" % flag, out, re.M)
        check(text is not None and want in " ".join(text.group(0).split()),
              "gradc %s --help: %s does not say %r" % (cmd, flag, want))


def device_inputs():
    """A device read as the model, the data or the weights (/dev/zero) gives one error line
    instead of being read forever."""
    data = os.path.join(DATA, "oddities.csv")
    for args, want in ((["check", "/dev/zero"], "/dev/zero:1:1: error: NUL byte in the source file\n"),
                       (["train", MODEL, "--data", "/dev/zero"], "/dev/zero: error: not a text file: byte 1 is NUL\n"),
                       (["eval", MODEL, "--weights", "/dev/zero", "--data", data],
                        "/dev/zero: error: not a safetensors file: the header is not a JSON object of at most "
                        "100000000 bytes\n")):
        rc, out, err = run(*args, timeout=60)
        check(rc == 1 and out == "" and err.startswith(want), "%s: rc %d, err %r" % (args, rc, err))


def huge_data(tmp):
    """A data or weights file larger than the machine's memory (a sparse file) is one error
    line naming it, before any of it is read (it named the model's tensors)."""
    path = os.path.join(tmp, "huge.csv")
    try:
        with open(path, "wb") as f:
            f.truncate(1 << 44)  # 16 TiB
    except OSError:
        return  # the file system has no sparse files this large
    data = os.path.join(DATA, "oddities.csv")
    try:
        for args in (["train", MODEL, "--data", path], ["eval", MODEL, "--weights", "none", "--data", path],
                     ["train", MODEL, "--data", data, "--init", path], ["eval", MODEL, "--weights", path]):
            rc, out, err = run(*args, timeout=60)
            check(rc == 1 and out == "" and err.startswith(path + ": error: out of memory: the file (16384.0 GiB) "
                                                         "is larger than this machine's memory ("),
                  "%s: rc %d, err %r" % (args, rc, err))
    finally:
        os.remove(path)


def no_inputs(tmp):
    rc, out, err = run("train", ROSENBROCK)
    lines = out.splitlines()
    check(rc == 0 and len(lines) == 10 and lines[-1].startswith("step 1000/1000  loss "),
          "rosenbrock, default 1000 steps: %r %r" % (out, err))
    path = os.path.join(tmp, "r.safetensors")
    rc, out, err = run("train", ROSENBROCK, "--steps", "20000", "--save", path)
    loss = float(out.splitlines()[-1].split()[3])
    check(rc == 0 and loss < 1e-4, "rosenbrock after 20000 steps: loss %g" % loss)
    w, _ = read_safetensors(path)
    check(abs(w["a"][2][0] - 1) < 0.01 and abs(w["b"][2][0] - 1) < 0.02 and w["a"][1] == [],
          "rosenbrock minimum at (1, 1): %r" % w)
    # Data given to a model without inputs is not used, with a warning, by every command;
    # eval needs no --data then, and does with inputs.
    data = os.path.join(DATA, "oddities.csv")
    warning = ROSENBROCK + ": warning: the model has no inputs; --data is not used\n"
    for args in (["eval", ROSENBROCK, "--weights", path, "--data", data],
                 ["grad", ROSENBROCK, "--weights", path, "--data", data, "--out", os.path.join(tmp, "g.st")],
                 ["gradcheck", ROSENBROCK, "--data", data]):
        rc, out, err = run(*args)
        check(rc == 0 and err == warning, "%s --data on a model without inputs: rc %d, err %r" % (args[0], rc, err))
    # train's batching flags have nothing to batch either.
    rc, out, err = run("train", ROSENBROCK, "--steps", "2", "--data", data, "--batch-size", "8", "--no-shuffle",
                       "--drop-last")
    check(rc == 0 and err == ROSENBROCK + ": warning: the model has no inputs; --data, --batch-size, --no-shuffle, "
          "--drop-last are not used\n", "train's batching flags on a model without inputs: %r" % err)
    rc, out, err = run("train", ROSENBROCK, "--epochs", "3", "--steps", "2")
    check(rc == 0 and out.count("\n") == 2 and err == ROSENBROCK + ": warning: the model has no inputs, so no "
          "epochs; --steps N sets the length of training (default 1000)\n", "--epochs without inputs: %r %r" % (out, err))
    rc, out, err = run("eval", ROSENBROCK, "--weights", path)
    check(rc == 0 and out.startswith("loss ") and out.count("\n") == 1, "eval without inputs or --data: %r" % out)
    rc, out, err = run("eval", MODEL, "--weights", path)
    # eval's --data (required as predict's) is a bad flag when missing: exit status 2.
    check(rc == 2 and out == "" and err == "gradc: error: --data is required: the model has inputs (x, y) (see gradc "
          "eval --help)\n", "eval of a model with inputs, no --data: %d %r" % (rc, err))


def other_model(tmp):
    """A checkpoint of another model given to train --init, eval, predict, grad or gradcheck:
    the error about the param that does not fit names both model hashes."""
    data = os.path.join(DATA, "oddities.csv")
    ckpt = os.path.join(tmp, "classify_ckpt.st")
    rc, _, err = run("train", MODEL, "--data", data, "--save", ckpt, "--steps", "1")
    check(rc == 0, "train for a checkpoint: %r" % err)
    saved = read_safetensors(ckpt)[1]["gradc.model_hash"]
    # The same inputs, a param of another name (missing from the file) or another shape: one
    # message, whichever command reads the file.
    for param, message in (("V: [2, 3]", "no tensor for the model's param 'V' (of shape [2, 3])"),
                           ("W: [2, 4]", "tensor 'W' has shape [2, 3], but the model's param 'W' has shape [2, 4]")):
        other = clitest.write(os.path.join(tmp, "other.grad"),
                              "dim B\ninput x: [B, 2]\ninput y: int[B]\nparam %s = glorot\nz = x @ %s\n"
                              "output p = softmax(z)\nminimize cross_entropy(z, y) with sgd(lr = 0.1)\n"
                              % (param, param[0]))
        note = r" \(the checkpoint was written for another model: model hash %s, this model's is [0-9a-f]{16}\)\n" % saved
        for args in (("train", other, "--data", data, "--init", ckpt, "--steps", "1"),
                     ("eval", other, "--data", data, "--weights", ckpt),
                     ("predict", other, "--data", data, "--weights", ckpt),
                     ("grad", other, "--data", data, "--weights", ckpt, "--out", os.path.join(tmp, "other_g.st")),
                     ("gradcheck", other, "--data", data, "--weights", ckpt)):
            rc, out, err = run(*args)
            check(rc == 1 and re.fullmatch(re.escape(ckpt + ": error: " + message) + note, err) is not None,
                  "%s of another model's checkpoint (%s): rc %d, err %r" % (args[0], param, rc, err))


def eval_predict_f64(tmp):
    """eval and predict take --dtype as train does: a model trained with --dtype f64 is scored
    in float64, from its exact params (`NAME.f64`) and the data read as doubles, giving the
    float64 numbers (not float32's)."""
    model = clitest.write(os.path.join(tmp, "lin.grad"),
                          "dim B\ninput x: [B, 1]\ninput y: [B, 1]\nparam w: [1, 1] = 0.5\nz = x @ w\n"
                          "output o = z\nminimize mean(square(z - y)) with sgd(lr = 0.1)\n")
    rows = [(0.1, 0.7), (1.3, 0.2)]
    data = clitest.write(os.path.join(tmp, "d.csv"), "x,y\n" + "".join("%r,%r\n" % r for r in rows))
    weights = os.path.join(tmp, "w.safetensors")
    rc, _, err = run("train", model, "--data", data, "--dtype", "f64", "--steps", "3", "--batch-size", "2",
                     "--no-shuffle", "--save", weights)
    check(rc == 0, "train --dtype f64: rc %d, err %r" % (rc, err))
    w = read_safetensors(weights)[0]["w.f64"][2][0]
    outs = [x * w for x, _ in rows]
    loss = sum((o - y) ** 2 for o, (_, y) in zip(outs, rows)) / len(rows)

    def close(a, b):
        return abs(a - b) <= 1e-12 * abs(b)

    got = {}
    for dtype in ("f32", "f64"):
        rc, out, err = run("eval", model, "--weights", weights, "--data", data, "--json", "--dtype", dtype)
        check(rc == 0 and err == "", "eval --dtype %s: rc %d, err %r" % (dtype, rc, err))
        got[dtype] = json.loads(out)["loss"] if rc == 0 else float("nan")
    check(close(got["f64"], loss), "eval --dtype f64: loss %r, float64 gives %r" % (got["f64"], loss))
    check(not close(got["f32"], loss), "eval --dtype f32 computes in float32: %r" % got["f32"])
    for dtype in ("f32", "f64"):
        rc, out, err = run("predict", model, "--weights", weights, "--data", data, "--dtype", dtype)
        lines = out.splitlines()
        check(rc == 0 and err == "" and lines[0] == "o" and len(lines) == 3,
              "predict --dtype %s: rc %d, out %r, err %r" % (dtype, rc, out, err))
        values = [float(v) for v in lines[1:]] if rc == 0 else [float("nan")] * 2
        want = all(close(v, o) for v, o in zip(values, outs))
        check(want == (dtype == "f64"), "predict --dtype %s: %r, float64 gives %r" % (dtype, values, outs))
    rc, _, err = run("eval", model, "--weights", weights, "--data", data, "--dtype", "f16")
    check(rc == 2 and err.startswith("gradc: error: --dtype: f16 not in"), "eval --dtype f16: rc %d, err %r" % (rc, err))


def eval_memory(tmp):
    """eval and predict count the params once and no optimiser state against --max-memory:
    a limit between that sum and the training step's (the params twice) is enough. The model's
    params (40,024 bytes) outweigh the rounding of the figures in the message."""
    model = clitest.write(os.path.join(tmp, "mem.grad"),
                          "dim B\ninput x: [B, 2]\ninput y: int[B]\nparam W: [2, 3] = glorot\n"
                          "param E: [100, 100] = zeros\nz = x @ W + mean(E)\noutput p = softmax(z)\n"
                          "minimize cross_entropy(z, y) with adam(lr = 0.1)\n")
    params = (2 * 3 + 100 * 100) * 4
    data = os.path.join(DATA, "oddities.csv")
    weights = os.path.join(tmp, "mem_w.st")
    rc, _, err = run("train", model, "--data", data, "--save", weights, "--steps", "1")
    check(rc == 0, "train for weights: %r" % err)

    def size(text):  # a figure of the message and how far its rounding may be off
        value, unit = text.split()
        scale = {"bytes": 1, "KiB": 1024, "MiB": 1024 ** 2}[unit]
        return float(value) * scale, 0 if scale == 1 else 0.05 * scale

    figure = r"(\d+(?:\.\d+)? (?:bytes|KiB|MiB))"
    for cmd in ("eval", "predict"):
        rc, out, err = run(cmd, model, "--data", data, "--weights", weights, "--max-memory", "1")
        m = re.search(r"\((\d+) bytes: params %s, inputs and results %s, work %s\)" % (figure, figure, figure), err)
        check(rc == 1 and m is not None, "%s --max-memory 1: the params once, no optimiser state: %r" % (cmd, err))
        if not m:
            continue
        (io, io_off), (work, work_off) = size(m.group(3)), size(m.group(4))
        right = params + io + work
        check(abs(int(m.group(1)) - right) <= io_off + work_off + 1,
              "%s: the sum %s is the params once + inputs and results + work: %r" % (cmd, m.group(1), err))
        limit = int(right + params // 2)
        rc, out, err = run(cmd, model, "--data", data, "--weights", weights, "--max-memory", str(limit))
        check(rc == 0 and err == "", "%s --max-memory between the right and the doubled sum: rc %d, err %r" % (cmd, rc, err))
        need = int(m.group(1))
        rc, out, err = run(cmd, model, "--data", data, "--weights", weights, "--max-memory", str(need - 1))
        check(rc == 1 and "more than --max-memory %d" % (need - 1) in err, "%s --max-memory one byte short: %r" % (cmd, err))
        rc, out, err = run(cmd, model, "--data", data, "--weights", weights, "--max-memory", str(need))
        check(rc == 0, "%s --max-memory of exactly the sum: %r" % (cmd, err))


def terminal(tmp):
    """With stderr on a terminal: a status line while the data is read and the step compiled,
    each erased before the next, then the progress bar; the epoch lines go to stdout. On a
    narrow terminal each of them fits in one row (a row that wrapped was erased only in part,
    and its start stayed on the screen)."""
    data = os.path.join(tmp, "tty.csv")
    make_blobs(data, 200, 3)
    rc, shown, out = clitest.run_on_terminal([clitest.GRADC, "train", MODEL, "--data", data, "--epochs", "2"], 200)
    want = ("reading %s...\r\x1b[Kcompiling the training step of %s...\r\x1b[K" % (data, MODEL)).encode()
    check(rc == 0 and shown.replace(b"\r\n", b"\n").startswith(want) and b"] 7/7  loss " in shown
          and shown.endswith(b"\r\x1b[K") and out.count("\n") == 2 and out.startswith("epoch 1/2  loss "),
          "train on a terminal: rc %d, stderr %r, stdout %r" % (rc, shown[:400], out))
    # A file name's escape sequence is shown escaped, as in an error (it reached the terminal).
    odd = shutil.copy(data, os.path.join(tmp, "e\x1b[31m.csv"))
    rc, shown, _ = clitest.run_on_terminal([clitest.GRADC, "train", MODEL, "--data", os.path.basename(odd),
                                            "--epochs", "2", "--batch-size", "4"], 60, cwd=tmp)
    rows = shown.decode().replace("\r\n", "\n").split("\r\x1b[K")
    check(rc == 0 and len(rows) > 4 and all(len(r) <= 59 for r in rows) and "\x1b[31m" not in "".join(rows)
          and "reading e\\x1b[31m.csv..." in rows
          and any(re.match(r"epoch 1/2 \[#{8,}\] 50/50  loss ", r) for r in rows),
          "train on a 60-column terminal: rc %d, rows %r" % (rc, rows[:6]))


def named_constants(tmp):
    """Bindings of constant expressions as initialiser, param and optimiser arguments train
    exactly as the literals they fold to."""
    literal = clitest.write(os.path.join(tmp, "literal.grad"),
                            "param a: [3] = normal(0.5, 0.3)\nparam b = -0.5\n"
                            "minimize sum(square(a - b)) + b * b with adam(lr = 0.1, beta1 = 0.5)\n")
    named = clitest.write(os.path.join(tmp, "named.grad"),
                          "mu = 1 / 2\nsd = mu * 0.6\nb0 = -mu\nlr0 = mu / 5\nbeta = mu\n"
                          "param a: [3] = normal(mu, sd)\nparam b = b0\n"
                          "minimize sum(square(a - b)) + b * b with adam(lr = lr0, beta1 = beta)\n")
    weights = []
    for model in (literal, named):
        save = model + ".safetensors"
        rc, out, err = run("train", model, "--steps", "3", "--save", save)
        check(rc == 0, "train %s: rc %d, err %r" % (model, rc, err))
        weights.append(read_safetensors(save)[0] if rc == 0 else None)
    check(weights[0] is not None and weights[0] == weights[1],
          "named constants train as their literals: %r" % weights)


def bench():
    rc, out, err = run("bench", MODEL, "--batch-size", "64", "--json")
    j = json.loads(out.splitlines()[-1])
    check(rc == 0 and list(j) == ["us_per_step", "gflops", "compile_ms"]
          and j["us_per_step"] > 0 and j["gflops"] > 0, "bench --json: %r" % out)
    rc, out, err = run("bench", MODEL)
    check(rc == 0 and "us (median)" in out and "GFLOP/s" in out, "bench: %r" % out)
    # A --batch-size that bench cannot use is not ignored silently.
    rc, out, err = run("bench", ROSENBROCK, "--batch-size", "8", "--json")
    check(rc == 0 and err == "%s: warning: the model has no inputs; --batch-size is not used\n" % ROSENBROCK,
          "bench --batch-size without inputs: rc %d, err %r" % (rc, err))
    with tempfile.TemporaryDirectory() as tmp:
        fixed = clitest.write(os.path.join(tmp, "fixed.grad"),
                              "input x: [4, 2]\nparam w: [2, 1] = ones\nminimize mean(x @ w)\n")
        rc, out, err = run("bench", fixed, "--batch-size", "8", "--json")
        check(rc == 0 and err == "%s: warning: the model's inputs take batches of exactly 4 rows; "
              "--batch-size 8 is not used\n" % fixed, "bench --batch-size of a fixed batch: rc %d, err %r" % (rc, err))
        rc, out, err = run("bench", fixed, "--batch-size", "4", "--json")
        check(rc == 0 and err == "", "bench --batch-size 4 of a fixed batch: rc %d, err %r" % (rc, err))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    clitest.GRADC = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        csv_errors()
        csv_first_line(tmp)
        csv_error_quotes(tmp)
        other_model(tmp)
        eval_memory(tmp)
        eval_predict_f64(tmp)
        predict_output_rows(tmp)
        predict_features_errors(tmp)
        bad_flags()
        documented_flags()
        device_inputs()
        huge_data(tmp)
        with tempfile.TemporaryDirectory() as sub:
            clashing_files(sub)
        with tempfile.TemporaryDirectory() as sub:
            outputs_whole(sub)
        with tempfile.TemporaryDirectory() as sub:
            file_modes(sub)
        batches(tmp)
        train_and_resume(tmp)
        resumed_seed(tmp)
        no_inputs(tmp)
        named_constants(tmp)
        terminal(tmp)
        bench()
    if clitest.failures:
        print("%d check(s) failed" % len(clitest.failures))
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
