#!/usr/bin/python3
"""Side-by-side benchmark: gradc vs PyTorch, one training step of each bench config, and the
peak memory of a real training run.

Usage: /usr/bin/python3 bench/run.py [--gradc build/gradc] [--configs xor,tiny,...] [--threads 1,2] [--rounds 3]
                                     [--train-rss medium|CONFIG,...|none] [--train-rows 4096] [--torch-hugepages]

Step timing: for each config and thread count, runs `gradc bench --json` and bench/torch_step.py
alternately (`--rounds` times each, so both see the same machine load), takes the median of the
rounds, and prints a table: µs/step for both, the ratio PyTorch/gradc, gradc's GFLOP/s, its
fraction of the machine's peak (measured by bench/fma_peak on one core, × threads), and each
side's peak RSS during those timed step runs (random data, no data file; the largest of the rounds).

Training RSS: for each config of `--train-rss` (default medium; `none` skips it) a CSV of
`--train-rows` rows of random features and integer class labels is written once to a temporary
directory (removed afterwards); then, for each thread count, `gradc train MODEL --data CSV
--epochs 1 --batch-size B --threads T` and the same training in PyTorch (bench/torch_step.py
--data CSV --epochs 1) each run once under `/usr/bin/time -v`, whose "Maximum resident set size"
is the figure. A second table gives both peaks and the ratio gradc/PyTorch.

Thread settings (both parts): gradc gets --threads N. PyTorch gets its fastest setting on these
machines: torch.set_num_threads(1) and OPENBLAS_NUM_THREADS=N (OMP_NUM_THREADS=1), see
docs/performance.md. On a CPU with AVX-512, OPENBLAS_CORETYPE=SkylakeX is set too
(`--openblas-coretype`): OpenBLAS 0.3.21 does not recognise newer CPUs (an AMD Zen 5 is taken for
a generic core) and then runs its slower AVX2 or generic kernels; its AVX-512 kernel is PyTorch's
fastest setting there, and the one it picks by itself on an AVX-512 Xeon.

Huge pages: gradc puts its own buffers of 2 MiB or more on transparent huge pages (madvise).
PyTorch 1.13 does not ask for them; `--torch-hugepages` runs it with glibc's malloc doing so
(GLIBC_TUNABLES=glibc.malloc.hugetlb=1), which spares it most of the page faults of the
temporaries it allocates and frees each step (faster on small, medium and large, slower on
tiny). Off by default: that is a setting of the C library, not of PyTorch
(docs/performance.md gives both).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

RESULT = "/tmp/gradc-bench-result-%d.json" % os.getpid()
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BATCH = {"xor": 4, "tiny": 32, "small": 64, "small_tanh": 64, "medium": 128, "large": 256}


def child_rss(cmd, env=None):
    pid = os.fork()
    if pid == 0:
        fd = os.open(os.devnull, os.O_WRONLY)
        out = os.open(RESULT, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, 1)
        os.dup2(fd, 2)
        os.execvpe(cmd[0], cmd, env or os.environ)
    _, status, usage = os.wait4(pid, 0)
    if status != 0:
        sys.exit(f"run.py: {' '.join(cmd)} failed (status {status})")
    with open(RESULT) as f:
        return json.loads(f.read().strip().splitlines()[-1]), usage.ru_maxrss / 1024.0


def torch_env(threads, coretype, hugepages=False):
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS=str(threads))
    if coretype != "none":
        env["OPENBLAS_CORETYPE"] = coretype
    if hugepages:
        # (after the user's own tunables, which are colon-separated)
        env["GLIBC_TUNABLES"] = ":".join(filter(None, [os.environ.get("GLIBC_TUNABLES"), "glibc.malloc.hugetlb=1"]))
    return env


def time_rss(cmd, env=None):
    """Peak RSS in MiB of cmd, as /usr/bin/time -v reports it."""
    r = subprocess.run(["/usr/bin/time", "-v"] + cmd, env=env or os.environ,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit(f"run.py: {' '.join(cmd)} failed (status {r.returncode}):\n{r.stderr[-2000:]}")
    for line in r.stderr.splitlines():
        if "Maximum resident set size" in line:
            return int(line.split(":")[-1]) / 1024.0
    sys.exit(f"run.py: no 'Maximum resident set size' from /usr/bin/time -v {' '.join(cmd)}")


def write_train_csv(path, cfg, rows):
    """Random features of the config's input width and whole-number class labels, with a header."""
    import numpy as np
    sys.path.insert(0, HERE)
    from torch_step import CONFIGS
    _, sizes, _, loss_kind, _ = CONFIGS[cfg]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1] if loss_kind == "ce" else 2, rows)
    with open(path, "w") as f:
        f.write(",".join([f"x{i}" for i in range(sizes[0])] + ["label"]) + "\n")
        for xs, label in zip(x, y):
            f.write(",".join(f"{v:.6g}" for v in xs) + f",{label}\n")


