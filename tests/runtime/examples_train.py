#!/usr/bin/env python3
"""Each example model trains on its data set (examples/data/) to its stated results.

Usage: examples_train.py PATH/TO/gradc

With the default seed: test accuracy of digits >= 97%, iris, breast cancer and wine >= 95%;
xor 100%; rosenbrock loss < 1e-4; diabetes test MSE within 10% of a PyTorch model of the same
architecture, initialisers, optimiser, batch size and epochs (the mean over 5 PyTorch seeds,
since one seed's MSE varies by about 10%; skipped when torch is missing). The training
settings below (epochs, batch size; everything else is the model's own) are meant to be those
of the commands in the examples' README: keep the two in step.
"""

import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EX = os.path.join(ROOT, "examples")
DATA = os.path.join(EX, "data")

# model: (training flags, test file, metric, minimum)
CLASSIFIERS = {
    "digits": (["--epochs", "50"], "digits_test.csv", "accuracy", 0.97),
    "iris": (["--epochs", "100"], "iris_test.csv", "accuracy", 0.95),
    "breast_cancer": (["--epochs", "50"], "breast_cancer_test.csv", "accuracy", 0.95),
    "wine": (["--epochs", "50"], "wine_test.csv", "accuracy", 0.95),
    "xor": (["--epochs", "500", "--batch-size", "4"], "xor.csv", "accuracy", 1.0),
}
DIABETES_EPOCHS = 50

failures = []


def check(cond, what):
    print(("ok:   " if cond else "FAIL: ") + what)
    if not cond:
        failures.append(what)


def run(*args):
    p = subprocess.run([GRADC, *args], capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        print(p.stderr, end="")
    return p.returncode, p.stdout


def train_eval(name, flags, train, test, tmp):
    weights = os.path.join(tmp, name + ".safetensors")
    rc, _ = run("train", os.path.join(EX, name + ".grad"), "--data", os.path.join(DATA, train),
                "--save", weights, *flags)
    if rc != 0:
        return None
    rc, out = run("eval", os.path.join(EX, name + ".grad"), "--weights", weights, "--data",
                  os.path.join(DATA, test), "--json")
    return json.loads(out) if rc == 0 else None


def torch_diabetes_mse(epochs, seeds=5):
    """The example's MLP 10-32-1 (relu), he / glorot / zeros, Adam(lr=0.01), batch 32."""
    import csv
    import torch

    def load(name):
        rows = list(csv.reader(open(os.path.join(DATA, name))))[1:]
        x = torch.tensor([[float(v) for v in r[:10]] for r in rows])
        y = torch.tensor([[float(r[10])] for r in rows])
        return x, y

    xt, yt = load("diabetes_train.csv")
    xs, ys = load("diabetes_test.csv")
    torch.set_num_threads(1)
    mses = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        g = torch.Generator().manual_seed(seed)
        l1, l2 = torch.nn.Linear(10, 32), torch.nn.Linear(32, 1)
        torch.nn.init.kaiming_normal_(l1.weight, nonlinearity="relu")
        torch.nn.init.zeros_(l1.bias)
        torch.nn.init.xavier_uniform_(l2.weight)
        torch.nn.init.zeros_(l2.bias)
        model = torch.nn.Sequential(l1, torch.nn.ReLU(), l2)
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        for _ in range(epochs):
            perm = torch.randperm(len(xt), generator=g)
            for i in range(0, len(xt), 32):
                idx = perm[i:i + 32]
                opt.zero_grad()
                loss = ((model(xt[idx]) - yt[idx]) ** 2).mean()
                loss.backward()
                opt.step()
        with torch.no_grad():
            mses.append(((model(xs) - ys) ** 2).mean().item())
    return sum(mses) / len(mses)


def main():
    global GRADC
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    GRADC = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        for name, (flags, test, metric, minimum) in CLASSIFIERS.items():
            train = "xor.csv" if name == "xor" else name + "_train.csv"
            r = train_eval(name, flags, train, test, tmp)
            value = r.get(metric) if r else None
            check(value is not None and value >= minimum,
                  "%s: test %s %s (>= %g)" % (name, metric, value, minimum))

        rc, out = run("train", os.path.join(EX, "rosenbrock.grad"), "--steps", "20000")
        loss = float(out.splitlines()[-1].split()[3]) if rc == 0 else None
        check(loss is not None and loss < 1e-4, "rosenbrock: loss %s (< 1e-4)" % loss)

        r = train_eval("diabetes", ["--epochs", str(DIABETES_EPOCHS)], "diabetes_train.csv",
                       "diabetes_test.csv", tmp)
        mse = r["loss"] if r else None
        try:
            ref = torch_diabetes_mse(DIABETES_EPOCHS)
        except ImportError:
            print("skip: diabetes against PyTorch (torch is not installed)")
            ref = None
        if ref is not None:
            check(mse is not None and abs(mse - ref) <= 0.1 * ref,
                  "diabetes: test MSE %s, PyTorch %.4f (within 10%%)" % (mse, ref))
    if failures:
        print("%d check(s) failed" % len(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
