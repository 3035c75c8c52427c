#!/usr/bin/env python3
"""Makes the data sets of examples/data/ from the CSV files that scikit-learn ships.

Each data set is split once into NAME_train.csv and NAME_test.csv (about 80/20, stratified by
class for classification) with a fixed seed, then standardised with statistics of the
training part only:
  digits         pixels 0..16 divided by 16 (so 0..1)
  iris, wine,
  breast_cancer  every feature z-scored: (x - mean_train) / std_train (population std)
  diabetes       every feature and the target z-scored with the training mean and std
Rows are: the features, then the label (a class index 0..C-1) or the target, with a header.
Also writes xor.csv and the synthetic linear_regression_{train,test}.csv (y = 3x - 2 + noise).

Only the Python standard library is used, so the output is the same on every machine:
    python3 scripts/make_datasets.py [--sklearn-data DIR] [--out examples/data]
"""

import argparse
import csv
import gzip
import math
import os
import random

SEED = 20240601
TEST_FRACTION = 0.2
DEFAULT_SKLEARN = "/usr/lib/python3/dist-packages/sklearn/datasets/data"


def read_sklearn_csv(path):
    """The sklearn layout: a first line `n_samples,n_features,class names...`, then rows of
    features followed by the integer class."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    n, nf = int(rows[0][0]), int(rows[0][1])
    data = [[float(v) for v in r[:nf]] + [int(r[nf])] for r in rows[1:] if r]
    assert len(data) == n, path
    return data, nf


def read_digits(path):
    with gzip.open(path, "rt") as f:
        rows = [r for r in csv.reader(f) if r]
    return [[float(v) for v in r[:64]] + [int(float(r[64]))] for r in rows], 64


def read_diabetes(data_path, target_path):
    with gzip.open(data_path, "rt") as f:
        xs = [[float(v) for v in line.split()] for line in f if line.strip()]
    with gzip.open(target_path, "rt") as f:
        ys = [float(line) for line in f if line.strip()]
    assert len(xs) == len(ys) == 442
    return [x + [y] for x, y in zip(xs, ys)], 10


def stratified_split(rows, rng):
    """Per class: shuffle, the first round(20%) go to test. Then both parts are shuffled."""
    by_class = {}
    for r in rows:
        by_class.setdefault(r[-1], []).append(r)
    train, test = [], []
    for c in sorted(by_class):
        group = by_class[c]
        rng.shuffle(group)
        k = round(len(group) * TEST_FRACTION)
        test += group[:k]
        train += group[k:]
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test


def random_split(rows, rng):
    rows = list(rows)
    rng.shuffle(rows)
    k = round(len(rows) * TEST_FRACTION)
    return rows[k:], rows[:k]


def zscore(train, test, cols):
    """Standardises columns `cols` of both parts with the training mean and population std."""
    stats = []
    for j in cols:
        vals = [r[j] for r in train]
        mean = math.fsum(vals) / len(vals)
        std = math.sqrt(math.fsum((v - mean) ** 2 for v in vals) / len(vals)) or 1.0
        stats.append((mean, std))
        for r in train + test:
            r[j] = (r[j] - mean) / std
    return stats


def fmt(v):
    if isinstance(v, int):
        return str(v)
    s = format(v, ".7g")
    return "0" if s == "-0" else s


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        f.write(",".join(header) + "\n")
        for r in rows:
            f.write(",".join(fmt(v) for v in r) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sklearn-data", default=DEFAULT_SKLEARN)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "examples", "data"))
    args = ap.parse_args()
    src, out = args.sklearn_data, args.out
    os.makedirs(out, exist_ok=True)
    stats_lines = []

    sets = [
        ("digits", *read_digits(os.path.join(src, "digits.csv.gz")), True),
        ("iris", *read_sklearn_csv(os.path.join(src, "iris.csv")), True),
        ("breast_cancer", *read_sklearn_csv(os.path.join(src, "breast_cancer.csv")), True),
        ("wine", *read_sklearn_csv(os.path.join(src, "wine_data.csv")), True),
        ("diabetes", *read_diabetes(os.path.join(src, "diabetes_data_raw.csv.gz"),
                                    os.path.join(src, "diabetes_target.csv.gz")), False),
    ]
    for name, rows, nf, classification in sets:
        rng = random.Random(SEED)
        if classification:
            train, test = stratified_split(rows, rng)
        else:
            train, test = random_split(rows, rng)
        if name == "digits":
            for r in train + test:
                for j in range(nf):
                    r[j] /= 16.0
        elif classification:
            zscore(train, test, range(nf))
        else:
            stats = zscore(train, test, range(nf + 1))
            mean, std = stats[-1]
            stats_lines.append(f"{name}: target = {mean!r} + {std!r} * y")
        header = [f"x{j}" for j in range(nf)] + ["label" if classification else "target"]
        write_csv(os.path.join(out, f"{name}_train.csv"), header, train)
        write_csv(os.path.join(out, f"{name}_test.csv"), header, test)
        print(f"{name}: {len(train)} train, {len(test)} test rows, {nf} features")

    write_csv(os.path.join(out, "xor.csv"), ["x1", "x2", "y"],
              [[0.0, 0.0, 0.0], [0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])

    rng = random.Random(SEED)
    def linear(n):
        rows = []
        for _ in range(n):
            x = rng.uniform(-1.0, 1.0)
            rows.append([x, 3.0 * x - 2.0 + rng.gauss(0.0, 0.1)])
        return rows
    write_csv(os.path.join(out, "linear_regression_train.csv"), ["x", "y"], linear(200))
    write_csv(os.path.join(out, "linear_regression_test.csv"), ["x", "y"], linear(50))
    for line in stats_lines:
        print(line)


if __name__ == "__main__":
    main()