def train_rss(args, configs, thread_counts, coretype):
    rows = []
    with tempfile.TemporaryDirectory(prefix="gradc-train-rss-") as tmp:
        for cfg in configs:
            model = os.path.join(HERE, "models", f"{cfg}.grad")
            data = os.path.join(tmp, f"{cfg}.csv")
            write_train_csv(data, cfg, args.train_rows)
            batch = str(BATCH[cfg])
            for threads in thread_counts:
                g = time_rss([args.gradc, "train", model, "--data", data, "--epochs", "1",
                              "--batch-size", batch, "--threads", str(threads)])
                t = time_rss(["/usr/bin/python3", os.path.join(HERE, "torch_step.py"), cfg,
                              "--threads", "1", "--data", data, "--epochs", "1", "--batch-size", batch],
                             torch_env(threads, coretype, args.torch_hugepages))
                rows.append((cfg, threads, g, t))
    return rows


def cpu_info():
    name, avx512 = "unknown CPU", False
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and name == "unknown CPU":
                    name = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    avx512 = avx512 or " avx512f" in line
    except OSError:
        pass
    return name, avx512


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gradc", default=os.path.join(ROOT, "build", "gradc"))
    ap.add_argument("--configs", default="xor,tiny,small,medium,large")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--openblas-coretype", default="auto",
                    help="OPENBLAS_CORETYPE for PyTorch: auto (SkylakeX on AVX-512 CPUs), none, or a name")
    ap.add_argument("--torch-hugepages", action="store_true",
                    help="run PyTorch with GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (glibc's malloc on "
                         "transparent huge pages, as gradc's own big buffers are): faster on small, "
                         "medium and large here, slower on tiny; off by default (docs/performance.md)")
    ap.add_argument("--train-rss", default="medium",
                    help="configs whose `gradc train` and PyTorch training peak RSS is measured, or none")
    ap.add_argument("--train-rows", type=int, default=4096, help="rows of the training CSV")
    args = ap.parse_args()
    thread_counts = [int(t) for t in args.threads.split(",")]
    train_configs = [] if args.train_rss == "none" else args.train_rss.split(",")
    for cfg in train_configs:
        if cfg not in BATCH:
            sys.exit(f"run.py: unknown config '{cfg}' in --train-rss (one of {', '.join(BATCH)} or none)")

    cpu, avx512 = cpu_info()
    coretype = args.openblas_coretype
    if coretype == "auto":
        coretype = "SkylakeX" if avx512 else "none"
    print(f"CPU: {cpu}; PyTorch: OPENBLAS_CORETYPE={coretype}"
          + ("; GLIBC_TUNABLES=glibc.malloc.hugetlb=1" if args.torch_hugepages else ""))

    peak_bin = os.path.join(os.path.dirname(args.gradc), "bench", "fma_peak")
    peak, _ = child_rss([peak_bin])
    peak1 = peak["gflops_per_core"]
    print(f"machine peak (fma_peak, 1 core, {peak['isa']}): {peak1:.0f} GFLOP/s\n")

    rows = []
    for threads in thread_counts:
        for cfg in args.configs.split(","):
            model = os.path.join(HERE, "models", f"{cfg}.grad")
            g_us, t_us, g_gf, g_rss, t_rss, compile_ms = [], [], [], [], [], []
            for _ in range(args.rounds):
                g, rss = child_rss([args.gradc, "bench", model, "--batch-size", str(BATCH[cfg]),
                                    "--threads", str(threads), "--json"])
                g_us.append(g["us_per_step"])
                g_gf.append(g["gflops"])
                g_rss.append(rss)
                compile_ms.append(g.get("compile_ms", 0))
                t, rss = child_rss(["/usr/bin/python3", os.path.join(HERE, "torch_step.py"), cfg,
                                    "--threads", "1"], torch_env(threads, coretype, args.torch_hugepages))
                t_us.append(t["us_per_step"])
                t_rss.append(rss)
            gu, tu = statistics.median(g_us), statistics.median(t_us)
            gf = statistics.median(g_gf)
            rows.append((cfg, threads, tu, gu, tu / gu, gf, gf / (peak1 * threads),
                         max(g_rss), max(t_rss), statistics.median(compile_ms)))

    print("| config | threads | PyTorch µs/step | gradc µs/step | PyTorch/gradc | gradc GFLOP/s | of peak | gradc peak RSS MiB (timed steps) | PyTorch peak RSS MiB (timed steps) | compile ms |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for cfg, th, tu, gu, ratio, gf, frac, grss, trss, cms in rows:
        print(f"| {cfg} | {th} | {tu:,.1f} | {gu:,.1f} | {ratio:.2f}x | {gf:.1f} | {frac*100:.0f}% | {grss:.0f} | {trss:.0f} | {cms:.0f} |")

    if train_configs:
        print(f"\nPeak RSS of a real training run: 1 epoch over {args.train_rows} random rows "
              f"(`gradc train --data` vs PyTorch, /usr/bin/time -v)\n")
        print("| config | threads | gradc train peak RSS MiB | PyTorch train peak RSS MiB | gradc/PyTorch |")
        print("| --- | --- | --- | --- | --- |")
        for cfg, th, g, t in train_rss(args, train_configs, thread_counts, coretype):
            print(f"| {cfg} | {th} | {g:.0f} | {t:.0f} | {g / t:.2f}x |")


if __name__ == "__main__":
    main()
