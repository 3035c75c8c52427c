"""The NaN trap under mpirun: a non-finite loss stops every rank at the same step, and rank 0
names the first non-finite value at its model line, as one process does (docs/reliability.md):
every rank replays the epoch to the state before the failing step, rank 0 runs that batch in
the interpreter. tests/reliability/nan_log.grad is trained on data with x = 0 in row 37;
under `mpirun -np 2` and `-np 3` (uneven shares of the batch), unshuffled, shuffled over two
epochs (the row comes in the last, smaller batch) and resumed from a checkpoint, the error
must be the single-process error, printed once, with the source line;
mpirun exits non-zero, no epoch line is printed and nothing is saved; so too for a param that a
NaN gradient (masked out of the loss by where()) leaves NaN after an epoch's last step. Also: `--init` with a
checkpoint of an edited model file (another model hash) trains, with one warning.

usage: mpi_nan.py GRADC   (exit 77 = skipped when mpirun is missing)
"""
import os
import subprocess
import sys
import tempfile

from common import env, mpirun_or_skip

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "tests", "reliability", "nan_log.grad")

SETTINGS = {
    "no_shuffle": (["--batch-size", "4", "--no-shuffle"],
                   "nan_log.grad:9:5: error: log of 0 gives -inf in 'log(x)' at step 10, batch rows 36..39, "
                   "in the row read from DATA:39"),
    # Row 37 comes in the last, smaller batch of epoch 1's shuffled order.
    "shuffled": (["--batch-size", "5", "--seed", "2", "--epochs", "2"],
                 "error: log of 0 gives -inf in 'log(x)' at step 13, batch rows 60..63 of epoch 1's shuffled order, "
                 "in the row read from DATA:39"),
    # Resumed after an epoch on good data: the step count goes on from the checkpoint's.
    "resumed": (["--batch-size", "4", "--no-shuffle", "--init", "GOOD"],
                "error: log of 0 gives -inf in 'log(x)' at step 26, batch rows 36..39, in the row read from DATA:39"),
}


def main():
    gradc = sys.argv[1]
    mpirun = mpirun_or_skip(gradc)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, zero in (("bad", 37), ("good", -1)):
            with open(os.path.join(tmp, name + ".csv"), "w") as f:
                f.write("x,y\n")
                for i in range(64):
                    f.write("%g,%g\n" % (0.0 if i == zero else 0.5 + (i % 7) * 0.25, 0.3 * (i % 5)))
        data = os.path.join(tmp, "bad.csv")
        good = os.path.join(tmp, "good.safetensors")
        subprocess.run([gradc, "train", MODEL, "--data", os.path.join(tmp, "good.csv"), "--batch-size", "4",
                        "--no-shuffle", "--save", good], capture_output=True, check=True, timeout=300)
        for name, (flags, want) in SETTINGS.items():
            flags = [good if f == "GOOD" else f for f in flags]
            want = want.replace("DATA", data)  # row 37 of the data, line 39 of the file
            single = subprocess.run([gradc, "train", MODEL, "--data", data] + flags,
                                    capture_output=True, text=True, timeout=300)
            first = single.stderr.splitlines()[0] if single.stderr else ""
            if single.returncode != 1 or (want and not first.endswith(want)) or "log(x)" not in first:
                print(f"FAIL {name}, one process: exit {single.returncode}: {single.stderr}")
                failures += 1
                continue
            for ranks in (2, 3):
                save = os.path.join(tmp, f"{name}.np{ranks}.st")
                p = subprocess.run(mpirun + ["-np", str(ranks), gradc, "train", MODEL, "--data", data,
                                             "--save", save] + flags,
                                   capture_output=True, text=True, env=env(), timeout=300)
                ok = (p.returncode != 0 and p.stderr.count(first) == 1 and p.stderr.count("error:") == 1
                      and "u = log(x) @ w + b" in p.stderr and "the loss became" not in p.stderr
                      and "epoch" not in p.stdout and not os.path.exists(save))
                failures += not ok
                print(f"{'ok  ' if ok else 'FAIL'} {name}, {ranks} ranks: exit {p.returncode}: {first}")
                if not ok:
                    print(p.stdout, p.stderr)
        # A NaN gradient that where() keeps out of the loss leaves w NaN after the epoch's last
        # step: 2 ranks stop at that step, as one process does, and save nothing.
        masked = os.path.join(tmp, "masked_grad.grad")
        with open(masked, "w") as f:
            f.write("dim B\ninput x: [B, 1]\ninput y: [B, 1]\nparam w: [1, 1] = ones\nu = x @ w\n"
                    "minimize mean(square(where(u > 0, sqrt(u), u) - y)) with sgd(lr = 0.1)\n")
        mdata = os.path.join(tmp, "masked.csv")
        with open(mdata, "w") as f:
            f.write("x,y\n1,1\n2,1\n1,0\n3,1\n1,1\n2,0\n1,1\n-1,0\n")
        save = os.path.join(tmp, "masked.st")
        p = subprocess.run(mpirun + ["-np", "2", gradc, "train", masked, "--data", mdata, "--batch-size", "4",
                                     "--no-shuffle", "--save", save], capture_output=True, text=True, env=env(),
                           timeout=300)
        want = "masked_grad.grad:6:35: error: sqrt of a negative number"
        ok = (p.returncode != 0 and p.stderr.count(want) == 1
              and "at step 2, batch rows 4..7, in the row read from %s:9\n" % mdata in p.stderr
              and "epoch" not in p.stdout and not os.path.exists(save))
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} a NaN param after the epoch's last step: exit {p.returncode}")
        if not ok:
            print(p.stdout, p.stderr)
        # --init takes a checkpoint of an edited model file with one warning, as one process does.
        edited = os.path.join(tmp, "edited.grad")
        with open(MODEL) as f, open(edited, "w") as g:
            g.write(f.read().replace("lr = 0.01", "lr = 0.02"))
        p = subprocess.run(mpirun + ["-np", "2", gradc, "train", edited, "--data", os.path.join(tmp, "good.csv"),
                                     "--init", good], capture_output=True, text=True, env=env(), timeout=300)
        want = ("good.safetensors: warning: the checkpoint was written for another version of the model (the "
                "shapes agree, so it is used)\n")
        ok = p.returncode == 0 and p.stderr.count(want) == 1 and "epoch 2/2" in p.stdout
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} an edited model's checkpoint, warned once: exit {p.returncode}")
        if not ok:
            print(p.stdout, p.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
