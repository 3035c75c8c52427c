#!/usr/bin/python3
"""The command-line contract of `gradc grad` and `gradc gradcheck` (docs/language.md,
"Command line"), without torch: the output file's layout, one-line errors with exit status 1 for
bad weights or data, and nothing written when there is an error; and one sum that long_sums.py
checks against torch, over the first and last axes, checked against a float64 sum here, so that
it runs without torch.

Usage: python3 tests/torch/grad_cli.py PATH/TO/gradc
"""
import json
import math
import os
import re
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
import clitest  # noqa: E402

XOR = os.path.join(ROOT, "examples", "xor.grad")
XOR_DATA = os.path.join(ROOT, "examples", "data", "xor.csv")
XOR_PARAMS = {"W1": [2, 8], "b1": [8], "W2": [8, 1], "b2": [1]}


def write_safetensors(path, tensors):
    """tensors: {name: (shape, [values])}, written as F32."""
    header, data = {}, b""
    for name, (shape, values) in tensors.items():
        blob = struct.pack("<%df" % len(values), *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def write_raw_safetensors(path, header, data):
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def read_header(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n])


def weights(**override):
    t = {name: (shape, [0.25] * math.prod(shape)) for name, shape in XOR_PARAMS.items()}
    t.update(override)
    return {k: v for k, v in t.items() if v is not None}


failures = []


def check(what, cond, detail=""):
    print(("ok     " if cond else "FAILED ") + what + ("" if cond else "  " + detail))
    if not cond:
        failures.append(what)


