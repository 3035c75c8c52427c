// `gradc train` as one rank of data-parallel training (runtime/Distributed.h), chosen by
// `--distributed` or when an MPI launcher started gradc (`mpirun -np 4 gradc train ...`).
//
// Start: every rank loads the model, reads the data, compiles the gradient and the update
// programs and initialises (or loads) the params; then one collective compares a hash of
// the printed programs, the flags that change the run, the data and the start weights, and
// whether each rank got that far. Any failure or difference stops every rank with one error.
// Training: runtime/Trainer.h's loop with a DataParallelStep in place of the fused step.
// Only rank 0 prints, writes the metrics file and saves checkpoints; with the environment
// variable GRADC_MPI_SAVE_EVERY_RANK=1 (a test hook) rank r > 0 also saves its checkpoint to
// `SAVE.rankR`, so tests can check that every rank holds the same weights.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <optional>
#include <thread>
#include <unistd.h>

#include "driver/GradSupport.h"
#include "driver/Pipeline.h"
#include "driver/RunSupport.h"
#include "ir/Printer.h"
#include "runtime/Distributed.h"
#include "runtime/Files.h"
#include "runtime/Trainer.h"

namespace gradc::driver {

#ifndef GRADC_MPI

int runTrainDistributed(Options &, SourceManager &) {
  throw UserError(std::string("gradc"),
                  "this gradc was built without MPI, so it cannot train across processes "
                  "(--distributed, mpirun): install libopenmpi-dev and rebuild (CMake option GRADC_MPI)");
}

bool reportDistributedBadFlag(const std::string &, double) { return false; }

#else

namespace {

struct Fnv {
  uint64_t h = 0xcbf29ce484222325ull;
  void add(const void *p, size_t n) {
    const unsigned char *c = static_cast<const unsigned char *>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ c[i]) * 0x100000001b3ull;
  }
  void add(const std::string &s) { add(s.data(), s.size() + 1); }
};

// An unwritable --save or --metrics path of rank 0 must fail at the start, together: with
// the checks of a single process (a folder named as the file failed at the first save, and
// the other ranks waited --mpi-timeout for rank 0).
void checkWritable(const std::string &path) {
  if (!path.empty()) rt::checkWritable(path);
}

// [first rank that failed, min hash, ~max hash] over all ranks.
void startCheck(rt::Mpi &mpi, uint64_t check[3], double mpiTimeout) {
  mpi.min(check, 3, "the start-up check", std::max(300.0, mpiTimeout));
}

}  // namespace

bool reportDistributedBadFlag(const std::string &line, double mpiTimeout) {
  if (!rt::launchedByMpi()) return false;
  std::optional<rt::Mpi> mpi;
  try {
    mpi.emplace(mpiTimeout);
  } catch (const UserError &) {
    return false;
  }
  int rank = mpi->rank();
  std::string text = line;
  const std::string head = "gradc: error: ";
  if (rank != 0 && text.rfind(head, 0) == 0)
    text.insert(head.size(), fmt::format("rank {} of {}: ", rank, mpi->size()));
  uint64_t check[3] = {static_cast<uint64_t>(rank), 0, ~uint64_t(0)};
  startCheck(*mpi, check, mpiTimeout);
  if (check[0] == static_cast<uint64_t>(rank)) std::cerr << text << std::flush;
  return true;
}

