#!/usr/bin/env python3
"""Checkpoints survive SIGKILL, and a run resumed after each kill ends bit for bit where an
uninterrupted run ends.

Usage: sigkill_resume.py PATH/TO/gradc

Trains tests/runtime/classify.grad on 3,000 generated rows for 40 epochs with --save, and
kills it with SIGKILL 20 times at random moments; after every kill each file in the folder
must be a whole checkpoint (or a leftover temporary file) that gradc loads, and the next run
resumes from it with `--init CKPT --epochs REMAINING`. The final weights must equal those of
one uninterrupted run, bit for bit (the checkpoint files are compared byte for byte). A run
that finishes before its kill ends a chain of resumed runs, which is compared the same way,
and the next run starts a new chain from scratch, until 20 kills have landed.
"""

import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support"))
import clitest  # noqa: E402
from clitest import check, read_safetensors  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(os.path.dirname(HERE), "runtime", "classify.grad")
EPOCHS = 40
KILLS = 20


def read_checkpoint(path):
    """The metadata of a safetensors file, after checking that every tensor is whole."""
    tensors, meta = read_safetensors(path)
    for name, (_, shape, values) in tensors.items():
        assert len(values) == math.prod(shape), (name, shape, len(values))
    return meta


def main():
    gradc = sys.argv[1]
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "blobs.csv")
        with open(data, "w") as f:
            f.write("x1,x2,y\n")
            centres = [(0, 3), (3, -2), (-3, -2)]
            for i in range(3000):
                c = i % 3
                f.write("%.4f,%.4f,%d\n" % (centres[c][0] + rng.gauss(0, 1.5),
                                            centres[c][1] + rng.gauss(0, 1.5), c))
        base = ["train", MODEL, "--data", data, "--batch-size", "16", "--seed", "3"]
        whole = os.path.join(tmp, "whole.safetensors")
        t0 = time.time()
        p = subprocess.run([gradc, *base, "--epochs", str(EPOCHS), "--save", whole],
                           capture_output=True, text=True, timeout=600)
        duration = time.time() - t0
        check(p.returncode == 0, "the uninterrupted run: %s" % p.stderr)

        ckdir = os.path.join(tmp, "ck")
        os.mkdir(ckdir)
        ckpt = os.path.join(ckdir, "ckpt.safetensors")
        kills = 0
        runs = 0
        chains = 0
        while True:
            epoch = 0
            if os.path.exists(ckpt):
                epoch = int(read_checkpoint(ckpt)["gradc.epoch"])
            if epoch >= EPOCHS:
                # A chain of killed and resumed runs reached the end: it must end where the
                # uninterrupted run ends. When a resumed run finished before its kill (a short
                # remainder on a loaded machine), another chain starts from scratch.
                chains += 1
                with open(whole, "rb") as a, open(ckpt, "rb") as b:
                    check(a.read() == b.read(),
                          "chain %d: the resumed run ends bit for bit where the uninterrupted run ends"
                          % chains)
                if kills >= KILLS:
                    break
                os.remove(ckpt)
                continue
            args = [gradc, *base, "--save", ckpt, "--epochs", str(EPOCHS - epoch)]
            if os.path.exists(ckpt):
                args += ["--init", ckpt]
            runs += 1
            proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if kills < KILLS:
                time.sleep(rng.uniform(0.05, max(0.1, duration * 0.5)))
                proc.send_signal(signal.SIGKILL)
                _, err = proc.communicate(timeout=60)
                if proc.returncode == -signal.SIGKILL:
                    kills += 1
                else:
                    check(proc.returncode == 0, "a run before the kill: %s" % err.decode())
            else:
                _, err = proc.communicate(timeout=600)
                check(proc.returncode == 0, "the last resumed run: %s" % err.decode())
            for name in os.listdir(ckdir):
                path = os.path.join(ckdir, name)
                if name == "ckpt.safetensors":
                    try:
                        read_checkpoint(path)
                    except Exception as e:  # a torn file
                        check(False, "a torn checkpoint after kill %d: %r" % (kills, e))
                    ev = subprocess.run([gradc, "eval", MODEL, "--weights", path, "--data", data],
                                        capture_output=True, text=True, timeout=120)
                    check(ev.returncode == 0, "gradc loads the checkpoint: %s" % ev.stderr)
                else:
                    check(name.startswith("ckpt.safetensors.tmp."), "an unexpected file %s" % name)
                    os.remove(path)
            if clitest.failures or runs > 200:
                break
        check(kills == KILLS, "%d kills landed" % kills)
        print("%d kills, %d runs, %d chain(s) of resumed runs" % (kills, runs, chains))
    if clitest.failures:
        print("%d failure(s)" % len(clitest.failures))
        return 1
    print("every checkpoint was whole; the resumed run equals the uninterrupted one")
    return 0


if __name__ == "__main__":
    sys.exit(main())
