#!/usr/bin/env python3
"""The cost of `gradc train --check-numerics` when nothing goes wrong.

Usage: bench/check_numerics.py PATH/TO/gradc [--repeats N] [--epochs N]

Trains each model on its data set with and without --check-numerics, alternating the two,
and compares the training steps per second that gradc prints for each epoch (the time of
the training loop alone: no JIT, no data loading). Prints the median of the repeats and the
relative cost. The issue's budget is 5%.
"""

import argparse
import os
import re
import statistics
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = [
    ("digits", "examples/digits.grad", "examples/data/digits_train.csv"),
    ("breast_cancer", "examples/breast_cancer.grad", "examples/data/breast_cancer_train.csv"),
    ("xor", "examples/xor.grad", "examples/data/xor.csv"),
]


def steps_per_second(gradc, model, data, epochs, flags):
    out = subprocess.run([gradc, "train", os.path.join(ROOT, model), "--data", os.path.join(ROOT, data),
                          "--epochs", str(epochs), "--threads", "1", *flags],
                         capture_output=True, text=True, check=True).stdout
    rates = [float(m) for m in re.findall(r"\((\d+(?:\.\d+)?) steps/s\)", out)]
    return statistics.median(rates)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gradc")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=30)
    a = ap.parse_args()
    print("%-14s %14s %14s %8s" % ("model", "steps/s", "checked", "cost"))
    for name, model, data in MODELS:
        plain, checked = [], []
        for _ in range(a.repeats):
            plain.append(steps_per_second(a.gradc, model, data, a.epochs, []))
            checked.append(steps_per_second(a.gradc, model, data, a.epochs, ["--check-numerics"]))
        p, c = statistics.median(plain), statistics.median(checked)
        print("%-14s %14.0f %14.0f %7.1f%%" % (name, p, c, 100.0 * (p - c) / p))


if __name__ == "__main__":
    main()
