// The training loop on a hand-written kernel: linear regression y ≈ w x + b on
// examples/data/linear_regression_*.csv (y = 3x - 2 + N(0, 0.1²)), trained by SGD with
// momentum 0.9 (states `w.buf`, `b.buf`), written in C++ under the calling convention of
// runtime/Kernel.h. Checks: the loss reached, determinism, checkpoints and exact resume,
// --steps inside an epoch, the metrics CSV, evaluation, prediction, signals, a NaN loss,
// and a kernel without inputs.
#include <doctest/doctest.h>

#include <functional>

#include <csignal>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "runtime/Csv.h"
#include "runtime/Safetensors.h"
#include "runtime/Trainer.h"
#include "support/Diagnostics.h"

using namespace gradc;
using namespace gradc::rt;

namespace {

std::string dataDir() {
  return (std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() / "examples" /
          "data")
      .string();
}

std::string tempPath(const std::string &name) {
  auto dir = std::filesystem::temp_directory_path() / "gradc_runtime_trainer_test";
  std::filesystem::create_directories(dir);
  std::filesystem::remove(dir / name);
  return (dir / name).string();
}

Dataset linearData(const std::string &part) {
  return readCsv(dataDir() + "/linear_regression_" + part + ".csv",
                 {{"x", false, 1, 0}, {"y", false, 1, 0}});
}

// Counts calls, and can raise a signal or produce a NaN at a given step.
struct Hooks {
  int calls = 0;
  int raiseAt = -1;
  int nanAt = -1;
};

template <typename T> Kernel linearStep(Hooks *hooks) {
  Kernel k;
  k.f64 = sizeof(T) == 8;
  k.sig.dimNames = {"B"};
  k.sig.slots = {{"x", SlotKind::Input, false, {-1, 1}},  {"y", SlotKind::Input, false, {-1, 1}},
                 {"w", SlotKind::Param, false, {1, 1}},   {"b", SlotKind::Param, false, {1}},
                 {"w.buf", SlotKind::State, false, {1, 1}}, {"b.buf", SlotKind::State, false, {1}},
                 {"lr", SlotKind::Hyper, false, {}},      {"t", SlotKind::Hyper, false, {}},
                 {"loss", SlotKind::Loss, false, {}},     {"mae", SlotKind::Metric, false, {}}};
  k.workBytes = [](const int64_t *dims) { return static_cast<size_t>(dims[0]) * sizeof(T); };
  k.call = [hooks](void *const *a, const int64_t *dims, void *work) {
    int64_t n = dims[0];
    const T *x = static_cast<const T *>(a[0]), *y = static_cast<const T *>(a[1]);
    T *w = static_cast<T *>(a[2]), *b = static_cast<T *>(a[3]);
    T *wb = static_cast<T *>(a[4]), *bb = static_cast<T *>(a[5]);
    T lr = *static_cast<const T *>(a[6]);
    T *err = static_cast<T *>(work);
    T loss = 0, mae = 0, gw = 0, gb = 0;
    for (int64_t i = 0; i < n; ++i) {
      err[i] = w[0] * x[i] + b[0] - y[i];
      loss += err[i] * err[i];
      mae += std::abs(err[i]);
    }
    for (int64_t i = 0; i < n; ++i) {
      gw += 2 * err[i] * x[i];
      gb += 2 * err[i];
    }
    gw /= static_cast<T>(n);
    gb /= static_cast<T>(n);
    wb[0] = T(0.9) * wb[0] + gw;
    bb[0] = T(0.9) * bb[0] + gb;
    w[0] -= lr * wb[0];
    b[0] -= lr * bb[0];
    *static_cast<T *>(a[8]) = loss / static_cast<T>(n);
    *static_cast<T *>(a[9]) = mae / static_cast<T>(n);
    if (hooks) {
      if (hooks->calls == hooks->nanAt) *static_cast<T *>(a[8]) = std::nan("");
      if (hooks->calls == hooks->raiseAt) std::raise(SIGINT);
      ++hooks->calls;
    }
  };
  return k;
}

template <typename T> Kernel linearEval() {
  Kernel k;
  k.f64 = sizeof(T) == 8;
  k.sig.dimNames = {"B"};
  k.sig.slots = {{"x", SlotKind::Input, false, {-1, 1}}, {"y", SlotKind::Input, false, {-1, 1}},
                 {"w", SlotKind::Param, false, {1, 1}},  {"b", SlotKind::Param, false, {1}},
                 {"loss", SlotKind::Loss, false, {}},    {"mae", SlotKind::Metric, false, {}},
                 {"pred", SlotKind::Output, false, {-1, 1}}};
  k.workBytes = [](const int64_t *) { return size_t(0); };
  k.call = [](void *const *a, const int64_t *dims, void *) {
    const T *x = static_cast<const T *>(a[0]), *y = static_cast<const T *>(a[1]);
    const T *w = static_cast<const T *>(a[2]), *b = static_cast<const T *>(a[3]);
    T *pred = static_cast<T *>(a[6]);
    T loss = 0, mae = 0;
    for (int64_t i = 0; i < dims[0]; ++i) {
      pred[i] = w[0] * x[i] + b[0];
      loss += (pred[i] - y[i]) * (pred[i] - y[i]);
      mae += std::abs(pred[i] - y[i]);
    }
    *static_cast<T *>(a[4]) = loss / static_cast<T>(dims[0]);
    *static_cast<T *>(a[5]) = mae / static_cast<T>(dims[0]);
  };
  return k;
}

std::vector<ParamSpec> linearParams() {
  return {{"w", {1, 1}, Init::Normal, {0, 1}}, {"b", {1}, Init::Zeros, {}}};
}

TrainOptions options(int64_t epochs) {
  TrainOptions o;
  o.epochs = epochs;
  o.batchSize = 32;
  o.lr = 0.05;
  o.seed = 1;
  o.progress = 0;
  o.handleSignals = false;
  o.modelName = "linear";
  o.modelHash = "abc123";
  return o;
}

// Bit patterns of every tensor of a state, to compare runs exactly.
std::vector<double> snapshot(const TrainState &st) {
  std::vector<double> out;
  for (const StateTensor &t : st.tensors)
    for (int64_t i = 0; i < t.elements; ++i) out.push_back(t.get(i, st.f64));
  out.push_back(static_cast<double>(st.step));
  out.push_back(static_cast<double>(st.epoch));
  return out;
}

}  // namespace

