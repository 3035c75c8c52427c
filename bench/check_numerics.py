#!/usr/bin/env python3
"""The cost of `gradc train --check-numerics` when nothing goes wrong.

Usage: bench/check_numerics.py PATH/TO/gradc [--repeats N] [--configs xor,tiny,...] [--threads N]

Trains each bench config (bench/models/NAME.grad, at its batch size) on random data with and
without --check-numerics, alternating the two, and compares the training steps per second
that gradc prints for each epoch (the time of the training loop alone: no JIT, no data
loading). For each run it takes the median over the run's epochs, then the median over the
repeats, and prints the relative cost. The issue's budget is 5%.
"""

import argparse
import os
import random
import re
import statistics
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# name: (batch, input width, label classes (0: a float target), rows, epochs)
CONFIGS = {
    "xor": (4, 2, 0, 256, 200),
    "tiny": (32, 784, 10, 2048, 40),
    "small": (64, 784, 10, 2048, 20),
    "medium": (128, 784, 10, 2048, 8),
    "large": (256, 1024, 10, 2048, 3),
}


def write_data(path, width, classes, rows):
    rng = random.Random(1)
    with open(path, "w") as f:
        for _ in range(rows):
            xs = ["%.3f" % rng.random() for _ in range(width)]
            y = str(rng.randrange(classes)) if classes else "%d" % rng.randrange(2)
            f.write(",".join(xs + [y]) + "\n")


def steps_per_second(gradc, model, data, batch, epochs, threads, flags):
    out = subprocess.run([gradc, "train", model, "--data", data, "--batch-size", str(batch),
                          "--epochs", str(epochs), "--threads", str(threads), *flags],
                         capture_output=True, text=True, check=True).stdout
    rates = [float(m) for m in re.findall(r"\((\d+(?:\.\d+)?) steps/s\)", out)]
    return statistics.median(rates)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gradc")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    print("%-8s %12s %12s %12s %8s" % ("config", "steps/s", "checked", "µs/step", "cost"))
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.configs.split(","):
            batch, width, classes, rows, epochs = CONFIGS[name]
            model = os.path.join(ROOT, "bench", "models", name + ".grad")
            data = os.path.join(tmp, name + ".csv")
            write_data(data, width, classes, rows)
            plain, checked = [], []
            for _ in range(a.repeats):
                plain.append(steps_per_second(a.gradc, model, data, batch, epochs, a.threads, []))
                checked.append(steps_per_second(a.gradc, model, data, batch, epochs, a.threads,
                                                ["--check-numerics"]))
            p, c = statistics.median(plain), statistics.median(checked)
            print("%-8s %12.0f %12.0f %12.1f %7.1f%%" % (name, p, c, 1e6 / p, 100.0 * (p - c) / p),
                  flush=True)


if __name__ == "__main__":
    main()