int runTrainDistributed(Options &o, SourceManager &sm) {
  rt::Mpi mpi(o.mpiTimeout);
  int rank = mpi.rank();
  // Every rank loads the same model: its warnings are printed once, by rank 0.
  if (rank != 0) setWarnings(false);
  if (o.threads == 0)
    o.threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / mpi.localSize());
  bool f64 = o.dtype == "f64";
  if (o.checkNumerics && rank == 0)
    std::cerr << oneLine(fmt::format("{}: warning: --check-numerics is not applied in data-parallel training; "
                                     "only the loss is checked", o.model));

  Model m;
  ir::Function gradFn;
  rt::Dataset data, val;
  int64_t batchRows = 1;  // a batch of the file: at most its rows (split over the ranks)
  rt::Kernel grad, update, eval;
  std::optional<rt::TrainState> st;
  std::string hash, failure;
  bool hasVal = !o.val.empty();
  Fnv fnv;
  // The error of a rank but 0 names it in its message, on one line with the place:
  // `data.csv: error: rank 2 of 3: cannot read file: No such file or directory`.
  std::string who = rank != 0 ? fmt::format("rank {} of {}: ", rank, mpi.size()) : "";
  try {
    m = loadModelFor(sm, o, Float32Use::Step);
    if (m.inputs.empty())
      fileError(o.model, "distributed training needs a model with inputs and --data; "
                         "this model has no inputs");
    if (o.data.empty()) needData(m, o.model, "train");
    data = readData(m, o.data, f64);
    if (hasVal) val = readData(m, o.val, f64);
    gradFn = buildProgram(m, Program::Grad);
    ir::Function updateFn = buildProgram(m, Program::Update);
    grad = compileProgram(gradFn, o);
    update = compileProgram(updateFn, o);
    if (hasVal) eval = compileProgram(buildProgram(m, Program::Eval), o);
    // Each rank holds the gradient and the update, for its share of a batch (as one process,
    // --max-memory or the machine's memory).
    batchRows = std::max<int64_t>(1, std::min(o.batchSize, data.rows));
    std::vector<const rt::Kernel *> kernels{&grad, &update};
    if (hasVal) kernels.push_back(&eval);
    checkMemory(kernels, (batchRows + mpi.size() - 1) / mpi.size(), o, /*stateCopy=*/true);
    hash = modelHash(sm, m);
    st.emplace(update.sig, f64);
    st->include(grad.sig);
    if (hasVal) st->include(eval.sig);
    st->initParams(paramSpecs(m), o.seed);
    if (m.optimizer.fromFlag) st->optimizer = m.optimizer.kind;
    st->optimizerKind = m.optimizer.kind;
    if (!o.init.empty()) st->load(o.init, hash, /*resume=*/true, /*warn=*/rank == 0);
    if (rank == 0) {
      checkWritable(o.save);
      checkWritable(o.metrics);
    }
    fnv.add(ir::printFunction(gradFn, nullptr));
    fnv.add(ir::printFunction(updateFn, nullptr));
    fnv.add(fmt::format("{} {} {} {} {} {} {} {}", o.dtype, o.batchSize, o.seed, o.noShuffle,
                        o.dropLast, o.lr.value_or(-1), o.epochs.value_or(-1), o.steps.value_or(-1)));
    for (const rt::Dataset *d : {&data, &val})
      for (const rt::Column &c : d->inputs) {
        fnv.add(c.f.data(), c.f.size() * sizeof(float));
        fnv.add(c.d.data(), c.d.size() * sizeof(double));
        fnv.add(c.i.data(), c.i.size() * sizeof(int32_t));
      }
    for (const rt::StateTensor &t : st->tensors) fnv.add(t.buf.data(), t.buf.bytes());
    fnv.add(&st->step, sizeof st->step);
  } catch (const UserError &e) {
    failure = renderUserError(sm, e, who);
  } catch (const InternalError &e) {
    failure = oneLine(fmt::format("gradc: internal error: {}{}", who, e.what()));
  } catch (const std::bad_alloc &) {
    failure = outOfMemoryLine(o.model, who);
  }

  // [first rank that failed, min hash, ~max hash]
  uint64_t check[3] = {failure.empty() ? UINT64_MAX : static_cast<uint64_t>(rank), fnv.h, ~fnv.h};
  startCheck(mpi, check, o.mpiTimeout);
  if (check[0] != UINT64_MAX) {
    if (check[0] == static_cast<uint64_t>(rank)) std::cerr << failure;
    return 1;
  }
  if (check[1] != ~check[2]) {
    if (rank == 0)
      std::cerr << fmt::format(
          "{}: error: the {} ranks did not start the same training: the model, the flags, the data "
          "or the start weights differ between them (hashes {:016x} to {:016x}); start every rank "
          "with the same files and flags\n",
          o.model, mpi.size(), check[1], ~check[2]);
    return 1;
  }

  bool explaining = false;  // rank 0's NaN trap, which every rank reaches at the same step
  rt::TrainOptions t;
  // --steps N without --epochs trains N steps, over as many epochs as they take.
  t.epochs = o.epochs.value_or(o.steps ? -1 : 1);
  t.maxSteps = o.steps ? *o.steps : -1;
  // The flag as given: rt::train refuses --drop-last with a batch larger than the file (it would
  // drop every row) before it takes a batch of at most the file's rows, as in one process.
  t.batchSize = o.batchSize;
  t.lr = o.lr ? *o.lr : m.optimizer.args.count("lr") ? m.optimizer.args.at("lr") : 0.01;
  t.seed = trainSeed(*st, o, /*warn=*/rank == 0);
  t.shuffle = !o.noShuffle;
  t.dropLast = o.dropLast;
  t.modelName = m.name;
  t.modelHash = hash;
  t.modelPath = o.model;
  t.keepHistory = false;  // as one process: a run of many epochs would hold every epoch's figures
  t.handleSignals = false;  // mpirun forwards Ctrl-C to every rank, which would stop at different steps
  if (rank == 0) {
    t.savePath = o.save;
    t.metricsPath = o.metrics;
    // The NaN trap: every rank replays to the state before the failing step; rank 0 runs
    // that batch in the interpreter and names the value, the others stop quietly.
    t.explainNonFinite = [&](const rt::Call &call, const std::string &where,
                             const std::function<std::string(int64_t)> &rowPlace) {
      explaining = true;
      explainNonFinite(gradFn, sm, o.model, f64, call, where, rowPlace);
    };
  } else {
    t.progress = 0;
    t.warnings = false;
    const char *every = std::getenv("GRADC_MPI_SAVE_EVERY_RANK");
    if (every && std::string(every) == "1" && !o.save.empty()) t.savePath = fmt::format("{}.rank{}", o.save, rank);
  }
  std::optional<rt::DataParallelStep> step;
  try {
    step.emplace(mpi, grad, update, *st, data, batchRows);
  } catch (const UserError &e) {
    // A model it cannot split (inputs of a fixed row count): every rank, with the same
    // model, finds this; rank 0 says it.
    if (rank == 0) std::cerr << renderUserError(sm, e);
    return 1;
  }
  rt::DataParallelStep &runner = *step;
  t.runner = &runner;
  std::ostream quiet(nullptr);
  rt::TrainResult r;
  try {
    r = rt::train(grad, hasVal ? &eval : nullptr, *st, &data, hasVal ? &val : nullptr, t,
                  rank == 0 ? std::cout : quiet);
  } catch (const UserError &e) {
    // The loss is the same on every rank, so a non-finite one stops them all at once, as do
    // the checks before the first step (the same data and flags everywhere).
    if (rank == 0) std::cerr << renderUserError(sm, e);
    // Any other error is rank 0's alone (a checkpoint or the metrics file that can no longer
    // be written): the others would wait for it in the next exchange until --mpi-timeout and
    // then blame a dead rank, so the job ends now.
    if (rank == 0 && !explaining && runner.steps > 0) mpi.end(1);
    return 1;
  }
  if (rank == 0 && runner.steps > 0)
    std::cerr << fmt::format("distributed: {} rank{}, {:.3f} ms per step, of which {:.3f} ms "
                             "({:.1f}%) in the gradient exchange\n",
                             mpi.size(), mpi.size() == 1 ? "" : "s", 1e3 * runner.stepSeconds / static_cast<double>(runner.steps),
                             1e3 * runner.reduceSeconds / static_cast<double>(runner.steps),
                             100 * runner.reduceSeconds / std::max(1e-12, runner.stepSeconds));
  return r.status;
}

#endif  // GRADC_MPI

}  // namespace gradc::driver