TEST_CASE("trainer: buffers are zeroed and aligned, big ones to 2 MiB (for huge pages)") {
  Buffer small(100);
  CHECK(reinterpret_cast<uintptr_t>(small.data()) % 64 == 0);
  CHECK(small.bytes() == 100);
  size_t big = (size_t(5) << 20) + 12;
  Buffer b(big);
  CHECK(b.bytes() == big);
#ifdef __linux__
  CHECK(reinterpret_cast<uintptr_t>(b.data()) % (size_t(2) << 20) == 0);
#endif
  const unsigned char *p = b.as<unsigned char>();
  CHECK(std::all_of(p, p + big, [](unsigned char c) { return c == 0; }));
  b.as<float>()[7] = 3;
  Buffer moved(std::move(b));
  CHECK(moved.as<float>()[7] == 3);
  CHECK(b.data() == nullptr);
  moved = Buffer(64);  // (frees the huge one with its own alignment; the sanitizer build checks the pairing)
  CHECK(moved.bytes() == 64);
}

TEST_CASE_TEMPLATE("trainer: linear regression reaches the noise floor", T, float, double) {
  Kernel step = linearStep<T>(nullptr), eval = linearEval<T>();
  Dataset train = linearData("train"), test = linearData("test");
  TrainState st(step.sig, sizeof(T) == 8);
  REQUIRE(st.tensors.size() == 4);
  st.initParams(linearParams(), 0);
  std::ostringstream out;
  TrainResult r = rt::train(step, &eval, st, &train, &test, options(30), out);
  CHECK(r.status == 0);
  REQUIRE(r.history.size() == 30);
  CHECK(r.metricNames == std::vector<std::string>{"mae"});
  // 200 rows in batches of 32: 7 steps an epoch.
  CHECK(st.step == 210);
  CHECK(st.epoch == 30);
  CHECK(r.history.back().step == 210);
  // The noise has variance 0.01: the loss ends near it, the fit near (3, -2).
  CHECK(r.history.back().loss < 0.0125);
  CHECK(r.history.back().valLoss < 0.013);
  CHECK(r.history.front().loss > 1.0);
  CHECK(st.find("w")->get(0, st.f64) == doctest::Approx(3.0).epsilon(0.02));
  CHECK(st.find("b")->get(0, st.f64) == doctest::Approx(-2.0).epsilon(0.02));
  std::string text = out.str();
  CHECK(text.find("epoch 1/30  loss ") == 0);
  CHECK(text.find("  mae ") != std::string::npos);
  CHECK(text.find("  val_loss ") != std::string::npos);
  CHECK(text.find("  val_mae ") != std::string::npos);
  CHECK(text.find("epoch 30/30  loss ") != std::string::npos);
  CHECK(text.find(" steps/s)\n") != std::string::npos);
}