def main():
    gradc = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        def run(*args):
            return subprocess.run([gradc, *args], capture_output=True, text=True)

        def grad_error(what, wts, expect, data=XOR_DATA):
            w = os.path.join(tmp, "w.safetensors")
            out = os.path.join(tmp, "bad_out.safetensors")
            if os.path.exists(out):
                os.remove(out)
            write_safetensors(w, wts)
            args = ["grad", XOR, "--weights", w, "--out", out] + (["--data", data] if data else [])
            r = run(*args)
            lines = r.stderr.strip("\n").splitlines()
            # One line; a data file's error then quotes the row, a caret under the column.
            quoted = len(lines) == 3 and lines[2].strip() == "^" and data and lines[0].startswith(data)
            check(what, r.returncode == 1 and (len(lines) == 1 or quoted) and expect in lines[0] and not os.path.exists(out),
                  f"status {r.returncode}, stderr {r.stderr!r}")

        good = os.path.join(tmp, "w.safetensors")
        out = os.path.join(tmp, "g.safetensors")
        write_safetensors(good, weights())
        r = run("grad", XOR, "--weights", good, "--data", XOR_DATA, "--out", out)
        check("grad writes loss and one gradient per param", r.returncode == 0 and os.path.exists(out), r.stderr)
        if r.returncode == 0:
            h = read_header(out)
            shapes = {k: v["shape"] for k, v in h.items() if k != "__metadata__"}
            check("grad: loss is a scalar, gradients have the params' shapes",
                  shapes == dict(loss=[], **XOR_PARAMS) and all(v["dtype"] == "F32" for k, v in h.items()
                                                                if k != "__metadata__"), str(h))

        # `--out -` is standard output (the bytes --out FILE writes), refused on a terminal.
        r = subprocess.run([gradc, "grad", XOR, "--weights", good, "--data", XOR_DATA, "--out", "-"],
                           capture_output=True, cwd=tmp)
        check("grad --out - writes the file to standard output", r.returncode == 0 and os.path.exists(out)
              and r.stdout == open(out, "rb").read() and not os.path.exists(os.path.join(tmp, "-")),
              r.stderr.decode(errors="replace"))
        import pty
        master, slave = pty.openpty()
        r = subprocess.run([gradc, "grad", XOR, "--weights", good, "--data", XOR_DATA, "--out", "-"], stdout=slave,
                           stderr=subprocess.PIPE, text=True, cwd=tmp)
        os.close(slave)
        os.close(master)
        check("grad --out - on a terminal is a bad flag", r.returncode == 2 and r.stderr ==
              "gradc: error: --out - would write the safetensors file to the terminal: redirect standard output "
              "to a file or a pipe (see gradc grad --help)\n" and not os.path.exists(os.path.join(tmp, "-")), r.stderr)
        # A standard output that cannot be written is the error any command gives for it, exit 1,
        # not one about a file /dev/stdout ("No such file or directory" when it is closed).
        for name, target, want in (("closed", None, "Bad file descriptor"), ("full", "/dev/full", "No space left on device")):
            sink = open(target, "wb") if target else None
            r = subprocess.run([gradc, "grad", XOR, "--weights", good, "--data", XOR_DATA, "--out", "-"], stdout=sink,
                               stderr=subprocess.PIPE, text=True, cwd=tmp,
                               preexec_fn=None if sink else (lambda: os.close(1)))
            if sink:
                sink.close()
            check("grad --out - with standard output " + name, r.returncode == 1 and r.stderr ==
                  "gradc: error: cannot write standard output: %s\n" % want, r.stderr)

        # A flat sum of 4,000 terms (parsed as a left spine 4,000 deep): d/da of
        # a + a*a + ... (3,999 times) at a = 1 is 1 + 2 * 3999 = 7999, exactly in float32.
        flat = os.path.join(tmp, "flat.grad")
        with open(flat, "w") as f:
            f.write("param a = 1\nminimize a" + " + a*a" * 3999 + "\n")
        empty = os.path.join(tmp, "none.safetensors")
        write_safetensors(empty, {"a": ([], [1.0])})
        fo = os.path.join(tmp, "flat_g.safetensors")
        r = run("grad", flat, "--weights", empty, "--out", fo)
        ok = r.returncode == 0 and os.path.exists(fo)
        if ok:
            with open(fo, "rb") as f:
                n = struct.unpack("<Q", f.read(8))[0]
                h = json.loads(f.read(n))
                body = f.read()
            lo, _ = h["a"]["data_offsets"]
            ok = struct.unpack("<f", body[lo:lo + 4])[0] == 7999.0
        check("grad of a 4,000-term flat sum", ok, r.stderr)

        grad_error("grad: a missing param", weights(b2=None), "no tensor for the model's param 'b2' (of shape [1])")
        grad_error("grad: a param of the wrong shape", weights(W1=([8, 2], [0.0] * 16)),
                   "tensor 'W1' has shape [8, 2], but the model's param 'W1' has shape [2, 8]")
        extra = os.path.join(tmp, "extra.safetensors")
        write_safetensors(extra, dict(weights(), extra=([1], [1.0])))
        r = run("grad", XOR, "--weights", extra, "--data", XOR_DATA, "--out", out)
        check("grad: extra tensors in the weights are ignored", r.returncode == 0, r.stderr)
        # A PyTorch state dict may hold tensors of other dtypes (an I64 counter): ignored as extras,
        # an error when a param is stored so.
        header, data = {}, b""
        for name, (shape, values) in weights().items():
            blob = struct.pack("<%df" % len(values), *values)
            header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}
            data += blob
        header["num_batches_tracked"] = {"dtype": "I64", "shape": [], "data_offsets": [len(data), len(data) + 8]}
        header["half"] = {"dtype": "F16", "shape": [2], "data_offsets": [len(data) + 8, len(data) + 12]}
        write_raw_safetensors(extra, header, data + b"\0" * 12)
        r = run("grad", XOR, "--weights", extra, "--data", XOR_DATA, "--out", out)
        check("grad: extra I64 and F16 tensors are ignored", r.returncode == 0, r.stderr)
        r = run("eval", XOR, "--weights", extra, "--data", XOR_DATA)
        check("eval: extra I64 and F16 tensors are ignored", r.returncode == 0, r.stderr)
        # b2 (the last F32 tensor) stored as F16 instead; the tensors cover the data exactly.
        data = data[:header["b2"]["data_offsets"][0]]
        assert len(data) == max(h["data_offsets"][1] for n, h in header.items() if h["dtype"] == "F32" and n != "b2")
        header["num_batches_tracked"]["data_offsets"] = [len(data), len(data) + 8]
        header["b2"] = dict(header["half"], shape=[1], data_offsets=[len(data) + 8, len(data) + 10])
        del header["half"]
        write_raw_safetensors(extra, header, data + b"\0" * 10)
        for cmd in (["grad", XOR, "--weights", extra, "--data", XOR_DATA, "--out", out],
                    ["eval", XOR, "--weights", extra, "--data", XOR_DATA]):
            r = run(*cmd)
            check(cmd[0] + ": a param stored as F16", r.returncode == 1 and r.stderr ==
                  extra + ": error: tensor 'b2' has dtype F16; gradc reads F32 and F64\n", r.stderr)
        # A name holding a NUL byte is quoted whole, the NUL escaped (the message ended at it).
        nul = {"b\0x": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}
        write_raw_safetensors(extra, nul, b"\0" * 4)
        r = run("eval", XOR, "--weights", extra, "--data", XOR_DATA)
        check("eval: a tensor name holding a NUL byte", r.returncode == 1 and r.stderr ==
              extra + ": error: tensor 'b\\x00x' has a shape entry that is not a size\n", r.stderr)
        grad_error("grad: inputs without --data", weights(), "the data with --data FILE", data=None)
        bad_csv = os.path.join(tmp, "bad.csv")
        with open(bad_csv, "w") as f:
            f.write("x1,x2,y\n0,1\n")
        grad_error("grad: a malformed data file", weights(), "bad.csv:2:4: error: expected 3 values, found 2", data=bad_csv)
        r = run("grad", XOR, "--weights", good, "--data", bad_csv, "--out", out)
        check("grad: a malformed data file's row is quoted, a caret under the column",
              r.stderr == bad_csv + ":2:4: error: expected 3 values, found 2\n0,1\n   ^\n", r.stderr)
        # The tensors must cover the data exactly, as the reference implementation checks:
        # a file with bytes after the last tensor is refused (it was read as if whole).
        with open(good, "rb") as f:
            whole = f.read()
        with open(extra, "wb") as f:
            f.write(whole + b"\0" * 4)
        for cmd in (["grad", XOR, "--weights", extra, "--data", XOR_DATA, "--out", out],
                    ["eval", XOR, "--weights", extra, "--data", XOR_DATA],
                    ["train", XOR, "--init", extra, "--data", XOR_DATA, "--steps", "1"]):
            r = run(*cmd)
            check(cmd[0] + ": bytes after the last tensor", r.returncode == 1 and r.stderr.startswith(
                  extra + ": error: no tensor covers the last 4 bytes of the data, after tensor '") and
                  r.stderr.count("\n") == 1, r.stderr)
        truncated = os.path.join(tmp, "t.safetensors")
        with open(truncated, "wb") as f:
            f.write(b"\x10\x00")
        r = run("grad", XOR, "--weights", truncated, "--data", XOR_DATA, "--out", os.path.join(tmp, "x.st"))
        check("grad: a truncated weights file", r.returncode == 1 and r.stderr.startswith(truncated + ": error: "),
              r.stderr)

        # A model that fixes its batch size (input x: [2, 3]): commands that take the whole file
        # as one batch refuse a file of another row count (grad and gradcheck overran their
        # buffers and crashed); gradcheck's random batch and bench use the fixed size.
        fixed = os.path.join(tmp, "fixed.grad")
        with open(fixed, "w") as f:
            f.write("input x: [2, 3]\ninput y: [2, 1]\nparam W: [3, 1] = ones\noutput p = x @ W\n"
                    "minimize mean(mse(x @ W, y))\n")
        two, many = os.path.join(tmp, "two.csv"), os.path.join(tmp, "many.csv")
        with open(two, "w") as f:
            f.write("1,2,3,4\n5,6,7,8\n")
        with open(many, "w") as f:
            f.write("".join("%d,1,2,3\n" % i for i in range(500)))
        w = os.path.join(tmp, "fixed.safetensors")
        write_safetensors(w, {"W": ([3, 1], [1.0, 1.0, 1.0])})
        for cmd in ("grad", "gradcheck", "eval", "predict"):
            args = [cmd, fixed, "--weights", w] + (["--out", os.path.join(tmp, "fg.st")] if cmd == "grad" else [])
            r = run(*args, "--data", many)
            want = (many + ": error: the model's inputs take batches of exactly 2 rows (input x has the first "
                    "dim 2); `gradc %s` takes the whole file as one batch, and it has 500 rows\n" % cmd)
            check(cmd + ": a fixed batch of 2, a file of 500 rows", r.returncode == 1 and r.stderr == want, r.stderr)
            r = run(*args, "--data", two)
            check(cmd + ": a fixed batch of 2, a file of 2 rows", r.returncode == 0, r.stderr)
        r = run("predict", fixed, "--weights", w, "--data", two)
        check("predict: a fixed batch", r.stdout == "p\n6\n18\n", r.stdout)
        r = run("gradcheck", fixed)
        check("gradcheck: random data of the fixed batch size", r.returncode == 0 and "passed" in r.stdout, r.stderr)
        four, three = os.path.join(tmp, "four.csv"), os.path.join(tmp, "three.csv")
        with open(four, "w") as f:
            f.write("1,2,3,4\n5,6,7,8\n1,2,3,4\n5,6,7,8\n")
        with open(three, "w") as f:
            f.write("1,2,3,4\n5,6,7,8\n1,2,3,4\n")
        r = run("train", fixed, "--data", four, "--batch-size", "2", "--val", four, "--epochs", "2")
        check("train: validation of a fixed batch size runs in batches of that size",
              r.returncode == 0 and r.stdout.count("val_loss") == 2, r.stderr)
        r = run("train", fixed, "--data", four, "--batch-size", "2", "--val", three)
        check("train: a validation file that does not divide into fixed batches fails before training",
              r.returncode == 1 and r.stdout == "" and r.stderr == three + ": error: the model's inputs take "
              "batches of exactly 2 rows, and the file's 3 rows do not divide into them\n", r.stderr)
        one = os.path.join(tmp, "one.csv")
        with open(one, "w") as f:
            f.write("1,2,3,4\n")
        r = run("train", fixed, "--data", one, "--batch-size", "2")
        check("train: a file with fewer rows than the fixed batch (not 'use --drop-last', which drops it all)",
              r.returncode == 1 and r.stderr == one + ": error: the model's inputs take batches of exactly "
              "2 rows, and the file has only 1\n", r.stderr)
        r = run("bench", fixed, "--json")
        check("bench: the fixed batch size", r.returncode == 0 and json.loads(r.stdout)["us_per_step"] > 0, r.stderr)

        r = run("gradcheck", XOR)
        check("gradcheck passes on random weights and data", r.returncode == 0 and "passed" in r.stdout, r.stdout)
        r = run("gradcheck", XOR, "--weights", good, "--data", XOR_DATA)
        check("gradcheck with --weights and --data", r.returncode == 0 and "W1" in r.stdout, r.stdout + r.stderr)
        # stop_gradient(z) * z has the gradient stop_gradient(z), half the derivative 2z: a
        # gradient that differs from finite differences, which gradcheck must report, with a
        # warning at the stop_gradient that explains it.
        where = os.path.join(ROOT, "tests", "torch", "models", "ops_where.grad")
        r = run("gradcheck", where)
        lines = r.stderr.strip().splitlines()
        check("gradcheck reports a gradient that is not the derivative",
              r.returncode == 1 and len(lines) == 4 and lines[3] == where + ": error: the gradient of W differs "
              "from finite differences (tolerance 1e-05)" and re.match(re.escape(where) + r":\d+:\d+: warning: W "
              "reaches the loss through stop_gradient, which finite differences see through and the gradient does "
              "not$", lines[0]) and "stop_gradient(z)" in lines[1] and lines[2].strip() == "^",
              r.stdout + r.stderr)
        # bce's gradient is PyTorch's, (p - y) / max(p (1 - p), 1e-12): at p = sigmoid(30) it
        # is not the derivative, so gradcheck fails, but the model wrote no stop_gradient (the
        # one inside bce's lowering is not the user's to look for): no warning.
        sat = os.path.join(tmp, "bce_saturated.grad")
        with open(sat, "w") as f:
            f.write("dim B\ninput x: [B, 1]\ninput y: [B, 1]\nparam w = 1\n"
                    "minimize mean(bce(sigmoid(x * w * 30), y))\n")
        sat_data = os.path.join(tmp, "bce_saturated.csv")
        with open(sat_data, "w") as f:
            f.write("1,0\n")
        r = run("gradcheck", sat, "--data", sat_data)
        check("gradcheck on a saturated bce: an error without a stop_gradient warning",
              r.returncode == 1 and r.stderr == sat + ": error: the gradient of w differs from finite differences "
              "(tolerance 1e-05)\n", r.stdout + r.stderr)
        # The table's columns are as wide as their longest entry: a param name of 33 letters
        # pushed its row out of line with the header and the other rows.
        longname = os.path.join(tmp, "longname.grad")
        with open(longname, "w") as f:
            f.write("param a_very_long_parameter_name_indeed: [2] = ones\nparam w = 2\n"
                    "minimize sum(square(a_very_long_parameter_name_indeed)) + w^2\n")
        r = run("gradcheck", longname)
        rows = r.stdout.splitlines()[:3]
        # Where the second and third columns end (right-aligned) and the fourth starts.
        ends = {tuple(m.end() for m in list(re.finditer(r"\S+", row))[1:3]) +
                (list(re.finditer(r"\S+", row))[3].start(),) for row in rows if len(row.split()) >= 4}
        check("gradcheck: a long param name keeps the table's columns aligned",
              r.returncode == 0 and len(rows) == 3 and rows[1].startswith("a_very_long_parameter_name_indeed ")
              and len(ends) == 1, r.stdout)
        # On a terminal, a status line on stderr names the param (and the element) being checked
        # (a large param takes seconds), erased before its row of the table, which goes to stdout.
        rc, shown, out = clitest.run_on_terminal([gradc, "gradcheck", XOR], 100)
        statuses = [s for s in shown.decode().split("\r\x1b[K") if s]
        check("gradcheck on a terminal: a status line per param, erased",
              rc == 0 and statuses[:1] == ["checking W1..."] and "checking b2..." in statuses
              and all(s.startswith("checking ") and s.endswith("...") for s in statuses)
              and shown.endswith(b"\r\x1b[K") and out.startswith("param ") and "passed" in out,
              "rc %d, stderr %r, stdout %r" % (rc, shown[:300], out))
        # A model without params has no gradient to check: a warning, not a table without rows
        # and "every gradient matches".
        noparam = os.path.join(tmp, "noparam.grad")
        with open(noparam, "w") as f:
            f.write("dim B\ninput x: [B, 2]\nminimize mean(x)\n")
        r = run("gradcheck", noparam)
        check("gradcheck: a model without params",
              r.returncode == 0 and r.stdout == "" and r.stderr == noparam + ": warning: the model has no params, "
              "so there is no gradient to check\n", r.stdout + r.stderr)
        # A loss that is not finite at the weights has no finite differences to check against:
        # an error that says so (it printed `nan` for each param and that every gradient
        # differs). A gradient or a difference quotient that is not finite is named with its
        # element in the error (`nan` in the table said nothing of where).
        nonfinite = os.path.join(tmp, "nonfinite.grad")
        for body, args, table, want in (
                ("param v: [2] = const(1e20)\nminimize sum(exp(x * v))\n", (), False,
                 "the loss is inf at the weights checked (from the initialisers with --seed 0) on random data "
                 "(--seed 0), so finite differences cannot check the gradients: give weights and data where it is "
                 "finite"),
                ("param v: [2] = const(-1)\nminimize sum(sqrt(x * v))\n", ("--seed", "3"), False,
                 "the loss is nan at the weights checked (from the initialisers with --seed 3) on random data "
                 "(--seed 3), so finite differences cannot check the gradients: give weights and data where it is "
                 "finite"),
                ("param v: [2] = zeros\nparam w: [2, 3] = ones\nminimize sum(sqrt(v)) + sum(x @ w)\n", (), True,
                 "the gradient of v differs from finite differences (tolerance 1e-05): the gradient of v[0] is inf"),
                ("param w: [2, 3] = ones\nparam v: [3] = const(1e-7)\nminimize sum(x @ w) + sum(sqrt(v))\n", (), True,
                 "the gradient of v differs from finite differences (tolerance 1e-05): the loss is nan at "
                 "v[0] = -9e-07, a step of 1e-06 from the weight checked")):
            with open(nonfinite, "w") as f:
                f.write("dim B\ninput x: [B, 2]\n" + body)
            r = run("gradcheck", nonfinite, *args)
            check("gradcheck, a value that is not finite: " + body.replace("\n", "; "),
                  r.returncode == 1 and r.stderr == nonfinite + ": error: " + want + "\n"
                  and (r.stdout.startswith("param ") if table else r.stdout == ""), r.stdout + r.stderr)
        # Weights that are themselves not finite: the error names the first such element.
        nan_weights = os.path.join(tmp, "nan_weights.safetensors")
        write_safetensors(nan_weights, weights(b1=([8], [0.0] * 3 + [float("nan")] + [0.0] * 4)))
        r = run("gradcheck", XOR, "--weights", nan_weights, "--data", XOR_DATA)
        check("gradcheck: weights that hold a nan",
              r.returncode == 1 and r.stdout == "" and r.stderr == XOR + ": error: the loss is nan at the weights "
              "checked (--weights " + nan_weights + ", where b1[3] is nan) on --data " + XOR_DATA + ", so finite "
              "differences cannot check the gradients: give weights and data where it is finite\n", r.stdout + r.stderr)
        # A model path holding a line break keeps each line of stderr one message, the break
        # escaped as in every other error.
        odd = os.path.join(tmp, "two\nlines.grad")
        with open(where) as f, open(odd, "w") as g:
            g.write(f.read())
        r = run("gradcheck", odd)
        lines = r.stderr.strip().splitlines()
        check("gradcheck: a model path holding a line break",
              r.returncode == 1 and len(lines) == 4 and lines[3] == odd.replace("\n", "\\n") + ": error: the "
              "gradient of W differs from finite differences (tolerance 1e-05)", r.stderr)
        with open(os.path.join(ROOT, "examples", "rosenbrock.grad")) as f, open(odd, "w") as g:
            g.write(f.read())
        r = run("train", odd, "--steps", "1", "--data", XOR_DATA)
        check("train: a warning about a model path holding a line break",
              r.returncode == 0 and r.stderr == odd.replace("\n", "\\n") + ": warning: the model has no inputs; "
              "--data is not used\n", r.stderr)
        # A sum over the first and last axes, not the trailing ones (the gradient of P [1, 1, 1]
        # broadcast over Z [300000, 1, 2], of [1, 3, 1] over [2000, 3, 100]), adds its 600,000
        # and 200,000 terms per result in blocks: within 1e-6 of the float64 sum (one float
        # chain per result was 7.4e-6 off). Checked here without torch (long_sums.py has it
        # against torch).
        for zs, ps in (((300000, 1, 2), (1, 1, 1)), ((2000, 3, 100), (1, 3, 1))):
            src = os.path.join(tmp, "firstlast.grad")
            with open(src, "w") as f:
                f.write(f"param Z: {list(zs)} = zeros\nparam P: {list(ps)} = zeros\nminimize sum((Z + P) * Z)\n")
            z = [struct.unpack("<f", struct.pack("<f", 0.5 + ((i * 7919) % 1000) / 997.0))[0]
                 for i in range(math.prod(zs))]
            w, out = os.path.join(tmp, "firstlast.safetensors"), os.path.join(tmp, "firstlast_grad.safetensors")
            write_safetensors(w, {"Z": (list(zs), z), "P": (list(ps), [0.0] * math.prod(ps))})
            r = run("grad", src, "--weights", w, "--out", out)
            ok = r.returncode == 0
            if ok:
                meta = read_header(out)["P"]
                with open(out, "rb") as f:
                    raw = f.read()
                base = 8 + struct.unpack("<Q", raw[:8])[0]
                a, b = meta["data_offsets"]
                got = struct.unpack("<%df" % ((b - a) // 4), raw[base + a:base + b])
                n = zs[1]
                want = [0.0] * n
                for i, v in enumerate(z):
                    want[(i // zs[2]) % n] += v
                err = max(abs(g - e) for g, e in zip(got, want)) / max(abs(e) for e in want)
                ok = err <= 1e-6
            check(f"grad: the sum over axes 0 and 2 of {list(zs)} (the gradient of P {list(ps)}) within 1e-6",
                  ok, r.stderr if r.returncode else f"relative error {err:.3g}")
        # The gradient of a^n takes n - 1 from the n that a^n used, in the float type of the
        # run: a^2.0000001 is a^2 in float32 (n rounds to 2), so its gradient at a = -1 is -2,
        # not (-1)^1.0000001 = nan (n - 1 taken in double); in float64 n stays 2.0000001, and
        # both the loss and the gradient follow from it (nan at -1, 2.0000001 * 2^1.0000001 at 2).
        def values(path):
            header = read_header(path)
            with open(path, "rb") as f:
                raw = f.read()
            base = 8 + struct.unpack("<Q", raw[:8])[0]
            return {k: struct.unpack("<f", raw[base + v["data_offsets"][0]:base + v["data_offsets"][1]])[0]
                    for k, v in header.items() if k != "__metadata__"}

        def f32(x):
            return struct.unpack("<f", struct.pack("<f", x))[0]

        near2 = os.path.join(tmp, "near_square.grad")
        with open(near2, "w") as f:
            f.write("param a = -1\nminimize a ^ 2.0000001\n")
        out = os.path.join(tmp, "near_square_grad.safetensors")
        for a, dtype, want in ((-1.0, "f32", {"loss": 1.0, "a": -2.0}),
                               (2.0, "f32", {"loss": 4.0, "a": 4.0}),
                               (-1.0, "f64", {"loss": math.nan, "a": math.nan}),
                               (2.0, "f64", {"loss": f32(2 ** 2.0000001), "a": f32(2.0000001 * 2 ** 1.0000001)})):
            w = os.path.join(tmp, "near_square.safetensors")
            write_safetensors(w, {"a": ([], [a])})
            r = run("grad", near2, "--weights", w, "--out", out, "--dtype", dtype)
            got = values(out) if r.returncode == 0 else {}
            same = all(k in got and (got[k] == v or math.isnan(got[k]) and math.isnan(v)) for k, v in want.items())
            check(f"grad --dtype {dtype}: a^2.0000001 at {a} gives loss {want['loss']} and gradient {want['a']}",
                  r.returncode == 0 and same, r.stderr + repr(got))
        r = run("train", near2, "--steps", "1")
        check("train: a^2.0000001 at -1 takes a step (loss 1, gradient -2)",
              r.returncode == 0 and "loss 1 " in r.stdout, r.stdout + r.stderr)
        # The NaN explanation names the numbers as the step held them: doubles with --dtype f64.
        r = run("train", near2, "--steps", "1", "--dtype", "f64")
        check("train --dtype f64: a^2.0000001 at -1 is explained with the exponent in double",
              r.returncode == 1 and r.stderr.startswith(near2 + ":2:12: error: pow of -1 and 2.0000001 gives nan "),
              r.stderr)
        shifted = os.path.join(tmp, "log_shifted.grad")
        with open(shifted, "w") as f:
            f.write("param a = 0.1\nminimize log(a - 0.3)\n")
        for dtype, value in (("f32", "-0.20000002"), ("f64", "-0.19999999999999998")):
            r = run("train", shifted, "--steps", "1", "--dtype", dtype)
            check(f"train --dtype {dtype}: log's operand printed as a {dtype} ({value})",
                  r.returncode == 1 and f"error: log of a negative number ({value}) gives nan" in r.stderr, r.stderr)

    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
