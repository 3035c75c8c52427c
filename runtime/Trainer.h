// The training loop and what runs around a compiled kernel (docs/language.md,
// "Weights and checkpoints" and "Command line"): the training state (params and optimiser
// states), checkpoints, training, evaluation and prediction.
//
// A kernel (Kernel.h) is called with one pointer per slot. `Call` builds that pointer array
// once: params and states point into the TrainState, inputs into the Batcher's buffers,
// hyper-parameters (`lr`, `t`) and results into buffers of its own. The step then runs with
// no allocation: gather a batch, set `t`, call.
//
// Checkpoints are safetensors files (F32): every param and optimiser state under its own name
// (states are `PARAM.m` etc.; a '.' cannot occur in a param name), for a float64 state also
// its exact F64 values under `NAME.f64` (Safetensors.h, exactCopyName), the scalars
// `gradc.step` and `gradc.epoch` (no param can be named so: a name has no '.'), and metadata `gradc.model`, `gradc.model_hash`, `gradc.step`,
// `gradc.epoch`, `gradc.batch` (batches done in the unfinished epoch, when a run stopped
// inside one), `gradc.seed`, `gradc.optimizer_step` (see TrainState::stateSince), `gradc.optimizer` (see TrainState::optimizer),
// `gradc.optimizer_kind` (TrainState::optimizerKind). The data order depends only on (seed, epoch), so a run resumed
// from a checkpoint sees the very batches the uninterrupted run would have seen.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

#include "runtime/Batches.h"
#include "runtime/Buffer.h"
#include "runtime/Csv.h"
#include "runtime/Init.h"
#include "runtime/Kernel.h"

namespace gradc::rt {

/// How to initialise one param (from the model file).
struct ParamSpec {
  std::string name;
  std::vector<int64_t> shape;
  Init init = Init::Zeros;
  std::vector<double> args;
};

/// A param or optimiser state: a dense row-major buffer of float or double.
struct StateTensor {
  std::string name;
  SlotKind kind = SlotKind::Param;
  std::vector<int64_t> shape;
  int64_t elements = 1;
  Buffer buf;
  double get(int64_t i, bool f64) const;
  void set(int64_t i, double v, bool f64);
};

/// Params and optimiser states (every state starts at zero), and the counters.
class TrainState {
public:
  /// One tensor per Param and State slot of `sig`, in slot order, zero-filled.
  TrainState(const Signature &sig, bool f64);
  /// Adds zero-filled tensors for the Param and State slots of `sig` not present yet (a
  /// param that the eval kernel uses but the step does not).
  void include(const Signature &sig);
  /// Fills each param from its initialiser; the random stream of specs[i] is i.
  void initParams(const std::vector<ParamSpec> &specs, uint64_t seed);
  /// Loads the params from a weights file or checkpoint; from a checkpoint, also the
  /// optimiser states and counters. Returns true for a checkpoint. A missing param or one of
  /// another shape is a UserError `PATH: error: ...` (naming both model hashes when the file
  /// holds another than `modelHash`); extra tensors are ignored. A checkpoint whose tensors
  /// fit but whose model hash is not `modelHash` is loaded with a warning; with `resume`
  /// (train --init) its optimiser state is loaded only when the checkpoint records this run's
  /// optimizerKind (the edited file may name another optimiser whose state has the same
  /// names), else it starts afresh, as after a switch. A float64 state
  /// takes the exact F64 copies (`NAME.f64`) when the file holds them; otherwise values are
  /// converted to the state's float type (F64 to float32 rounded to nearest).
  /// `warn` false: no warning on stderr (the other ranks of data-parallel training).
  bool load(const std::string &path, const std::string &modelHash = "", bool resume = false, bool warn = true);
  /// Writes a checkpoint atomically.
  void save(const std::string &path, const std::string &modelName, const std::string &modelHash,
            uint64_t seed) const;
  StateTensor *find(const std::string &name);
  const StateTensor *find(const std::string &name) const;