TEST_CASE("trainer: the same seed gives the same run; another seed another") {
  Kernel step = linearStep<float>(nullptr);
  Dataset train = linearData("train");
  auto run = [&](uint64_t seed, bool shuffle) {
    TrainState st(step.sig, false);
    st.initParams(linearParams(), 0);
    TrainOptions o = options(3);
    o.seed = seed;
    o.shuffle = shuffle;
    std::ostringstream out;
    rt::train(step, nullptr, st, &train, nullptr, o, out);
    return snapshot(st);
  };
  CHECK(run(1, true) == run(1, true));
  CHECK(run(1, true) != run(2, true));
  CHECK(run(1, false) == run(2, false));
}

TEST_CASE("trainer: --steps stops inside an epoch") {
  Kernel step = linearStep<float>(nullptr);
  Dataset train = linearData("train");
  TrainState st(step.sig, false);
  st.initParams(linearParams(), 0);
  TrainOptions o = options(5);
  o.maxSteps = 10;
  std::ostringstream out;
  TrainResult r = rt::train(step, nullptr, st, &train, nullptr, o, out);
  CHECK(st.step == 10);
  CHECK(st.epoch == 1);
  CHECK(st.batch == 3);
  REQUIRE(r.history.size() == 2);
  CHECK(r.history[1].epoch == 2);
  CHECK(r.history[1].step == 10);
  // Zero steps: nothing runs.
  TrainState z(step.sig, false);
  o.maxSteps = 0;
  r = rt::train(step, nullptr, z, &train, nullptr, o, out);
  CHECK(z.step == 0);
  CHECK(r.history.empty());
}

TEST_CASE("trainer: the last smaller batch is kept unless drop_last") {
  Hooks hooks;
  Kernel step = linearStep<float>(&hooks);
  Dataset train = linearData("train");
  TrainState st(step.sig, false);
  TrainOptions o = options(2);
  o.batchSize = 64;  // 200 rows: 64, 64, 64, 8
  std::ostringstream out;
  rt::train(step, nullptr, st, &train, nullptr, o, out);
  CHECK(st.step == 8);
  CHECK(hooks.calls == 8);
  TrainState d(step.sig, false);
  o.dropLast = true;
  rt::train(step, nullptr, d, &train, nullptr, o, out);
  CHECK(d.step == 6);
}

