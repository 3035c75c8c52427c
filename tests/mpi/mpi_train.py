"""Data-parallel training against one process: `mpirun -np 2` and `-np 4` train 50 steps and
must end with the weights of single-process training with the same global batch (relative
error 1e-5), and every rank must hold the same weights bit for bit (each rank saves its
checkpoint with the test hook GRADC_MPI_SAVE_EVERY_RANK=1; the files must be identical).

Two settings: --no-shuffle with batches of 32, and a shuffled run of batches of 37 over two
epochs, whose shares are uneven (37 rows over 2 or 4 ranks) and whose epoch ends with a
smaller batch (1438 rows = 38 * 37 + 32).

Start-up: ranks started with different flags (mpirun's `A : B` form), one rank that cannot
read its data, --drop-last with a batch larger than the file, a model that needs more than
--max-memory (as in one process), or a bad flag (on every rank, or on one) all exit with one
error, printed once, on one line that names the rank (a CSV error then quotes its row under
it). A model's warning, and that of a --seed a resumed run does not use, are printed once too.
A run of many epochs does not grow in memory, and a rank's memory is that of its share of a
batch.

usage: mpi_train.py GRADC   (exit 77 = skipped when mpirun is missing)
"""
import os
import re
import subprocess
import sys
import tempfile

from common import env, mpirun_or_skip, read_safetensors

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "examples", "digits.grad")
DATA = os.path.join(ROOT, "examples", "data", "digits_train.csv")

SETTINGS = {
    "no_shuffle_32": ["--steps", "50", "--batch-size", "32", "--no-shuffle"],
    "shuffled_37": ["--steps", "50", "--epochs", "2", "--batch-size", "37", "--seed", "3"],
}


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env(), timeout=300, **kw)
    if p.returncode != 0:
        print("FAILED:", " ".join(cmd), "\n", p.stdout, p.stderr)
        sys.exit(1)
    return p


def relative_error(a, b):
    worst = max(abs(x) for x in b) or 1.0
    return max(abs(x - y) for x, y in zip(a, b)) / worst


def start_checks(gradc, mpirun, tmp):
    train = [gradc, "train", MODEL, "--steps", "5"]
    with open(DATA) as f:
        header, row = f.readline(), f.readline().rstrip("\n")
    cells = row.split(",")
    cells[2] = "x"
    bad_row = ",".join(cells)
    bad = os.path.join(tmp, "bad.csv")
    with open(bad, "w") as f:
        f.write(header + bad_row + "\n")
    col = len(cells[0]) + len(cells[1]) + 3
    fixed = os.path.join(tmp, "fixed.grad")
    with open(fixed, "w") as f:
        f.write("input x: [32, 64]\ninput y: int[32]\nparam W: [64, 10] = zeros\n"
                "minimize cross_entropy(x @ W, y) with sgd(lr = 0.1)\n")
    cases = [
        ("different --lr", ["-np", "1"] + train + ["--data", DATA, ":", "-np", "1"] + train + ["--data", DATA, "--lr", "0.1"],
         "did not start the same training"),
        ("rank 2 cannot read its data", ["-np", "2"] + train + ["--data", DATA, ":", "-np", "1"] + train + ["--data", "/nonexistent.csv"],
         "/nonexistent.csv: error: rank 2 of 3: cannot read file: No such file or directory\n"),
        ("rank 1's data has an error", ["-np", "1"] + train + ["--data", DATA, ":", "-np", "1"] + train + ["--data", bad],
         "%s:2:%d: error: rank 1 of 2: 'x' is not a number\n%s" % (bad, col, bad_row[:20])),
        # (found by every rank after the start-up check, and printed by each)
        ("inputs of a fixed row count", ["-np", "3", gradc, "train", fixed, "--data", DATA],
         DATA + ": error: distributed training needs inputs whose batch dim is a `dim`; this model's "
         "inputs take exactly 32 rows\n"),
        # A bad flag is found before MPI starts: every rank printed it (3 lines).
        ("a bad flag on every rank", ["-np", "3"] + train + ["--data", DATA, "--batch-size", "0"],
         "gradc: error: --batch-size: takes a whole number >= 1, not '0' (see gradc train --help)\n"),
        ("a bad flag on rank 2", ["-np", "2"] + train + ["--data", DATA, ":", "-np", "1"] + train + ["--data", DATA, "--batch-size", "0"],
         "gradc: error: rank 2 of 3: --batch-size: takes a whole number >= 1, not '0' (see gradc train --help)\n"),
        # (the batch was cut to the file's rows before the check: it trained on every row)
        ("--drop-last with a batch larger than the file", ["-np", "2"] + train + ["--data", DATA, "--batch-size", "5000",
                                                              "--drop-last"],
         DATA + ": error: --drop-last with --batch-size 5000 drops every row: the file has 1438 rows, fewer "
         "than one batch\n"),
        # (not checked at all: a rank could run out of memory mid-training)
        ("--max-memory", ["-np", "2"] + train + ["--data", DATA, "--max-memory", "100"],
         MODEL + ": error: the compiled program needs "),
        # (found at the first save, it left rank 1 waiting --mpi-timeout, then MPI_ABORT)
        ("--save names a folder", ["-np", "2", gradc, "train", MODEL, "--data", DATA, "--epochs", "2",
                                   "--mpi-timeout", "5", "--save", os.path.dirname(DATA)],
         os.path.dirname(DATA) + ": error: cannot write file: Is a directory"),
    ]
    failures = 0
    for name, args, expect in cases:
        p = subprocess.run(mpirun + args, capture_output=True, text=True, env=env(), timeout=300)
        ok = (p.returncode != 0 and p.stderr.count(expect) == 1 and p.stderr.count("error:") == 1 and "epoch" not in p.stdout
              and "MPI_ABORT" not in p.stderr and "gradc: rank" not in p.stderr)
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} start-up, {name}: exit {p.returncode}, error printed {p.stderr.count(expect)} time(s)")
        if not ok:
            print(p.stderr)
    return failures


