#!/usr/bin/python3
"""Differential sweep: training with --threads 1 (a big weight's update interleaved in the
product that reads it, MemoryPlan.cpp interleaveUpdates) and --threads 2 (not interleaved)
must give the same checkpoint byte for byte and the same losses and metrics.

Each model is random: a chain of layers with weights of 1 MiB or more (odd and non-square
sizes, 130 x 9000, rows not a multiple of 6 or 64), activations or none, residual
connections, shared weights, biases or none, every optimiser and its options, cross-entropy
or regression losses, L2 terms and metrics that read a big weight, and products that read a
big weight both as A and as B^T (W @ W^T, in a metric or a stop_gradient term); float32 or
float64, batches of 1 to 64 with a last partial batch, shuffled or not. Each model also runs
under --check-numerics with one thread. ctest runs models 1000-1007 (reliability_interleave);
more take about ten seconds each.

Usage: /usr/bin/python3 tests/reliability/interleave_sweep.py PATH/TO/gradc [--seed S]
       [--count N] [--keep DIR]
Model k is made from the seed k; a failure prints the model, and --keep keeps its files.
"""
import argparse, os, random, subprocess, sys, tempfile, shutil

OPTS = ["sgd(lr = 0.01)", "sgd(lr = 0.01, momentum = 0.9)", "sgd(lr = 0.001, momentum = 0.9)",
        "sgd(lr = 0.01, momentum = 0.9, nesterov = true)",
        "sgd(lr = 0.01, momentum = 0.5, dampening = 0.1, weight_decay = 0.01)",
        "sgd(lr = 0.01, weight_decay = 0.1)",
        "adam(lr = 0.001)", "adam(lr = 0.001, weight_decay = 0.01)", "adamw(lr = 0.001)",
        "rmsprop(lr = 0.001)", "rmsprop(lr = 0.001, momentum = 0.9)", "adagrad(lr = 0.01)"]
ACTS = ["relu", "tanh", "sigmoid", "leaky_relu", "", "softplus"]
BIG = [512, 600, 517, 700, 640, 576, 1024, 130, 9000, 601, 385, 768, 300, 1100]


def gen(rng):
    """A model text, its input columns and class count (0: regression)."""
    nin = rng.choice([3, 8, 20, 33])
    sizes = [nin]
    nbig = rng.choice([1, 1, 2, 3])
    for _ in range(nbig + 1):
        if rng.random() < 0.15:
            a, b = rng.choice([(130, 9000), (9000, 130), (517, 700), (1100, 300)])
            if sizes[-1] != a:
                sizes.append(a)
            sizes.append(b)
        else:
            sizes.append(rng.choice(BIG))
    classes = rng.choice([0, 2, 10, 7])
    nout = classes if classes else rng.choice([1, 3])
    sizes.append(nout)
    lines = ["dim B", f"input x: [B, {nin}]"]
    lines.append("input y: int[B]" if classes else f"input y: [B, {nout}]")
    body = []
    h = "x"
    prev_shapes = {}
    nl = len(sizes) - 1
    shared = {}
    for i in range(nl):
        a, b = sizes[i], sizes[i + 1]
        wname = f"W{i}"
        if (a, b) in shared and rng.random() < 0.6:
            wname = shared[(a, b)]
        else:
            init = rng.choice(["he", "glorot", "normal(0, 0.05)", "uniform(-0.05, 0.05)"])
            lines.append(f"param {wname}: [{a}, {b}] = {init}")
            shared[(a, b)] = wname
        bias = rng.random() < 0.5
        expr = f"{h} @ {wname}"
        if bias:
            lines.append(f"param c{i}: [{b}] = " + rng.choice(["zeros", "normal(0, 0.1)"]))
            expr += f" + c{i}"
        if i < nl - 1:
            act = rng.choice(ACTS)
            if act:
                expr = f"{act}({expr})"
            if h != "x" and a == b and rng.random() < 0.4:
                expr = f"{h} + {expr}"
            if rng.random() < 0.1:
                expr = f"{expr} * 0.5"
        body.append(f"h{i} = {expr}")
        h = f"h{i}"
    # extras reading a big weight
    bigw = [l.split()[1].rstrip(":") for l in lines if l.startswith("param W")]
    loss = ""
    if classes:
        loss = f"cross_entropy({h}, y)"
    else:
        loss = rng.choice([f"mean(mse({h}, y))", f"mean(square({h} - y))", f"mean(abs({h} - y))"])
    if rng.random() < 0.2:
        w = rng.choice(bigw)
        loss += f" + 0.0001 * sum(square({w}))"
    if rng.random() < 0.15:
        w = rng.choice(bigw)
        body.append(f"metric wm = mean({w})")
    # a product reading a big weight both as A and as B^T, whose result W's update does not need
    wsh = {l.split()[1].rstrip(":"): l.split("[")[1].split("]")[0] for l in lines if l.startswith("param W")}
    rows = {w: int(sh.split(",")[0]) for w, sh in wsh.items()}
    cols = {w: int(sh.split(",")[1]) for w, sh in wsh.items()}
    cand = [w for w in bigw if rows[w] <= 1100 and rows[w] * cols[w] >= 1 << 18]
    if cand and rng.random() < 0.2:
        w = rng.choice(cand)
        r = rows[w]
        if rng.random() < 0.5:
            body.append(f"gg = tanh({w} @ transpose({w}))")
            body.append("metric gm = mean(gg) + max(gg)")
        else:
            lines.append(f"param V: [{r}, {r}] = zeros")
            loss += f" + mean(V * stop_gradient(tanh({w} @ transpose({w}))))"
    lines += body
    opt = rng.choice(OPTS)
    lines.append(f"minimize {loss} with {opt}")
    return "\n".join(lines) + "\n", nin, classes, nout


