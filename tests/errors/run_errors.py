#!/usr/bin/env python3
"""Malformed models: `gradc check` must reject each with exit status 1 and one clear error.

Each tests/errors/*.grad ends with a comment
    # ERROR: LINE:COL: MESSAGE        (or  # ERROR: FILE: MESSAGE  for errors without a place)
and the first line of stderr must be `PATH:LINE:COL: error: ...MESSAGE...`. Nothing in
stderr may be a control character or invalid UTF-8 (the quoted source line escapes them).
Inputs too big or too strange to commit (100,000 nested parentheses, a 5 MB line, NUL bytes,
invalid UTF-8, escape sequences, defs that double 40 times) are generated here into a
temporary directory.
No case may crash, hang, report an internal error or print a stack trace.

usage: run_errors.py GRADC ERRORS_DIR
"""
import os
import re
import subprocess
import sys
import tempfile

TIMEOUT = 60
BAD_SIGNS = ("internal error", "Traceback", "terminate called", "Aborted", "Segmentation",
             "AddressSanitizer", "runtime error:", "#0 0x", "stack-overflow")


def run(gradc, path):
    try:
        p = subprocess.run([gradc, "check", path], capture_output=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, "", "timed out after %d s" % TIMEOUT
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def check_case(gradc, path, expected, want_rc=1):
    """Returns an error string, or None when the case behaves."""
    rc, out, err = run(gradc, path)
    if rc is None:
        return err
    for sign in BAD_SIGNS:
        if sign in err:
            return "stderr shows %r:\n%s" % (sign, err[:2000])
    if rc != want_rc:
        return "exit status %s, expected %d; stderr:\n%s" % (rc, want_rc, err[:2000])
    # What reaches the terminal is text: no control character, C0, DEL or C1 (an escape
    # sequence in the file would drive the terminal) and no invalid UTF-8 (decoded here as
    # U+FFFD).
    if any((ord(c) < 32 and c not in "\n\t") or 127 <= ord(c) < 160 or c == "\ufffd" for c in err):
        return "stderr holds a control character or invalid UTF-8: %r" % err[:2000]
    if want_rc == 0:
        return None
    first = err.splitlines()[0] if err else ""
    m = re.match(r"(\d+):(\d+): (.*)$", expected)
    if m:  # LINE:COL: MESSAGE
        line, col, msg = m.groups()
        prefix = re.escape("%s:%s:%s: error: " % (path, line, col))
    elif expected.startswith("FILE: "):  # an error without a place in the file
        msg = expected[len("FILE: "):]
        prefix = re.escape("%s: error: " % path)
    else:  # MESSAGE, at any place
        msg = expected
        prefix = re.escape(path) + r":\d+:\d+: error: "
    if not re.match(prefix, first) or msg not in first:
        return "expected `%s...%s`, got:\n%s" % (prefix, msg, err[:2000])
    return None


def generated(tmp):
    """(name, text bytes, expected, exit status) of the generated cases."""
    cases = []
    deep = b"param a = 1\nminimize " + b"(" * 100000 + b"a" + b")" * 100000 + b"\n"
    cases.append(("deep_parens", deep, "2:" + str(10 + 4096) + ": expression nested too deeply", 1))
    # A flat sum of 4,000 terms (a left spine 4,000 deep) is fine, and its gradient is 4,000;
    # one of 5,000 is too deep.
    flat = b"param a = 1\nminimize a" + b" + a" * 3999 + b"\n"
    cases.append(("flat_sum_4000", flat, "", 0))
    cases.append(("flat_sum_5000", b"param a = 1\nminimize a" + b" + a" * 4999 + b"\n",
                  "2:" + str(10 + 4 * 4095 + 2) + ": expression nested too deeply (more than 4096 levels)", 1))
    long_sum = b"param a = 1\nminimize a" + b" + a" * (5 * 1024 * 1024 // 4) + b"\n"
    cases.append(("long_line_sum", long_sum, "nested too deeply", 1))
    long_name = b"param " + b"a" * (5 * 1024 * 1024) + b" = 1\nminimize b\n"
    cases.append(("long_line_name", long_name, "2:10: undefined name `b`", 1))
    long_comment = b"param a = 1 # " + b"x" * (5 * 1024 * 1024) + b"\nminimize a +\n"
    cases.append(("long_line_comment", long_comment, "3:1: expected an expression, found end of file", 1))
    minus = b"param a = 1\nminimize " + b"-" * (5 * 1024 * 1024) + b"a\n"
    cases.append(("long_line_minus", minus, "nested too deeply", 1))
    pows = b"param a = 1\nminimize a" + b"^a" * (1024 * 1024) + b"\n"
    cases.append(("long_line_pow", pows, "nested too deeply", 1))
    calls = b"param a = 1\nminimize " + b"exp(" * 100000 + b"a" + b")" * 100000 + b"\n"
    cases.append(("deep_calls", calls, "nested too deeply", 1))
    cases.append(("nul_byte", b"param a = 1\nminimize a\x00\n", "2:11: NUL byte in the source file", 1))
    cases.append(("nul_in_comment", b"param a = 1 # \x00\nminimize a\n", "1:15: NUL byte in the source file", 1))
    cases.append(("invalid_utf8", b"param a = 1\nminimize a # caf\xe9\n", "2:17: invalid UTF-8 sequence starting with byte 0xe9", 1))
    cases.append(("escape_sequence", b"param a = 1\nminimize a \x1b[2J\x1b[31m\n",
                  "2:12: unexpected control character 0x1b", 1))
    cases.append(("binary_bytes", b"param a = 1\n\x7fELF\x02\x01\x01\n", "2:1: unexpected control character 0x7f", 1))
    cases.append(("invalid_utf8_code", b"param \xff = 1\nminimize a\n", "1:7: invalid UTF-8 byte 0xff", 1))
    # 0xff begins no UTF-8 sequence even before continuation bytes: the line is not quoted.
    cases.append(("invalid_utf8_ff_continued", b"param a = 1\nminimize a # \xff\x80\x80\n",
                  "2:14: invalid UTF-8 byte 0xff", 1))
    # A C1 control character (U+009B, CSI) in a comment: the line under the error is not quoted.
    cases.append(("c1_control_in_comment", b"param a = 1\nminimize b # \xc2\x9b31m\n", "2:10: undefined name `b`", 1))
    cases.append(("truncated_utf8", b"param a = 1 # \xe2\x82", "1:15: invalid UTF-8: truncated sequence at the end of the file", 1))
    # The parser's bounds (32 dim names, 64 dims in a type, 256 arguments or list elements)
    # are reported at the item beyond the bound (the type, for its dims), not at the token after it.
    dims = "dim " + ", ".join("D%d" % i for i in range(33)) + "\ninput x: [D0, 2]\nminimize mean(x)\n"
    cases.append(("dim_names_33", dims.encode(), "1:%d: too many dims (at most 32)" % (dims.index("D32") + 1), 1))
    rank65 = "param W: [" + ", ".join(["1"] * 65) + "] = zeros\nminimize sum(W)\n"
    cases.append(("type_dims_65", rank65.encode(), "1:10: tensors may have at most 8 dims", 1))
    args = "def f(" + ", ".join("a%d" % i for i in range(257)) + ") = a0\nparam a = 1\nminimize a\n"
    cases.append(("def_args_257", args.encode(), "1:%d: too many arguments (more than 256)" % (args.index("a256") + 1), 1))
    call = "param a = 1\nminimize sum(a" + ", 2" * 256 + ")\n"
    cases.append(("call_args_257", call.encode(),
                  "2:%d: too many arguments (more than 256)" % (call.rindex("2") - call.index("\n")), 1))
    items = "param a = 1\nminimize sum(reshape(a, [" + ", ".join(["1"] * 256) + ", 2]))\n"
    cases.append(("list_items_257", items.encode(),
                  "2:%d: too many elements in a list (more than 256)" % (items.index("2]") - items.index("\n")), 1))
    double = "param a = 1\ndef f0(x) = x * x\n"
    for i in range(1, 41):
        double += "def f%d(x) = f%d(x) + f%d(x)\n" % (i, i - 1, i - 1)
    double += "minimize f40(a)\n"
    cases.append(("defs_doubling_40", double.encode(), "", 0))
    # A constant passed down 40 defs, doubled at each: folded once per call, not 2^40 times.
    slope = "param a: [3] = ones\ndef f0(x, s) = leaky_relu(x, s)\n"
    for i in range(1, 41):
        slope += "def f%d(x, s) = f%d(x, s + s)\n" % (i, i - 1)
    slope += "minimize sum(f40(a, 0.1))\n"
    cases.append(("defs_constant_doubling_40", slope.encode(), "", 0))
    # A chain of 60 bindings, each twice the last: folded once where each is bound, not
    # 2^60 times at the use. The constant one is used where constants are needed (an axis, a
    # whole number, by a chain of whole numbers); the other is an error that names the last
    # binding.
    for name, c0, tail, expected, rc in (
            ("bindings_constant_doubling_60", "0.5 ^ 60",
             "minimize sum(leaky_relu(a, c60)) + sum(a, axis = d60 - 1) with sgd(lr = c60 / 10)\n", "", 0),
            ("bindings_doubling_60", "sum(a)", "minimize sum(leaky_relu(a, c60))\n",
             "124:28: the slope of leaky_relu must be a constant (numbers, true/false, arithmetic and names bound "
             "to constants), but `c60` (bound at 62:1) is not a constant", 1)):
        text = "param a: [3] = ones\nc0 = %s\n" % c0
        for i in range(1, 61):
            text += "c%d = c%d + c%d\n" % (i, i - 1, i - 1)
        text += "d0 = 2 ^ 0 - 2 ^ 0 + 1\n"
        for i in range(1, 61):
            text += "d%d = d%d * d%d\n" % (i, i - 1, i - 1)
        cases.append((name, (text + tail).encode(), expected, rc))
    # The same 40 defs given a binding that is not a constant: the error names it, found by
    # following each argument once.
    slope_bad = slope.replace("param a: [3] = ones\n", "param a: [3] = ones\nh = sum(a)\n")
    cases.append(("defs_doubling_40_not_constant", slope_bad.replace("f40(a, 0.1)", "f40(a, h)").encode(),
                  "3:30: the slope of leaky_relu must be a constant (numbers, true/false, arithmetic and names "
                  "bound to constants), but `h` (bound at 2:1) is not a constant", 1))
    grow = "param a = 1\ndef f0(x) = x * 2\n"
    for i in range(1, 41):
        grow += "def f%d(x) = f%d(x) + f%d(x * 3)\n" % (i, i - 1, i - 1)
    grow += "minimize f40(a)\n"
    cases.append(("defs_growing_40", grow.encode(), "the program grows beyond", 1))
    chain = "param a = 1\ndef f0(x) = x + 1\n"
    for i in range(1, 200):
        chain += "def f%d(x) = f%d(x) * 2\n" % (i, i - 1)
    chain += "minimize f199(a)\n"
    cases.append(("defs_nested_200", chain.encode(), "nested too deeply", 1))
    deep_defs = "param a = 1\ndef f0(x) = x\n"
    for i in range(1, 60):
        deep_defs += "def f%d(x) = %sf%d(x)%s\n" % (i, "exp(" * 200, i - 1, ")" * 200)
    deep_defs += "minimize f59(a)\n"
    cases.append(("defs_deep_bodies", deep_defs.encode(), "nested too deeply through def calls", 1))
    cases.append(("empty_file", b"", "FILE: the model has no `minimize` statement", 1))
    cases.append(("missing_file", None, "FILE: cannot read file: No such file or directory", 1))
    os.mkdir(os.path.join(tmp, "directory.grad"))
    cases.append(("directory", None, "FILE: is a directory, not a model file", 1))
    out = []
    for name, data, expected, rc in cases:
        path = os.path.join(tmp, name + ".grad")
        if data is not None:
            with open(path, "wb") as f:
                f.write(data)
        out.append((path, expected, rc))
    return out


def newline_in_name(gradc, tmp):
    """A file name holding a newline or an escape keeps the error on one line, escaped."""
    problems = []
    bad = os.path.join(tmp, "two\nlines\x1b[31m.grad")
    with open(bad, "w") as f:
        f.write("param a = 1\nminimize a +\n")
    for path, want in ((bad, ":3:1: error: expected an expression"),
                       (os.path.join(tmp, "no\nsuch.grad"), ": error: cannot read file: No such file or directory")):
        rc, out, err = run(gradc, path)
        shown = path.replace("\n", "\\n").replace("\x1b", "\\x1b")
        if rc != 1 or not err.startswith(shown + want) or "\x1b" in err or err.count("\n") > 3:
            problems.append("name %r: exit %s, stderr %r" % (path, rc, err[:500]))
    # The printed program names its file in each line's comment, escaped the same way.
    good = os.path.join(tmp, "esc\x1b[31m.grad")
    with open(good, "w") as f:
        f.write("param a = 1\nminimize a * a\n")
    for stage in ("ast", "ir", "grad", "opt", "step", "loops"):
        p = subprocess.run([gradc, "inspect", good, "--stage", stage], capture_output=True, timeout=TIMEOUT)
        out = p.stdout.decode("utf-8", "replace")
        if p.returncode != 0 or "\x1b" in out or "esc\\x1b[31m.grad" not in out:
            problems.append("inspect --stage %s of %r: exit %s, stdout %r" % (stage, good, p.returncode, out[:500]))
    return problems


def quoted_lines(gradc, tmp):
    """The line under an error is quoted as a CSV row is: characters a terminal cannot show
    escaped, a line of more than 1,000 bytes as a window of 80 columns around the caret."""
    problems = []
    esc = os.path.join(tmp, "quoted_escape.grad")
    with open(esc, "wb") as f:
        f.write(b"param a = 1\nminimize a \x1b[2J\n")
    rc, out, err = run(gradc, esc)
    want = esc + ":2:12: error: unexpected control character 0x1b\nminimize a \\x1b[2J\n" + " " * 11 + "^\n"
    if rc != 1 or err != want:
        problems.append("escaped quote: exit %s, stderr %r, want %r" % (rc, err[:500], want))
    long_line = os.path.join(tmp, "quoted_long.grad")
    with open(long_line, "w") as f:
        f.write("param a = 1\nminimize a" + " + a" * 300 + " + b\n")
    rc, out, err = run(gradc, long_line)
    lines = err.split("\n")
    want = "%s:2:%d: error: undefined name `b`" % (long_line, len("minimize a" + " + a" * 300 + " + ") + 1)
    if (rc != 1 or len(lines) != 4 or lines[0] != want or not lines[1].startswith("...")
            or not lines[1].endswith(" + a + b") or len(lines[1]) > 83
            or lines[2] != " " * (len(lines[1]) - 1) + "^"):
        problems.append("long line's quote: exit %s, stderr %r" % (rc, err[:500]))
    return problems


def main():
    gradc, errors_dir = sys.argv[1], sys.argv[2]
    failures, count = [], 0
    for name in sorted(os.listdir(errors_dir)):
        if not name.endswith(".grad"):
            continue
        path = os.path.join(errors_dir, name)
        with open(path, encoding="utf-8") as f:
            m = re.search(r"^# ERROR: (.*)$", f.read(), re.M)
        if not m:
            failures.append("%s: no `# ERROR:` line" % path)
            continue
        count += 1
        problem = check_case(gradc, path, m.group(1).strip())
        if problem:
            failures.append("%s: %s" % (path, problem))
    with tempfile.TemporaryDirectory() as tmp:
        for path, expected, rc in generated(tmp):
            count += 1
            problem = check_case(gradc, path, expected, rc)
            if problem:
                failures.append("%s (generated): %s" % (os.path.basename(path), problem))
        count += 1
        failures += newline_in_name(gradc, tmp)
        count += 1
        failures += quoted_lines(gradc, tmp)
    for f in failures:
        print("FAIL", f)
    print("%d of %d malformed-model cases behave" % (count - len(failures), count))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
