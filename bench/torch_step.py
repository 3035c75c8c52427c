#!/usr/bin/python3
"""One PyTorch training step of a bench config, timed the fair way (see BENCH notes in docs/).

Usage: OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/torch_step.py CONFIG [--threads N] [--steps N]
Prints one JSON object: {"config", "us_per_step", "gflops", "threads"}.

With --data CSV [--epochs N] [--batch-size B] it trains instead, the PyTorch twin of
`gradc train MODEL --data CSV --epochs N --batch-size B` (bench/run.py measures the peak RSS of
both): the CSV is read with numpy (header skipped; the first columns are x, the last one the
label, as gradc maps them), each epoch goes over a fresh shuffle in batches of B (the last one
smaller, as gradc does without --drop-last). Prints {"config", "epochs", "steps", "loss", "seconds"}.

The models are the same as bench/models/CONFIG.grad. PyTorch runs in its fastest setting here:
optimisers with foreach=True, zero_grad(set_to_none=True); the thread count of OpenBLAS is
fixed by OPENBLAS_NUM_THREADS before torch is imported (torch.set_num_threads does not change it).
"""
import argparse
import json
import os
import statistics
import sys
import time

CONFIGS = {
    # name: (batch, layer sizes, hidden activation, loss, optimiser)
    "xor": (4, [2, 8, 1], "tanh", "bce", ("sgd", {"lr": 0.1})),
    "tiny": (32, [784, 128, 10], "relu", "ce", ("sgd", {"lr": 0.01})),
    "small": (64, [784, 256, 256, 10], "relu", "ce", ("sgd", {"lr": 0.01, "momentum": 0.9})),
    "small_tanh": (64, [784, 256, 256, 10], "tanh", "ce", ("sgd", {"lr": 0.01, "momentum": 0.9})),
    "medium": (128, [784, 1024, 1024, 10], "relu", "ce", ("adam", {"lr": 0.001})),
    "large": (256, [1024, 2048, 2048, 1024, 10], "relu", "ce", ("sgd", {"lr": 0.01})),
}


def flops_per_step(batch, sizes):
    return 6 * batch * sum(a * b for a, b in zip(sizes, sizes[1:]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config", choices=sorted(CONFIGS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=0, help="timed steps (default: about 2 s worth)")
    ap.add_argument("--batch-size", type=int, default=0)
    ap.add_argument("--data", help="train on this CSV instead of timing steps on random data")
    ap.add_argument("--epochs", type=int, default=1)
    args = ap.parse_args()
    if os.environ.get("OPENBLAS_NUM_THREADS") is None:
        sys.exit("torch_step.py: set OPENBLAS_NUM_THREADS (and OMP_NUM_THREADS) before running")

    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    batch, sizes, act, loss_kind, (opt_name, opt_args) = CONFIGS[args.config]
    if args.batch_size:
        batch = args.batch_size
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.Tanh() if act == "tanh" else torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    x = torch.randn(batch, sizes[0])
    if loss_kind == "ce":
        y = torch.randint(0, sizes[-1], (batch,))
        loss_fn = torch.nn.CrossEntropyLoss()
    else:
        y = torch.randint(0, 2, (batch, 1)).float()
        loss_fn = torch.nn.BCEWithLogitsLoss()
    opt_cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[opt_name]
    opt = opt_cls(model.parameters(), foreach=True, **opt_args)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    if args.data:
        train(args, model, loss_fn, loss_kind, opt, batch, sizes)
        return

    for _ in range(5):
        step()
    t0 = time.perf_counter()
    step()
    one = time.perf_counter() - t0
    steps = args.steps or max(10, min(5000, int(2.0 / max(one, 1e-6))))
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    us = statistics.median(times) * 1e6
    print(json.dumps({"config": args.config, "threads": args.threads, "us_per_step": us,
                      "gflops": flops_per_step(batch, sizes) / us / 1e3}))


def train(args, model, loss_fn, loss_kind, opt, batch, sizes):
    import numpy as np
    import torch

    data = np.loadtxt(args.data, delimiter=",", skiprows=1, dtype=np.float32, ndmin=2)
    if data.shape[1] != sizes[0] + 1:
        sys.exit(f"torch_step.py: {args.data} has {data.shape[1]} columns, expected {sizes[0] + 1}")
    x = torch.from_numpy(data[:, :sizes[0]])
    if loss_kind == "ce":
        y = torch.from_numpy(data[:, sizes[0]]).long()
    else:
        y = torch.from_numpy(data[:, sizes[0]:])
    n = x.shape[0]
    steps, loss = 0, float("nan")
    t0 = time.perf_counter()
    for _ in range(args.epochs):
        order = torch.randperm(n)
        total = 0.0
        for i in range(0, n, batch):
            idx = order[i:i + batch]
            opt.zero_grad(set_to_none=True)
            out = loss_fn(model(x[idx]), y[idx])
            out.backward()
            opt.step()
            total += out.item() * len(idx)
            steps += 1
        loss = total / n
    print(json.dumps({"config": args.config, "epochs": args.epochs, "steps": steps, "loss": loss,
                      "seconds": time.perf_counter() - t0}))


if __name__ == "__main__":
    main()
