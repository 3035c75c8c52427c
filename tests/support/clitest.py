"""What the command-line test scripts share: checks that collect failures instead of stopping
at the first, and running the gradc under test (set GRADC before the first run)."""
import array
import json
import struct
import subprocess

GRADC = None
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def run(*args, timeout=300, cwd=None):
    """(exit status, stdout, stderr) of `gradc ARGS` (run in the folder `cwd`)."""
    p = subprocess.run([GRADC, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)
    return p.returncode, p.stdout, p.stderr


def run_on_terminal(cmd, columns, cwd=None, timeout=120):
    """(exit status, bytes shown on the terminal, stdout) of `cmd` run with its stderr on a
    pseudo-terminal `columns` wide (stdout a pipe)."""
    import fcntl
    import os
    import pty
    import termios
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=slave, cwd=cwd)
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child has exited and closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    out = p.stdout.read().decode()
    return p.wait(timeout=timeout), shown, out


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path



def read_safetensors(path):
    """({name: (dtype, shape, list of values)}, metadata) of an F32/F64 safetensors file."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        a, b = info["data_offsets"]
        code = {"F32": "f", "F64": "d"}[info["dtype"]]
        out[name] = (info["dtype"], info["shape"], list(array.array(code, blob[8 + n + a:8 + n + b])))
    return out, meta


def write_safetensors(path, tensors, meta=None):
    """Writes {name: (dtype, shape, values)} as a safetensors file; returns the path."""
    header, data = {}, b""
    for name, (dtype, shape, values) in tensors.items():
        blob = array.array({"F32": "f", "F64": "d"}[dtype], values).tobytes()
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    if meta:
        header["__metadata__"] = meta
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)
    return path