def warning_once(gradc, mpirun, tmp):
    """A model's warning (a param that does not reach the loss) is printed by rank 0 only; every
    rank loads the model, and each printed it."""
    model, data = os.path.join(tmp, "unused.grad"), os.path.join(tmp, "unused.csv")
    with open(model, "w") as f:
        f.write("dim B\ninput x: [B, 1]\nparam w: [1, 1] = ones\nparam u: [3] = ones\n"
                "minimize mean(x @ w) with sgd(lr = 0.1)\n")
    with open(data, "w") as f:
        f.write("x\n0.1\n0.7\n1.3\n")
    p = run(mpirun + ["-np", "3", gradc, "train", model, "--data", data])
    n = p.stderr.count("warning: param u does not reach the loss")
    print(f"{'ok  ' if n == 1 else 'FAIL'} a model's warning under -np 3: printed {n} time(s)")
    return n != 1


def seed_warning(gradc, mpirun, tmp):
    """A run resumed from a checkpoint keeps the checkpoint's data order: another --seed is
    not used, and rank 0 says so, as one process does (it was silently ignored)."""
    ckpt = os.path.join(tmp, "seed.st")
    run([gradc, "train", MODEL, "--data", DATA, "--steps", "3", "--save", ckpt])
    p = run(mpirun + ["-np", "2", gradc, "train", MODEL, "--data", DATA, "--steps", "3", "--init", ckpt,
                      "--seed", "9"])
    n = p.stderr.count(f"{ckpt}: warning: --seed 9 is not used: a run resumed from a checkpoint keeps its "
                       "data order (seed 0)")
    print(f"{'ok  ' if n == 1 else 'FAIL'} --seed of a resumed run under -np 2: its warning printed {n} time(s)")
    return n != 1