TEST_CASE_TEMPLATE("trainer: checkpoints round-trip and resume exactly", T, float, double) {
  // float64 runs store F64 tensors, so they resume bit for bit too.
  constexpr bool f64 = sizeof(T) == 8;
  Kernel step = linearStep<T>(nullptr);
  Dataset train = linearData("train");
  std::ostringstream out;

  // Uninterrupted: 2 epochs.
  TrainState a(step.sig, f64);
  a.initParams(linearParams(), 0);
  rt::train(step, nullptr, a, &train, nullptr, options(2), out);

  // 1 epoch, saved; loaded into a fresh state; 1 more epoch.
  std::string ckpt = tempPath("ckpt.safetensors");
  TrainState b(step.sig, f64);
  b.initParams(linearParams(), 0);
  TrainOptions o = options(1);
  o.savePath = ckpt;
  rt::train(step, nullptr, b, &train, nullptr, o, out);
  TrainState b2(step.sig, f64);
  CHECK(b2.load(ckpt, "abc123"));
  CHECK(snapshot(b2) == snapshot(b));
  CHECK(b2.step == 7);
  CHECK(b2.epoch == 1);
  CHECK(b2.batch == 0);
  CHECK(b2.find("w.buf")->get(0, f64) != 0);
  rt::train(step, nullptr, b2, &train, nullptr, options(1), out);
  CHECK(snapshot(b2) == snapshot(a));

  // Stopped inside epoch 2 by --steps; resumed for the rest of it.
  TrainState c(step.sig, f64);
  c.initParams(linearParams(), 0);
  o = options(2);
  o.maxSteps = 10;
  o.savePath = ckpt;
  rt::train(step, nullptr, c, &train, nullptr, o, out);
  TrainState c2(step.sig, f64);
  CHECK(c2.load(ckpt));
  CHECK(c2.step == 10);
  CHECK(c2.epoch == 1);
  CHECK(c2.batch == 3);
  CHECK(c2.hasSeed);
  CHECK(c2.seed == 1);
  rt::train(step, nullptr, c2, &train, nullptr, options(1), out);
  CHECK(snapshot(c2) == snapshot(a));

  // What the file holds.
  TensorFile f = readSafetensors(ckpt);
  for (const char *name : {"w", "b", "w.buf", "b.buf", "gradc.step", "gradc.epoch"})
    CHECK(f.find(name) != nullptr);
  // F32 under the names (docs/language.md, "Weights and checkpoints"); a float64 state also
  // stores its exact values as F64 copies, which loading takes.
  TrainState loaded(step.sig, f64);
  CHECK(loaded.load(ckpt));
  for (const char *name : {"w", "b", "w.buf", "b.buf"}) {
    const NamedTensor *t = f.find(name);
    CHECK_FALSE(t->f64);
    CHECK(t->data == std::vector<float>{static_cast<float>(loaded.find(name)->get(0, f64))});
    const NamedTensor *copy = f.find(std::string(name) + ".f64");
    CHECK((copy != nullptr) == f64);
    if (!copy) continue;
    CHECK(copy->f64);
    CHECK(exactCopy(f, *t) == copy);
    CHECK(copy->data64 == std::vector<double>{loaded.find(name)->get(0, f64)});
  }
  CHECK(f.find("gradc.step")->data == std::vector<float>{10});
  CHECK(f.find("gradc.step")->shape.empty());
  CHECK(f.metadata.at("gradc.model") == "linear");
  CHECK(f.metadata.at("gradc.model_hash") == "abc123");
  CHECK(f.metadata.at("gradc.batch") == "3");
  CHECK(f.metadata.at("gradc.seed") == "1");
}

TEST_CASE("trainer: loading weights") {
  Kernel step = linearStep<double>(nullptr);
  std::string path = tempPath("weights.safetensors");
  TensorFile f;
  f.tensors = {{"w", {1, 1}, {2.5f}}, {"b", {1}, {-1.0f}}, {"extra", {2}, {1, 2}}};
  writeSafetensors(path, f);
  TrainState st(step.sig, true);
  st.find("w.buf")->set(0, 7, true);
  st.step = 3;
  CHECK_FALSE(st.load(path));  // weights, not a checkpoint: states and step untouched
  CHECK(st.find("w")->get(0, true) == 2.5);
  CHECK(st.find("b")->get(0, true) == -1.0);
  CHECK(st.find("w.buf")->get(0, true) == 7);
  CHECK(st.step == 3);

  auto errorOf = [&](const TensorFile &file) {
    writeSafetensors(path, file);
    TrainState s(step.sig, true);
    try {
      s.load(path);
    } catch (const UserError &e) {
      SourceManager sm;
      return renderUserError(sm, e);
    }
    return std::string("no error");
  };
  TensorFile missing;
  missing.tensors = {{"w", {1, 1}, {1}}};
  CHECK(errorOf(missing) == path + ": error: no tensor for the model's param 'b' (of shape [1])\n");
  TensorFile wrong;
  wrong.tensors = {{"w", {1}, {1}}, {"b", {1}, {1}}};
  CHECK(errorOf(wrong) ==
        path + ": error: tensor 'w' has shape [1], but the model's param 'w' has shape [1, 1]\n");
}