  std::vector<StateTensor> tensors;
  bool f64;
  int64_t step = 0;   // steps taken (the data position of a resumed run counts from it)
  /// The step at which the optimiser's state began: 0, or the step of a checkpoint resumed
  /// with another optimiser (its state starts at zero, so its count t starts again at 1, as
  /// a new torch.optim optimiser's would).
  int64_t stateSince = 0;
  /// The optimiser of this run when `--optimizer` replaced the model's own by another one
  /// (`adamw` for a model that trains with `adam`), else empty. A checkpoint records it as
  /// `gradc.optimizer` (only when it is not empty, so that the checkpoints of a run with the
  /// model's own optimiser stay those of a compiled model, which has no other), and load()
  /// takes the optimiser state from a checkpoint only when it records the same: Adam and
  /// AdamW, RMSProp and Adagrad name their buffers alike, yet one's state is no state of the
  /// other's.
  std::string optimizer;
  /// The optimiser this run trains with, the model's own or --optimizer's (`adam`), or empty
  /// when not known. A checkpoint records it as `gradc.optimizer_kind`; load() resuming a
  /// checkpoint of an edited model file (another model hash) takes its optimiser state only
  /// when it records the same optimiser.
  std::string optimizerKind;
  /// The optimiser's count for the next step, 1-based (Adam's bias corrections use it).
  double t() const { return static_cast<double>(step - stateSince + 1); }
  int64_t epoch = 0;  // epochs completed
  int64_t batch = 0;  // batches done in epoch `epoch` when it was left unfinished
  bool hasSeed = false;  // load() found the seed of the data order in a checkpoint
  uint64_t seed = 0;
};

/// The argument array of one kernel, bound to a state and (when the kernel has inputs) a
/// batcher. Allocates result buffers and work memory for up to `maxRows` rows.
class Call {
public:
  Call(const Kernel &k, TrainState &st, const Batcher *batcher, int64_t maxRows);
  /// Runs the kernel on the first `rows` rows of the batch buffers.
  void run(int64_t rows, double lr, double t);
  /// Binds the dims and hyper-parameters for `rows` rows without running the kernel.
  void prepare(int64_t rows, double lr, double t);
  /// True when every float value the last run wrote (params, states, results) is finite.
  bool allFinite() const;
  /// True when every float value the last run computed was finite, from the flag of a
  /// check-mode kernel (Kernel::numericsFlag); a kernel without the flag: allFinite().
  bool checkedFinite() const;
  /// The pointer per slot and the dims, as the kernel receives them.
  void *const *args() const { return args_.data(); }
  const int64_t *dims() const { return dims_.data(); }
  double loss() const;  // NaN when the kernel has no loss
  /// Metric values, in slot order.
  std::vector<double> metrics() const;
  void metrics(std::vector<double> &out) const;  // the same, into `out` (no allocation once sized)
  std::vector<std::string> metricNames() const;
  /// The buffer of result slot `slot` (outputs, gradients).
  const void *result(int slot) const { return args_[static_cast<size_t>(slot)]; }
  const Kernel &kernel() const { return k_; }
  /// The batch size when an input has a fixed first dim (not a `dim`), else -1.
  int64_t fixedRows() const { return fixedRows_; }

private:
  double scalar(int slot) const;
  const Kernel &k_;
  bool f64_;
  std::vector<void *> args_;
  std::vector<Buffer> owned_;
  std::vector<int> metricSlots_;
  int lossSlot_ = -1, lrSlot_ = -1, tSlot_ = -1, batchDim_ = -1;
  int64_t fixedRows_ = -1;
  std::vector<int64_t> dims_;
  Buffer work_;
  int64_t workRows_ = 0;
};

class StepRunner;

struct TrainOptions {
  int64_t epochs = 1;       // epochs to run (with data), counted from the state's epoch;
                            // -1: as many as maxSteps needs (--steps without --epochs)
  int64_t maxSteps = -1;    // stop after this many steps of this run (-1: no limit)
  int64_t batchSize = 32;
  double lr = 0.01;
  uint64_t seed = 0;
  bool shuffle = true;
  bool dropLast = false;
  int64_t valBatchSize = 1024;
  std::string savePath;     // checkpoint after each epoch and at the end ("" = none)
  std::string metricsPath;  // per-epoch CSV ("" = none)
  std::string modelName, modelHash;
  std::string modelPath;    // for messages
  int progress = -1;        // progress bar: -1 when stderr is a terminal, 0 never, 1 always
  bool handleSignals = true;
  bool warnings = true;    // print warnings to stderr (not on the other ranks of an MPI run)
  StepRunner *runner = nullptr;  // runs each step with data instead of `step` (see StepRunner)
  /// Also check, after every step, the metrics and every value the step computed: `step`
  /// should then be a check-mode kernel (Kernel::numericsFlag); with another kernel (the
  /// interpreter) every value the step writes is scanned instead. Without it only the loss is
  /// checked. Either way the state before a failing step is rebuilt from a copy taken at the
  /// start of the epoch by replaying.
  bool checkNumerics = false;
  bool keepHistory = true;  // fill TrainResult::history (a CLI run of many epochs does not)
  /// Called when a step gave a non-finite value, with the state as it was before that step
  /// and `call` prepared for its batch; may throw a UserError naming the value that became
  /// non-finite. `where` reads ` at step N, batch rows A..B` (and the epoch when shuffled);
  /// `rowPlace(r)` is where row r of that batch was read, `FILE:LINE`, or empty when unknown
  /// (no data file). With a StepRunner, every process replays to that state together, and
  /// `call` is the Call of `step` (the gradient kernel) prepared for the whole batch.
  std::function<void(const Call &call, const std::string &where,
                     const std::function<std::string(int64_t)> &rowPlace)>
      explainNonFinite;
};

struct EpochStats {
  int64_t epoch = 0;  // 1-based
  int64_t step = 0;   // the state's step count at the end of the epoch
  double loss = 0;
  std::vector<double> metrics;
  bool hasVal = false;
  double valLoss = 0;
  std::vector<double> valMetrics;
  double stepsPerSecond = 0;
};

struct TrainResult {
  int status = 0;  // 0, or 130 (SIGINT) / 143 (SIGTERM) / 141 (SIGPIPE: the output's reader went away)
  std::vector<std::string> metricNames;
  std::vector<EpochStats> history;  // per epoch (with data) or per report (without)
};

/// Runs one training step in place of the step kernel: data-parallel training
/// (runtime/Distributed.h) computes the gradient of this process's rows of the batch, sums
/// the gradients of all processes and applies the update. loss() and metrics() are those of
/// the whole batch.
class StepRunner {
public:
  virtual ~StepRunner() = default;
  /// The step of batch `batch` of `order` (with the batch size of TrainOptions); returns the
  /// batch's row count over all processes.
  virtual int64_t run(const std::vector<int64_t> &order, int64_t batch, double lr, double t) = 0;
  virtual double loss() const = 0;
  virtual void metrics(std::vector<double> &out) const = 0;
};

/// Trains: one step per batch of `data` (or, when `data` is null, `maxSteps` steps of a
/// kernel without inputs), reports to `out`, evaluates `val` with `eval` after each epoch,
/// saves checkpoints. A non-finite loss (or, with checkNumerics, any non-finite value the step
/// computes) stops training with a UserError, and nothing is saved.
TrainResult train(const Kernel &step, const Kernel *eval, TrainState &st, const Dataset *data,
                  const Dataset *val, const TrainOptions &o, std::ostream &out);

struct EvalResult {
  int64_t rows = 0;
  double loss = 0;  // NaN when the kernel has no loss
  std::vector<std::string> metricNames;
  std::vector<double> metrics;
};

/// Loss and metrics over `ds` in batches, as means weighted by the rows of each batch.
EvalResult evaluate(const Kernel &k, TrainState &st, const Dataset &ds, int64_t batchSize);
/// Loss and metrics of a model without inputs: one call.
EvalResult evaluateWithoutInputs(const Kernel &k, TrainState &st);

/// The CSV columns of predict for an output NAME of `width` values per sample: `NAME`, or
/// `NAME_0 .. NAME_{width-1}`.
std::vector<std::string> predictColumns(const std::string &name, int64_t width);

/// The kernel's outputs for every row of `ds`, as CSV with a header (an output of width w > 1
/// gives columns NAME_0 .. NAME_{w-1}).
void predict(const Kernel &k, TrainState &st, const Dataset &ds, int64_t batchSize,
             std::ostream &out);

/// The columns of the terminal on stderr (0 when it is none, or its width is not known).
int terminalColumns();

/// `line` (one row of plain text, UTF-8) cut to `columns` - 1 characters, so that it stays on
/// one row of the terminal and `\r\033[K` erases all of it (a row that wrapped left its
/// first part on the screen); unchanged when `columns` is 0.
std::string fitTerminalRow(const std::string &line, int columns);

/// The InputSpecs of a kernel's Input slots (their names, int or float, widths); `classes`
/// is left 0.
std::vector<InputSpec> inputSpecs(const Signature &sig);

}  // namespace gradc::rt
