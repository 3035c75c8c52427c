#!/usr/bin/python3
"""Reference numbers for the optimiser tests (tests/unit/step_test.cpp).

Runs 20 full-batch steps of torch.optim (PyTorch 1.13, float32, single-tensor path) on a
small linear regression, loss = mean((x @ W + b - y)^2), for each optimiser setting, and
prints the loss of the last step and the params after the last update as C++ initialisers.
Regenerate with:  /usr/bin/python3 tests/torch/optim_reference.py
"""
import torch

X = [[0.5, -1.0, 2.0], [1.5, 0.3, -0.7], [-1.2, 0.8, 0.1], [0.0, -0.4, 1.1]]
Y = [[1.0], [-0.5], [0.25], [2.0]]
W0 = [[0.1], [-0.2], [0.3]]
B0 = [0.05]
STEPS = 20

# (name, gradc optimiser kind, its arguments, the torch optimiser)
CONFIGS = [
    ("sgd", "sgd", {"lr": 0.05}, lambda p: torch.optim.SGD(p, lr=0.05, foreach=False)),
    ("sgd_momentum", "sgd", {"lr": 0.05, "momentum": 0.9},
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, foreach=False)),
    ("sgd_dampening_wd", "sgd", {"lr": 0.05, "momentum": 0.8, "dampening": 0.5, "weight_decay": 0.1},
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, dampening=0.5, weight_decay=0.1, foreach=False)),
    ("sgd_nesterov", "sgd", {"lr": 0.05, "momentum": 0.9, "nesterov": 1, "weight_decay": 0.01},
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01, foreach=False)),
    ("adam", "adam", {"lr": 0.1}, lambda p: torch.optim.Adam(p, lr=0.1, foreach=False)),
    ("adam_wd", "adam", {"lr": 0.1, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6, "weight_decay": 0.1},
     lambda p: torch.optim.Adam(p, lr=0.1, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, foreach=False)),
    ("adamw", "adamw", {"lr": 0.1, "weight_decay": 0.1},
     lambda p: torch.optim.AdamW(p, lr=0.1, weight_decay=0.1, foreach=False)),
    ("rmsprop", "rmsprop", {"lr": 0.01}, lambda p: torch.optim.RMSprop(p, lr=0.01, foreach=False)),
    ("rmsprop_momentum", "rmsprop", {"lr": 0.01, "alpha": 0.9, "eps": 1e-6, "momentum": 0.9},
     lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=1e-6, momentum=0.9, foreach=False)),
    ("adagrad", "adagrad", {"lr": 0.1}, lambda p: torch.optim.Adagrad(p, lr=0.1, foreach=False)),
]


def run(make):
    x, y = torch.tensor(X), torch.tensor(Y)
    w = torch.tensor(W0, requires_grad=True)
    b = torch.tensor(B0, requires_grad=True)
    opt = make([w, b])
    for _ in range(STEPS):
        opt.zero_grad()
        loss = ((x @ w + b - y) ** 2).mean()
        loss.backward()
        opt.step()
    return loss.item(), w.detach().flatten().tolist(), b.detach().flatten().tolist()


def cpp(values):
    return "{" + ", ".join(repr(float(v)) for v in values) + "}"


def main():
    torch.manual_seed(0)
    for name, kind, args, make in CONFIGS:
        loss, w, b = run(make)
        argtext = ", ".join('{"%s", %r}' % (k, float(v)) for k, v in args.items())
        print('    {"%s", "%s", {%s}, %r, %s, %s},' % (name, kind, argtext, loss, cpp(w), cpp(b)))


if __name__ == "__main__":
    main()