TEST_CASE("trainer: the metrics CSV") {
  Kernel step = linearStep<float>(nullptr), eval = linearEval<float>();
  Dataset train = linearData("train"), test = linearData("test");
  TrainState st(step.sig, false);
  st.initParams(linearParams(), 0);
  TrainOptions o = options(3);
  o.metricsPath = tempPath("metrics.csv");
  std::ostringstream out;
  TrainResult r = rt::train(step, &eval, st, &train, &test, o, out);
  std::ifstream in(o.metricsPath);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  REQUIRE(lines.size() == 4);
  CHECK(lines[0] == "epoch,step,loss,mae,val_loss,val_mae");
  for (size_t e = 0; e < 3; ++e) {
    const EpochStats &h = r.history[e];
    CHECK(lines[e + 1] == fmt::format("{},{},{},{},{},{}", e + 1, 7 * (e + 1), h.loss,
                                      h.metrics[0], h.valLoss, h.valMetrics[0]));
  }
  // The values are the weighted means the loop printed: check one against the output line.
  CHECK(out.str().find(fmt::format("epoch 3/3  loss {:.4g}", r.history[2].loss)) != std::string::npos);
}

TEST_CASE("trainer: evaluate weights batch means by rows; predict writes every row") {
  Kernel eval = linearEval<double>();
  Dataset test = linearData("test");  // 50 rows
  TrainState st(eval.sig, true);
  st.find("w")->set(0, 2.0, true);
  st.find("b")->set(0, -1.0, true);
  EvalResult whole = evaluate(eval, st, test, 1000);
  EvalResult batched = evaluate(eval, st, test, 16);  // 16, 16, 16, 2
  CHECK(whole.rows == 50);
  CHECK(batched.loss == doctest::Approx(whole.loss).epsilon(1e-12));
  CHECK(batched.metrics[0] == doctest::Approx(whole.metrics[0]).epsilon(1e-12));
  double expect = 0;
  for (int64_t i = 0; i < 50; ++i) {
    double e = 2.0 * test.inputs[0].f[i] - 1.0 - test.inputs[1].f[i];
    expect += e * e / 50;
  }
  CHECK(whole.loss == doctest::Approx(expect).epsilon(1e-12));

  std::ostringstream out;
  predict(eval, st, test, 16, out);
  std::istringstream in(out.str());
  std::string line;
  std::getline(in, line);
  CHECK(line == "pred");
  int rows = 0;
  for (; std::getline(in, line); ++rows)
    CHECK(std::stod(line) == 2.0 * static_cast<double>(test.inputs[0].f[rows]) - 1.0);
  CHECK(rows == 50);
}

TEST_CASE("trainer: SIGINT finishes the step, saves and returns 130") {
  Hooks hooks;
  hooks.raiseAt = 4;
  Kernel step = linearStep<float>(&hooks);
  Dataset train = linearData("train");
  TrainState st(step.sig, false);
  TrainOptions o = options(10);
  o.handleSignals = true;
  o.savePath = tempPath("signal.safetensors");
  std::ostringstream out;
  TrainResult r = rt::train(step, nullptr, st, &train, nullptr, o, out);
  CHECK(r.status == 130);
  CHECK(st.step == 5);
  TrainState back(step.sig, false);
  CHECK(back.load(o.savePath));
  CHECK(back.step == 5);
  CHECK(snapshot(back) == snapshot(st));
}

TEST_CASE("trainer: a non-finite loss stops training with an error") {
  Hooks hooks;
  hooks.nanAt = 9;
  Kernel step = linearStep<float>(&hooks);
  Dataset train = linearData("train");
  TrainState st(step.sig, false);
  TrainOptions o = options(3);
  o.modelPath = "linear.grad";
  std::ostringstream out;
  try {
    rt::train(step, nullptr, st, &train, nullptr, o, out);
    FAIL("no error");
  } catch (const UserError &e) {
    SourceManager sm;
    CHECK(renderUserError(sm, e) ==
          "linear.grad: error: the loss became nan at step 10, batch rows 64..95 of epoch 2's "
          "shuffled order\n");
  }
  // Nothing was saved, and the state is the one from before the failing step (rebuilt by
  // replaying epoch 2 from its start): the state of a run of 9 steps.
  CHECK(st.step == 9);
  Hooks none;
  Kernel clean = linearStep<float>(&none);
  TrainState nine(clean.sig, false);
  TrainOptions o9 = options(3);
  o9.maxSteps = 9;
  rt::train(clean, nullptr, nine, &train, nullptr, o9, out);
  CHECK(snapshot(st) == snapshot(nine));
}