def data(rng, path, n, nin, classes, nout):
    with open(path, "w") as f:
        for _ in range(n):
            row = ["%.4f" % rng.uniform(-1, 1) for _ in range(nin)]
            if classes:
                row.append(str(rng.randrange(classes)))
            else:
                row += ["%.4f" % rng.uniform(-1, 1) for _ in range(nout)]
            f.write(",".join(row) + "\n")


def run(cmd, timeout=300):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired:
        return "TIMEOUT", "", ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gradc")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--keep", default=None)
    args = ap.parse_args()
    bad = 0
    tmp = tempfile.mkdtemp()
    stats = {"interleaved": 0, "models": 0}
    for k in range(args.seed, args.seed + args.count):
        rng = random.Random(k)
        text, nin, classes, nout = gen(rng)
        d = os.path.join(tmp, str(k))
        os.makedirs(d, exist_ok=True)
        m = os.path.join(d, "m.grad")
        open(m, "w").write(text)
        n = rng.choice([7, 13, 23, 40, 70])
        bs = rng.choice([1, 5, 6, 7, 64, 8])
        data(rng, os.path.join(d, "d.csv"), n, nin, classes, nout)
        dtype = rng.choice(["f32", "f32", "f64"])
        epochs = 2 if n * 1.0 / bs < 20 else 1
        shuffle = [] if rng.random() < 0.5 else ["--no-shuffle"]
        outs = []
        problems = []
        for t in ["1", "2"]:
            save = os.path.join(d, f"t{t}.st")
            met = os.path.join(d, f"t{t}.csv")
            cmd = [args.gradc, "train", m, "--data", os.path.join(d, "d.csv"), "--threads", t,
                   "--batch-size", str(bs), "--epochs", str(epochs), "--seed", str(k), "--dtype", dtype,
                   "--save", save, "--metrics", met, "--steps", "12"] + shuffle
            rc, so, se = run(cmd)
            if rc != 0:
                problems.append(f"threads {t}: rc {rc}: {se.strip()[:500]}")
            outs.append((so.split("(")[0] if so else so, open(save, "rb").read() if os.path.exists(save) else None,
                         open(met).read() if os.path.exists(met) else None))
        ins = run([args.gradc, "inspect", m, "--stage", "loops", "--threads", "1", "--dtype", dtype])
        il = "is interleaved in this one" in ins[1]
        stats["models"] += 1
        stats["interleaved"] += il
        if len(problems) == 2 and problems[0][len("threads 1"):] == problems[1][len("threads 2"):]:
            problems = []  # the same error (a diverging model) with both
        if not problems and outs[0][1] is not None:
            if outs[0][1] != outs[1][1]:
                problems.append("saved files differ")
            if outs[0][2] != outs[1][2]:
                problems.append("metrics differ")
            if [l.split("(")[0] for l in outs[0][0].splitlines()] != [l.split("(")[0] for l in outs[1][0].splitlines()]:
                problems.append("printed losses differ")
        rc, so, se = run([args.gradc, "train", m, "--data", os.path.join(d, "d.csv"), "--threads", "1",
                          "--batch-size", str(bs), "--steps", "3", "--seed", str(k), "--dtype", dtype,
                          "--check-numerics"] + shuffle)
        if rc != 0 and "NaN" not in se and "Inf" not in se and "inf" not in se:
            problems.append(f"check-numerics rc {rc}: {se.strip()[:300]}")
        print(f"model {k}: {dtype} bs {bs} n {n} interleaved {il}: {'OK' if not problems else 'FAIL ' + '; '.join(problems)}", flush=True)
        if problems:
            bad += 1
            print(text)
            if args.keep:
                shutil.copytree(d, os.path.join(args.keep, str(k)), dirs_exist_ok=True)
        shutil.rmtree(d)
    print(stats, "failures", bad)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
