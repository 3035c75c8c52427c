"""What the command-line test scripts share: checks that collect failures instead of stopping
at the first, and running the gradc under test (set GRADC before the first run)."""
import subprocess

GRADC = None
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def run(*args, timeout=300):
    """(exit status, stdout, stderr) of `gradc ARGS`."""
    p = subprocess.run([GRADC, *args], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path