// A StepRunner on one process, in place of DataParallelStep: the fused step with a batcher and
// a Call of its own, bound to the same state.
struct LocalRunner : StepRunner {
  LocalRunner(const Kernel &k, TrainState &st, const Dataset &ds, int64_t batchSize)
      : batcher(ds, batchSize, k.f64), call(k, st, &batcher, batchSize) {}
  int64_t run(const std::vector<int64_t> &order, int64_t batch, double lr, double t) override {
    ++runs;
    int64_t n = batcher.gather(order, batch);
    call.run(n, lr, t);
    return n;
  }
  double loss() const override { return call.loss(); }
  void metrics(std::vector<double> &out) const override { call.metrics(out); }
  Batcher batcher;
  Call call;
  int runs = 0;
};

TEST_CASE("trainer: with a StepRunner, a non-finite loss is replayed and explained too") {
  Hooks hooks;
  hooks.nanAt = 9;
  Kernel inRunner = linearStep<float>(&hooks), step = linearStep<float>(nullptr);
  Dataset train = linearData("train");
  TrainState st(step.sig, false);
  LocalRunner runner(inRunner, st, train, 32);
  TrainOptions o = options(3);
  o.modelPath = "linear.grad";
  o.runner = &runner;
  std::string explained;
  std::vector<double> before;
  std::vector<float> batchX;
  std::string rowPlaces;
  o.explainNonFinite = [&](const Call &call, const std::string &where,
                           const std::function<std::string(int64_t)> &rowPlace) {
    explained = where;
    rowPlaces = rowPlace(0) + " " + rowPlace(31) + " [" + rowPlace(32) + "]";
    before = snapshot(st);
    const float *x = static_cast<const float *>(call.args()[0]);
    batchX.assign(x, x + call.dims()[0]);
  };
  std::ostringstream out;
  try {
    rt::train(step, nullptr, st, &train, nullptr, o, out);
    FAIL("no error");
  } catch (const UserError &e) {
    SourceManager sm;
    CHECK(renderUserError(sm, e) ==
          "linear.grad: error: the loss became nan at step 10, batch rows 64..95 of epoch 2's "
          "shuffled order\n");
  }
  CHECK(explained == " at step 10, batch rows 64..95 of epoch 2's shuffled order");
  // 10 steps, then the 2 steps of epoch 2 before the failing one replayed by the runner.
  CHECK(runner.runs == 12);
  // The state handed to explainNonFinite is the one before the failing step, and `call`
  // holds the failing batch whole.
  Hooks none;
  Kernel clean = linearStep<float>(&none);
  TrainState nine(clean.sig, false);
  TrainOptions o9 = options(3);
  o9.maxSteps = 9;
  rt::train(clean, nullptr, nine, &train, nullptr, o9, out);
  CHECK(before == snapshot(nine));
  std::vector<int64_t> order = epochOrder(train.rows, 1, 1, true);
  std::vector<float> want;
  for (size_t i = 64; i < 96; ++i) want.push_back(train.inputs[0].f[static_cast<size_t>(order[i])]);
  CHECK(batchX == want);
  // Each row of the batch is named by its line of the file (a header, then a row a line), none
  // past the batch's last.
  CHECK(rowPlaces == fmt::format("{0}:{1} {0}:{2} []", train.path, order[64] + 2, order[95] + 2));
}

namespace {

// Trains `step` (which goes non-finite at step 5) with --check-numerics: the run stops there
// with the batch named, `extraCheck` sees the call; without the flag it runs `steps` steps, and
// then, when step 5 `leavesState` non-finite, names step 5 before saving anything.
void expectStopAtStep5(const Kernel &step, int64_t steps, bool leavesState,
                       const std::function<void(const Call &)> &extraCheck = {}) {
  Dataset train = linearData("train");
  std::ostringstream out;
  TrainOptions o = options(1);
  o.modelPath = "linear.grad";
  o.checkNumerics = true;
  std::string explained;
  o.explainNonFinite = [&](const Call &call, const std::string &where, const std::function<std::string(int64_t)> &) {
    explained = where;
    if (extraCheck) extraCheck(call);
  };
  // The run stops with the error of step 5, explained there, and the state before it.
  auto stopsAtStep5 = [&](TrainState &st) {
    try {
      rt::train(step, nullptr, st, &train, nullptr, o, out);
      FAIL("no error");
    } catch (const UserError &e) {
      CHECK(std::string(e.what()) ==
            "a value of the step became non-finite at step 5, batch rows 128..159 of epoch 1's "
            "shuffled order");
    }
    CHECK(explained == " at step 5, batch rows 128..159 of epoch 1's shuffled order");
    CHECK(st.step == 4);
  };
  TrainState st(step.sig, false);
  stopsAtStep5(st);
  TrainState st2(step.sig, false);
  o.checkNumerics = false;
  o.maxSteps = steps;
  explained.clear();
  if (!leavesState) {
    rt::train(step, nullptr, st2, &train, nullptr, o, out);
    CHECK(st2.step == steps);
    return;
  }
  // A param or state left non-finite: the run goes on, but the check of the state before the
  // run saves finds it and names the step that made it; nothing is saved.
  stopsAtStep5(st2);
}

}  // namespace

