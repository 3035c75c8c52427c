"""A rank that dies or hangs must not leave the others waiting: under `mpirun -np 3`,
  1. rank 1 is killed (SIGKILL) mid-training: mpirun must exit with an error naming rank 1
     within 30 s (Open MPI notices the lost process and ends the job);
  2. rank 1 is stopped (SIGSTOP, a hang Open MPI cannot see): the other ranks' time limit on
     the gradient exchange (--mpi-timeout 3) must end the job with gradc's error within 30 s;
  3. rank 0 cannot save its checkpoint mid-training (under `-np 2`): the job must end within
     10 s with that one error, not wait --mpi-timeout for rank 0 and then blame a dead rank.

usage: mpi_kill.py GRADC   (exit 77 = skipped when mpirun is missing)
"""
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from common import env, mpirun_or_skip

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "examples", "digits.grad")
DATA = os.path.join(ROOT, "examples", "data", "digits_train.csv")


def rank_pids(mpirun_pid):
    """{rank: pid} of mpirun's child processes, from OMPI_COMM_WORLD_RANK in their environment."""
    ranks = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid != mpirun_pid:
                continue
            with open(f"/proc/{pid}/environ", "rb") as f:
                for var in f.read().split(b"\0"):
                    if var.startswith(b"OMPI_COMM_WORLD_RANK="):
                        ranks[int(var.split(b"=")[1])] = int(pid)
        except (OSError, ValueError, IndexError):
            continue
    return ranks


def case(mpirun, gradc, sig, expect):
    cmd = mpirun + ["-np", "3", gradc, "train", MODEL, "--data", DATA, "--epochs", "100000",
                    "--mpi-timeout", "3"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    ranks = {}
    deadline = time.time() + 60
    while len(ranks) < 3 and time.time() < deadline and p.poll() is None:
        time.sleep(0.2)
        ranks = rank_pids(p.pid)
    if len(ranks) < 3:
        p.kill()
        print("FAIL: the 3 ranks did not start:", p.communicate()[1])
        return 1
    # Training has started once rank 0 printed its first epoch line (about 45 steps).
    ready, _, _ = select.select([p.stdout], [], [], 120)
    if not ready or not p.stdout.readline().startswith("epoch"):
        p.kill()
        print("FAIL: no epoch line from rank 0:", p.communicate()[1])
        return 1
    os.kill(ranks[1], sig)
    start = time.time()
    try:
        out, err = p.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        for pid in ranks.values():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        p.kill()
        print(f"FAIL: {signal.Signals(sig).name} of rank 1: the job still runs after 40 s")
        print(p.communicate()[1])
        return 1
    took = time.time() - start
    ok = p.returncode != 0 and took < 30 and expect in err
    print(f"{'ok  ' if ok else 'FAIL'} {signal.Signals(sig).name} of rank 1: exit {p.returncode} after "
          f"{took:.1f} s; stderr {'names' if expect in err else 'does not name'} '{expect}'")
    if not ok:
        print(err)
    for pid in ranks.values():  # a stopped rank that survived
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return 0 if ok else 1


def save_fails(mpirun, gradc):
    """Rank 0 cannot write its checkpoint mid-training (the folder was removed): its error,
    printed once, ends the job at once; rank 1 waited --mpi-timeout (20 s here) for it in the
    next exchange, then blamed a dead rank."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "ckpt")
        os.mkdir(folder)
        save = os.path.join(folder, "w.safetensors")
        p = subprocess.Popen(mpirun + ["-np", "2", gradc, "train", MODEL, "--data", DATA, "--epochs", "100000",
                                       "--mpi-timeout", "20", "--save", save],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
        ready, _, _ = select.select([p.stdout], [], [], 120)
        if not ready or not p.stdout.readline().startswith("epoch"):
            p.kill()
            print("FAIL: no epoch line from rank 0:", p.communicate()[1])
            return 1
        shutil.rmtree(folder)
        start = time.time()
        try:
            _, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            print("FAIL: a failed save: the job still runs after 60 s")
            return 1
        took = time.time() - start
        want = f"{save}: error: cannot write file: No such file or directory\n"
        ok = p.returncode != 0 and took < 10 and err.count(want) == 1 and err.count("error:") == 1
        print(f"{'ok  ' if ok else 'FAIL'} rank 0's save fails: exit {p.returncode} after {took:.1f} s, "
              f"its error printed {err.count(want)} time(s), {err.count('error:')} error(s) in all")
        if not ok:
            print(err)
        return 0 if ok else 1


def main():
    gradc = sys.argv[1]
    mpirun = mpirun_or_skip(gradc)
    failures = case(mpirun, gradc, signal.SIGKILL, "rank 1")
    failures += case(mpirun, gradc, signal.SIGSTOP, "got no answer from the other ranks within 3 s")
    failures += save_fails(mpirun, gradc)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
