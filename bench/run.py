#!/usr/bin/python3
"""Side-by-side benchmark: gradc vs PyTorch, one training step of each bench config.

Usage: /usr/bin/python3 bench/run.py [--gradc build/gradc] [--configs xor,tiny,...] [--threads 1,2] [--rounds 3]

For each config and thread count, runs `gradc bench --json` and bench/torch_step.py alternately
(`--rounds` times each, so both see the same machine load), takes the median of the rounds, and
prints a table: µs/step for both, the ratio PyTorch/gradc, gradc's GFLOP/s, its fraction of the
machine's peak (measured by bench/fma_peak on one core, × threads), and each side's peak RSS.

Thread settings: gradc gets --threads N. PyTorch gets its fastest setting on these machines:
torch.set_num_threads(1) and OPENBLAS_NUM_THREADS=N (OMP_NUM_THREADS=1), see docs/performance.md.
On a CPU with AVX-512, OPENBLAS_CORETYPE=SkylakeX is set too (`--openblas-coretype`): OpenBLAS
0.3.21 does not recognise newer CPUs (an AMD Zen 5 is taken for a generic core) and then runs
its slower AVX2 or generic kernels; its AVX-512 kernel is PyTorch's fastest setting there, and
the one it picks by itself on an AVX-512 Xeon.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

RESULT = "/tmp/gradc-bench-result-%d.json" % os.getpid()
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BATCH = {"xor": 4, "tiny": 32, "small": 64, "medium": 128, "large": 256}


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
    args = ap.parse_args()
    cpu, avx512 = cpu_info()
    coretype = args.openblas_coretype
    if coretype == "auto":
        coretype = "SkylakeX" if avx512 else "none"
    print(f"CPU: {cpu}; PyTorch: OPENBLAS_CORETYPE={coretype}")

    peak_bin = os.path.join(os.path.dirname(args.gradc), "bench", "fma_peak")
    peak, _ = child_rss([peak_bin])
    peak1 = peak["gflops_per_core"]
    print(f"machine peak (fma_peak, 1 core, {peak['isa']}): {peak1:.0f} GFLOP/s\n")

    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
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
                env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS=str(threads))
                if coretype != "none":
                    env["OPENBLAS_CORETYPE"] = coretype
                t, rss = child_rss(["/usr/bin/python3", os.path.join(HERE, "torch_step.py"), cfg,
                                    "--threads", "1"], env)
                t_us.append(t["us_per_step"])
                t_rss.append(rss)
            gu, tu = statistics.median(g_us), statistics.median(t_us)
            gf = statistics.median(g_gf)
            rows.append((cfg, threads, tu, gu, tu / gu, gf, gf / (peak1 * threads),
                         max(g_rss), max(t_rss), statistics.median(compile_ms)))

    print("| config | threads | PyTorch µs/step | gradc µs/step | PyTorch/gradc | gradc GFLOP/s | of peak | RSS gradc MiB | RSS PyTorch MiB | compile ms |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for cfg, th, tu, gu, ratio, gf, frac, grss, trss, cms in rows:
        print(f"| {cfg} | {th} | {tu:,.1f} | {gu:,.1f} | {ratio:.2f}x | {gf:.1f} | {frac*100:.0f}% | {grss:.0f} | {trss:.0f} | {cms:.0f} |")


if __name__ == "__main__":
    main()