TEST_CASE("trainer: --check-numerics stops at a non-finite param even when the loss is finite") {
  Kernel step = linearStep<float>(nullptr);
  auto inner = step.call;
  step.call = [&](void *const *a, const int64_t *dims, void *work) {
    inner(a, dims, work);
    if (*static_cast<const float *>(a[7]) == 5)  // t: step 5, also when replayed
      static_cast<float *>(a[5])[0] = std::numeric_limits<float>::infinity();
  };
  // Without the flag the loss is checked after every step, the params and states only before
  // the run reports and saves: the run goes on to step 7, then names step 5.
  expectStopAtStep5(step, 7, true, [](const Call &call) {
    CHECK(call.dims()[0] == 32);
    CHECK(std::isfinite(static_cast<const float *>(call.args()[5])[0]));  // the state before step 5
  });
}

TEST_CASE("trainer: --check-numerics reads the check-mode flag after every step") {
  // A check-mode kernel: its flag (first 64 bytes of work) is NaN at step 5, when a value
  // inside the step was not finite, though everything it writes is finite.
  Kernel step = linearStep<float>(nullptr);
  auto inner = step.call;
  auto innerWork = step.workBytes;
  step.numericsFlag = 0;
  step.workBytes = [innerWork](const int64_t *dims) { return innerWork(dims) + 64; };
  step.call = [inner](void *const *a, const int64_t *dims, void *work) {
    inner(a, dims, static_cast<char *>(work) + 64);
    *static_cast<float *>(work) = *static_cast<const float *>(a[7]) == 5 ? NAN : 0.0f;
  };
  // Without --check-numerics the flag is not read: the run goes on.
  expectStopAtStep5(step, 7, false);
}

TEST_CASE("trainer: a kernel without inputs runs --steps steps") {
  // minimize (a - 3)^2 by gradient descent: a <- a - lr * 2 (a - 3).
  Kernel k;
  k.sig.slots = {{"a", SlotKind::Param, false, {}},
                 {"lr", SlotKind::Hyper, false, {}},
                 {"loss", SlotKind::Loss, false, {}}};
  k.workBytes = [](const int64_t *) { return size_t(0); };
  k.call = [](void *const *a, const int64_t *, void *) {
    float &p = *static_cast<float *>(a[0]);
    float lr = *static_cast<const float *>(a[1]);
    *static_cast<float *>(a[2]) = (p - 3) * (p - 3);
    p -= lr * 2 * (p - 3);
  };
  TrainState st(k.sig, false);
  st.initParams({{"a", {}, Init::Const, {-1}}}, 0);
  TrainOptions o = options(1);
  o.lr = 0.1;
  o.maxSteps = 50;
  o.metricsPath = tempPath("nodata.csv");
  std::ostringstream out;
  TrainResult r = rt::train(k, nullptr, st, nullptr, nullptr, o, out);
  CHECK(st.step == 50);
  CHECK(st.find("a")->get(0, false) == doctest::Approx(3.0).epsilon(1e-4));
  REQUIRE(r.history.size() == 10);
  CHECK(r.history[0].step == 5);
  CHECK(out.str().find("step 5/50  loss ") == 0);
  CHECK(out.str().find("step 50/50  loss ") != std::string::npos);
  std::ifstream in(o.metricsPath);
  std::string header;
  std::getline(in, header);
  CHECK(header == "step,loss");
}
