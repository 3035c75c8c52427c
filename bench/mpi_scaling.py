#!/usr/bin/python3
"""Scaling of data-parallel training (docs/distributed.md): the large bench config trained on
random data by one process (the fused step), by `mpirun -np 1` (gradient, exchange, update)
and by `mpirun -np R` for each R of --ranks, with the machine's cores shared among the ranks.
Prints ms per step (the wall time of a run of 2 + N steps less that of a run of 2 steps,
over N: start-up, reading and compiling cancel out), the speed-up over one process, and the
share of each step spent in the gradient exchange (MPI_Allreduce; rank 0's own measure).

Usage: /usr/bin/python3 bench/mpi_scaling.py [--gradc build/gradc] [--config large]
       [--steps 60] [--ranks 1,2]
"""
import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BATCH = {"tiny": 32, "small": 64, "medium": 128, "large": 256}


def write_data(path, rows, width, classes):
    rng = random.Random(0)
    with open(path, "w") as f:
        for _ in range(rows):
            f.write(",".join("%.3f" % rng.random() for _ in range(width)))
            f.write(",%d\n" % rng.randrange(classes))


def input_width(model):
    text = open(model).read()
    return int(re.search(r"input x: \[B, (\d+)\]", text).group(1))


def run(cmd, env):
    start = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    took = time.perf_counter() - start
    if p.returncode != 0:
        sys.exit("failed: %s\n%s%s" % (" ".join(cmd), p.stdout, p.stderr))
    m = re.search(r"of which ([\d.]+) ms \(([\d.]+)%\)", p.stderr)
    return took, (float(m.group(1)), float(m.group(2))) if m else None


def per_step(cmd, steps, env):
    """ms per step from runs of 2 and 2 + steps steps, and the exchange of the longer run."""
    short, _ = run(cmd + ["--steps", "2"], env)
    long, exchange = run(cmd + ["--steps", str(2 + steps)], env)
    return 1e3 * (long - short) / steps, exchange


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gradc", default=os.path.join(ROOT, "build", "gradc"))
    ap.add_argument("--config", default="large")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--ranks", default="1,2")
    a = ap.parse_args()
    mpirun = shutil.which("mpirun")
    if not mpirun:
        sys.exit("mpirun not found (Debian: openmpi-bin)")
    cores = os.cpu_count() or 1
    model = os.path.join(HERE, "models", a.config + ".grad")
    batch = BATCH[a.config]
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data.csv")
        write_data(data, batch * (a.steps + 2), input_width(model), 10)
        train = ["train", model, "--data", data, "--batch-size", str(batch), "--no-shuffle"]
        rows = []
        ms, _ = per_step([a.gradc] + train + ["--threads", str(cores)], a.steps, env)
        base = ms
        rows.append(("1 process, fused step", cores, ms, None))
        for r in [int(x) for x in a.ranks.split(",")]:
            threads = max(1, cores // r)
            ms, ex = per_step([mpirun, "--oversubscribe", "--allow-run-as-root", "--bind-to", "none",
                          "-np", str(r), a.gradc] + train + ["--threads", str(threads)], a.steps, env)
            rows.append(("mpirun -np %d" % r, threads, ms, ex))
    print("%s: batch %d, %d steps, %d cores" % (a.config, batch, a.steps, cores))
    print("%-24s %8s %10s %9s %22s" % ("run", "threads", "ms/step", "speed-up", "allreduce ms (share)"))
    for name, threads, ms, ex in rows:
        exch = "%.1f (%.1f%%)" % ex if ex else "-"
        print("%-24s %8d %10.1f %8.2fx %22s" % (name, threads, ms, base / ms, exch))


if __name__ == "__main__":
    main()