def many_epochs(gradc, mpirun):
    """A run of many epochs keeps no figures of past epochs, as one process does not: 200,000
    epochs of the 4 rows of xor.csv end at the peak memory of 10,000 (it grew 25 MB, 130 bytes
    an epoch)."""
    # ASan's quarantine holds freed blocks: under a sanitizer build the peak says nothing of this.
    if re.search(r"lib(clang_rt\.)?asan", subprocess.run(["ldd", gradc], capture_output=True, text=True).stdout):
        print("skip 200,000 epochs under -np 1: a sanitizer build's peak memory says nothing of it")
        return False
    xor = os.path.join(ROOT, "examples", "xor.grad")
    data = os.path.join(ROOT, "examples", "data", "xor.csv")
    measure = ("import resource, subprocess, sys\n"
               "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)\n"
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    peaks = []
    for epochs in (10000, 200000):
        p = run([sys.executable, "-c", measure] + mpirun + ["-np", "1", gradc, "train", xor, "--data", data,
                                                           "--epochs", str(epochs)])
        peaks.append(int(p.stdout.split()[-1]))
    ok = peaks[1] - peaks[0] < 10000
    print(f"{'ok  ' if ok else 'FAIL'} 200,000 epochs under -np 1: peak {peaks[1]} KiB, 10,000 epochs: {peaks[0]} KiB")
    return not ok


def rank_memory(gradc, mpirun, tmp):
    """A rank holds the work of its share of a batch, not of the whole batch as well: under
    -np 2 a batch of 8192 rows whose step needs 250 MiB of work peaks below one process
    (each rank also set up a whole batch's step that only the NaN trap runs: 470 MB, one
    process 330 MB)."""
    data = os.path.join(tmp, "wide.csv")
    with open(data, "w") as f:
        f.write("a,b,c,d\n" + "1,2,3,4\n" * 8192)
    model = os.path.join(tmp, "wide.grad")
    with open(model, "w") as f:
        f.write("dim B\ninput x: [B, 4]\nparam W: [4, 4000] = ones\nminimize mean(relu(x @ W))\n")
    measure = ("import resource, subprocess, sys\n"
               "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)\n"
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    train = [gradc, "train", model, "--data", data, "--batch-size", "8192", "--steps", "2"]
    peaks = [int(run([sys.executable, "-c", measure] + prefix + train).stdout.split()[-1])
             for prefix in ([], mpirun + ["-np", "2"])]
    ok = peaks[1] < peaks[0]
    print(f"{'ok  ' if ok else 'FAIL'} a batch of 8192 rows: peak {peaks[1]} KiB a rank under -np 2, "
          f"{peaks[0]} KiB in one process")
    return not ok


def main():
    gradc = sys.argv[1]
    mpirun = mpirun_or_skip(gradc)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, flags in SETTINGS.items():
            single = os.path.join(tmp, f"{name}.single.st")
            run([gradc, "train", MODEL, "--data", DATA, "--save", single] + flags)
            ref = read_safetensors(single)
            for ranks in (2, 4):
                save = os.path.join(tmp, f"{name}.np{ranks}.st")
                e = env()
                e["GRADC_MPI_SAVE_EVERY_RANK"] = "1"
                p = subprocess.run(mpirun + ["-np", str(ranks), gradc, "train", MODEL, "--data", DATA,
                                             "--save", save] + flags,
                                   capture_output=True, text=True, env=e, timeout=300)
                if p.returncode != 0:
                    print(f"FAILED {name} np {ranks}: exit {p.returncode}\n{p.stdout}\n{p.stderr}")
                    failures += 1
                    continue
                got = read_safetensors(save)
                for param in ("W1", "b1", "W2", "b2", "W1.m", "W1.v"):
                    err = relative_error(got[param], ref[param])
                    ok = err <= 1e-5
                    failures += not ok
                    print(f"{'ok  ' if ok else 'FAIL'} {name} np {ranks} {param}: relative error {err:.2e}")
                with open(save, "rb") as f:
                    first = f.read()
                for r in range(1, ranks):
                    with open(f"{save}.rank{r}", "rb") as f:
                        same = f.read() == first
                    failures += not same
                    print(f"{'ok  ' if same else 'FAIL'} {name} np {ranks}: rank {r} holds rank 0's weights bit for bit")
                # Only rank 0 prints the epoch lines: 50 steps are two epochs of 1438 rows in
                # batches of 32 (45 an epoch; --steps alone runs them all) or of 37 (39).
                lines = [l for l in p.stdout.splitlines() if l.startswith("epoch")]
                expected = 2
                ok = len(lines) == expected
                failures += not ok
                print(f"{'ok  ' if ok else 'FAIL'} {name} np {ranks}: {len(lines)} epoch lines (expected {expected})")
                ok = p.stderr.count(f"distributed: {ranks} ranks, ") == 1
                failures += not ok
                print(f"{'ok  ' if ok else 'FAIL'} {name} np {ranks}: rank 0's summary line")
        p = run(mpirun + ["-np", "1", gradc, "train", MODEL, "--data", DATA, "--steps", "2"])
        ok = p.stderr.startswith("distributed: 1 rank, ")
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} np 1: the summary line says 1 rank: {p.stderr!r}")
        failures += start_checks(gradc, mpirun, tmp)
        failures += warning_once(gradc, mpirun, tmp)
        failures += seed_warning(gradc, mpirun, tmp)
        failures += many_epochs(gradc, mpirun)
        failures += rank_memory(gradc, mpirun, tmp)
    print("failures:", failures)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
