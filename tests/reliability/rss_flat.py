#!/usr/bin/env python3
"""Memory stays flat over a million steps.

Usage: rss_flat.py PATH/TO/gradc

Trains examples/xor.grad for 1,000,000 steps (4 rows, one batch per epoch, no shuffle, so
one line per epoch on stdout) and samples VmRSS from /proc/PID/status as the lines arrive:
after step 1,000, then every 20,000 steps to the end. The largest sample may exceed the
first by less than 1 MB. (ctest label `slow`: the sanitizer run skips it.)
"""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEPS = 1_000_000


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main():
    gradc = sys.argv[1]
    args = [gradc, "train", os.path.join(ROOT, "examples", "xor.grad"), "--data",
            os.path.join(ROOT, "examples", "data", "xor.csv"), "--no-shuffle", "--batch-size", "4",
            "--steps", str(STEPS), "--epochs", str(STEPS)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = None
    samples = []
    lines = 0
    for line in proc.stdout:
        lines += 1
        if lines == 1000:
            first = rss_kb(proc.pid)
        elif lines > 1000 and lines % 20000 == 0 and lines < STEPS:
            samples.append((lines, rss_kb(proc.pid)))
    err = proc.stderr.read()
    proc.wait()
    if proc.returncode != 0 or lines != STEPS or first is None:
        print("FAIL: the run did not finish its %d steps (%d lines, status %d): %s"
              % (STEPS, lines, proc.returncode, err))
        return 1
    peak_at, peak = max(samples, key=lambda s: s[1])
    growth = peak - first
    print("VmRSS after 1,000 steps: %d kB; largest later sample: %d kB (step %d); growth %d kB"
          % (first, peak, peak_at, growth))
    if growth >= 1024:
        print("FAIL: RSS grew by %d kB (>= 1 MB)" % growth)
        return 1
    print("RSS stays flat")
    return 0


if __name__ == "__main__":
    sys.exit(main())
