#!/usr/bin/env python3
"""The cost of `gradc train --check-numerics` when nothing goes wrong.

Usage: bench/check_numerics.py PATH/TO/gradc [--repeats N] [--configs xor,tiny,...] [--threads N]

For each bench config (bench/models/NAME.grad at its batch size) runs `gradc bench --json`
with and without --check-numerics, alternating the two so that both see the same machine
load, `--repeats` times each. `gradc bench` times the compiled step alone, each step on its
own, and reports the median; with --check-numerics the step is the check-mode kernel and the
flag is read after every step, as `train --check-numerics` does. Prints the median over the
repeats of both step times and the relative cost. The budget is 5%.
"""

import argparse
import json
import os
import statistics
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = {"xor": 4, "tiny": 32, "small": 64, "medium": 128, "large": 256}


def step_us(gradc, model, batch, threads, flags):
    out = subprocess.run([gradc, "bench", model, "--batch-size", str(batch), "--threads", str(threads),
                          "--json", *flags], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["us_per_step"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gradc")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--configs", default=",".join(BATCH))
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    print("%-8s %6s %14s %14s %8s" % ("config", "batch", "µs/step", "checked", "cost"))
    for name in a.configs.split(","):
        model = os.path.join(ROOT, "bench", "models", name + ".grad")
        plain, checked = [], []
        for _ in range(a.repeats):
            plain.append(step_us(a.gradc, model, BATCH[name], a.threads, []))
            checked.append(step_us(a.gradc, model, BATCH[name], a.threads, ["--check-numerics"]))
        p, c = statistics.median(plain), statistics.median(checked)
        print("%-8s %6d %14.2f %14.2f %7.1f%%" % (name, BATCH[name], p, c, 100.0 * (c - p) / p), flush=True)


if __name__ == "__main__":
    main()
