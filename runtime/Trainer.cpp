// The training loop, checkpoints, evaluation and prediction (see Trainer.h).
#include "runtime/Trainer.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <iostream>
#include <limits>
#include <sstream>
#include <sys/ioctl.h>
#include <unistd.h>

#include <fmt/format.h>

#include "runtime/Files.h"
#include "runtime/Safetensors.h"
#include "support/Diagnostics.h"

namespace gradc::rt {

namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

int64_t staticElements(const Slot &s) {
  int64_t n = 1;
  for (int64_t d : s.shape) {
    GRADC_ASSERT(d >= 0, "slot '{}' has a symbolic dim", s.name);
    n *= d;
  }
  return n;
}

size_t elemBytes(const Slot &s, bool f64) {
  return s.isInt ? sizeof(int32_t) : f64 ? sizeof(double) : sizeof(float);
}

// True when no element is NaN or infinite: the largest magnitude, as bits, is below the bits
// of infinity. An integer max that the compiler vectorises (AVX2 where the CPU has it).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define GRADC_VECTOR_LOOP __attribute__((target_clones("avx2", "default"), optimize("O3")))
#else
#define GRADC_VECTOR_LOOP
#endif
#define GRADC_FINITE_BITS(Name, U)                                                           \
  GRADC_VECTOR_LOOP bool Name(const U *u, int64_t n, U absMask, U inf) {                     \
    U m = 0;                                                                                 \
    for (int64_t i = 0; i < n; ++i) m = std::max<U>(m, u[i] & absMask);                      \
    return m < inf;                                                                          \
  }
GRADC_FINITE_BITS(finiteBits32, uint32_t)
GRADC_FINITE_BITS(finiteBits64, uint64_t)

// SIGINT / SIGTERM: the first one asks the loop to stop after the current step (and save);
// a second one exits at once (a checkpoint being written stays whole: writes are atomic).
// SIGPIPE (the reader of the output went away: `gradc train ... | head -3`) stops the same
// way, and later writes to the closed pipe just fail: the run ends as the pipe would end it
// (exit 141), with its checkpoint saved.
volatile std::sig_atomic_t gSignal = 0;

extern "C" void onSignal(int sig) {
  if (gSignal != 0) {
    if (sig == SIGPIPE) return;
    ::_exit(128 + sig);
  }
  gSignal = sig;
}

class SignalGuard {
public:
  explicit SignalGuard(bool on) : on_(on) {
    gSignal = 0;
    if (!on_) return;
    struct sigaction sa {};
    sa.sa_handler = onSignal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &oldInt_);
    sigaction(SIGTERM, &sa, &oldTerm_);
    sigaction(SIGPIPE, &sa, &oldPipe_);
  }
  ~SignalGuard() {
    // After a signal the process is on its way out (exit 130 / 143): the handler stays, so
    // that a second signal still exits at once with 128 + its number.
    if (!on_ || gSignal != 0) return;
    sigaction(SIGINT, &oldInt_, nullptr);
    sigaction(SIGTERM, &oldTerm_, nullptr);
    sigaction(SIGPIPE, &oldPipe_, nullptr);
  }

private:
  bool on_;
  struct sigaction oldInt_ {}, oldTerm_ {}, oldPipe_ {};
};

/// The progress bar on stderr: redrawn in place at most 10 times a second.
class Progress {
public:
  explicit Progress(bool on) : on_(on) {}
  /// `steps` steps have run since `start`.
  void update(const std::string &prefix, int64_t done, int64_t total, double loss,
              int64_t steps, Clock::time_point start) {
    if (!on_) return;
    auto now = Clock::now();
    if (drawn_ && seconds(last_, now) < 0.1 && done != total) return;
    double rate = static_cast<double>(steps) / std::max(1e-9, seconds(start, now));
    last_ = now;
    drawn_ = true;
    // The bar narrows (down to 8, then none) to keep the line on one row of the terminal.
    std::string counts = fmt::format("{}/{}  loss {:.4g}  {:.0f} steps/s", done, total, loss, rate);
    int columns = terminalColumns();
    int width = 24;
    if (columns > 0)
      width = std::min<int>(width, columns - 1 - static_cast<int>(prefix.size() + counts.size()) - 4);
    std::string line = prefix + " ";
    if (width >= 8) {
      int filled = total > 0 ? static_cast<int>(width * done / total) : 0;
      std::string bar(static_cast<size_t>(filled), '#');
      bar.resize(static_cast<size_t>(width), '.');
      line += "[" + bar + "] ";
    }
    std::cerr << "\r\033[K" << fitTerminalRow(line + counts, columns) << std::flush;
  }
  void clear() {
    if (on_ && drawn_) std::cerr << "\r\033[K" << std::flush;
    drawn_ = false;
  }

private:
  bool on_;
  bool drawn_ = false;
  Clock::time_point last_{};
};

/// Running means weighted by rows.
struct Means {
  double rows = 0, loss = 0;
  std::vector<double> metrics;
  void add(double n, double l, const std::vector<double> &m) {
    rows += n;
    loss += n * l;
    metrics.resize(m.size(), 0.0);
    for (size_t i = 0; i < m.size(); ++i) metrics[i] += n * m[i];
  }
  double meanLoss() const { return rows > 0 ? loss / rows : std::nan(""); }
  std::vector<double> meanMetrics() const {
    std::vector<double> out(metrics);
    for (double &v : out) v = rows > 0 ? v / rows : std::nan("");
    return out;
  }
};

// NaN is `nan` whatever its sign bit (x86's sqrt(-1) sets it), as Python prints it and as
// `eval` writes it.
std::string number(double v) { return std::isnan(v) ? "nan" : fmt::format("{:.4g}", v); }
std::string exact(double v) { return std::isnan(v) ? "nan" : fmt::format("{}", v); }
std::string exact(float v) { return std::isnan(v) ? "nan" : fmt::format("{}", v); }

}  // namespace

int terminalColumns() {
  struct winsize ws {};
  if (::isatty(2) == 0 || ::ioctl(2, TIOCGWINSZ, &ws) != 0) return 0;
  return ws.ws_col;
}

std::string fitTerminalRow(const std::string &line, int columns) {
  if (columns <= 0) return line;
  size_t chars = 0;
  for (size_t i = 0; i < line.size(); ++i) {
    if ((static_cast<unsigned char>(line[i]) & 0xC0) == 0x80) continue;  // inside a character
    if (++chars == static_cast<size_t>(columns)) return line.substr(0, i);
  }
  return line;
}

// --- TrainState ---------------------------------------------------------------------------

double StateTensor::get(int64_t i, bool f64) const {
  return f64 ? buf.as<double>()[i] : buf.as<float>()[i];
}

void StateTensor::set(int64_t i, double v, bool f64) {
  if (f64) buf.as<double>()[i] = v;
  else buf.as<float>()[i] = static_cast<float>(v);
}

TrainState::TrainState(const Signature &sig, bool f64) : f64(f64) { include(sig); }

void TrainState::include(const Signature &sig) {
  for (const Slot &s : sig.slots) {
    if (s.kind != SlotKind::Param && s.kind != SlotKind::State) continue;
    if (find(s.name)) continue;
    StateTensor t;
    t.name = s.name;
    t.kind = s.kind;
    t.shape = s.shape;
    t.elements = staticElements(s);
    t.buf.allocate(static_cast<size_t>(t.elements) * elemBytes(s, f64));
    tensors.push_back(std::move(t));
  }
}

StateTensor *TrainState::find(const std::string &name) {
  for (StateTensor &t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

const StateTensor *TrainState::find(const std::string &name) const {
  return const_cast<TrainState *>(this)->find(name);
}

void TrainState::initParams(const std::vector<ParamSpec> &specs, uint64_t seed) {
  for (size_t i = 0; i < specs.size(); ++i) {
    StateTensor *t = find(specs[i].name);
    if (!t || t->kind != SlotKind::Param) continue;  // a param the kernel does not use
    GRADC_ASSERT(t->shape == specs[i].shape, "param '{}' has shape {} in the kernel, {} in the model",
                 t->name, shapeText(t->shape), shapeText(specs[i].shape));
    int kind = static_cast<int>(specs[i].init);
    if (f64)
      initParam(t->buf.as<double>(), kind, specs[i].args, specs[i].shape, seed, static_cast<int>(i));
    else
      initParam(t->buf.as<float>(), kind, specs[i].args, specs[i].shape, seed, static_cast<int>(i));
  }
}

bool TrainState::load(const std::string &path, const std::string &modelHash, bool resume, bool warn) {
  TensorFile file = readSafetensors(path);
  auto meta = [&](const char *key) -> const std::string * {
    auto it = file.metadata.find(key);
    return it == file.metadata.end() ? nullptr : &it->second;
  };
  // A tensor that does not fit is an error; it says so when the file is another model's.
  std::string other = file.otherModelNote(modelHash);
  auto copyIn = [&](StateTensor &t, const NamedTensor &nt) {
    if (nt.shape != t.shape)
      fileError(path, "tensor '{}' has shape {}, but the model's {} '{}' has shape {}{}", nt.name,
                shapeText(nt.shape), t.kind == SlotKind::Param ? "param" : "optimiser state",
                t.name, shapeText(t.shape), other);
    GRADC_ASSERT(static_cast<int64_t>(nt.data.size()) == t.elements, "tensor '{}' holds {} values",
                 nt.name, nt.data.size());
    // A float64 run takes the exact copy a float64 run stored beside the F32 tensor, when the
    // file holds one. Otherwise the values are converted to the run's float type: F32 to
    // float64 exactly, F64 (a file of another tool) to float32 rounded to nearest.
    const NamedTensor *src = &nt;
    if (f64 && !nt.f64)
      if (const NamedTensor *exact = exactCopy(file, nt)) src = exact;
    for (int64_t i = 0; i < t.elements; ++i) {
      size_t k = static_cast<size_t>(i);
      double v = src->f64 ? src->data64[k] : src->data[k];
      if (!f64 && std::isfinite(v) && std::isinf(static_cast<float>(v)))
        fileError(path, "tensor '{}' holds {} (element {}), too large for float32",
                  nt.name, v, i);
      t.set(i, v, f64);
    }
  };
  for (StateTensor &t : tensors) {
    if (t.kind != SlotKind::Param) continue;
    copyIn(t, file.param(path, t.name, t.shape, modelHash));
  }
  // Counters are whole numbers, the metadata's text entirely ("12abc" is no count).
  auto whole = [&](const char *key, const std::string &s, auto &out) {
    auto r = std::from_chars(s.data(), s.data() + s.size(), out);
    if (r.ec != std::errc() || r.ptr != s.data() + s.size())
      fileError(path, "metadata '{}' is not a whole number: '{}'", key, s);
  };
  auto counter = [&](const char *key, const char *tensor) -> int64_t {
    int64_t n = 0;
    if (const std::string *s = meta(key)) {
      whole(key, *s, n);
      return n;
    }
    if (const NamedTensor *nt = file.find(tensor); nt && nt->data.size() == 1) {
      float v = nt->data[0];
      if (!(v >= 0 && v <= 9e15f) || v != std::floor(v))
        fileError(path, "tensor '{}' is not a count: {}", tensor, v);
      return static_cast<int64_t>(v);
    }
    return 0;
  };
  bool checkpoint = meta("gradc.step") || file.find("gradc.step");
  if (!checkpoint) return false;
  // The state of another optimiser than this run's is none of its own, even under the same
  // names (Adam's `W.m` is no AdamW's), nor is part of a state (Adagrad's `W.sq` without
  // the `W.mom` of an RMSProp with momentum): the whole state starts at zero, as after a
  // switch from SGD.
  const std::string *written = meta("gradc.optimizer");
  // (The optimisers of docs/language.md: a checkpoint that names another is corrupt, not a switch.)
  if (written && *written != "sgd" && *written != "adam" && *written != "adamw" && *written != "rmsprop" &&
      *written != "adagrad")
    fileError(path, "metadata 'gradc.optimizer' is '{}', which is no optimiser (sgd, adam, adamw, rmsprop, adagrad)",
              *written);
  // Training resumed from a checkpoint of another version of the model file (an edited loss,
  // learning rate or optimiser): its params and counters are used, and its optimiser state
  // only when it records the optimiser of this run, since the file may name another one now
  // whose state has the same names (Adam's `W.m` is AdamW's too).
  const std::string *writtenHash = meta("gradc.model_hash");
  bool otherModel = writtenHash && !modelHash.empty() && *writtenHash != modelHash;
  const std::string *writtenKind = meta("gradc.optimizer_kind");
  bool stateMissing = otherModel && resume
                          ? optimizerKind.empty() || !writtenKind || *writtenKind != optimizerKind
                          : (written ? *written : std::string()) != optimizer;
  for (const StateTensor &t : tensors)
    if (t.kind == SlotKind::State && !stateMissing) {
      file.checkReadable(path, t.name);
      stateMissing = !file.find(t.name);
    }
  bool stateDropped = stateMissing && otherModel && resume;
  for (StateTensor &t : tensors) {
    if (t.kind != SlotKind::State) continue;
    if (stateMissing) std::memset(t.buf.data(), 0, t.buf.bytes());
    else copyIn(t, *file.find(t.name));
  }
  step = counter("gradc.step", "gradc.step");
  // (before the optimiser's count is checked against it, which blamed gradc.optimizer_step)
  if (step < 0) fileError(path, "metadata 'gradc.step' is not a whole number: '{}'", step);
  // A checkpoint of another optimiser holds none of this one's state: it starts afresh.
  int64_t optimizerSteps = meta("gradc.optimizer_step") ? counter("gradc.optimizer_step", "") : step;
  if (optimizerSteps < 0 || optimizerSteps > step)
    fileError(path, "metadata 'gradc.optimizer_step' {} is not between 0 and 'gradc.step' {}", optimizerSteps, step);
  stateSince = stateMissing ? step : step - optimizerSteps;
  epoch = counter("gradc.epoch", "gradc.epoch");
  batch = meta("gradc.batch") ? counter("gradc.batch", "") : 0;
  if (const std::string *sd = meta("gradc.seed")) {
    whole("gradc.seed", *sd, seed);
    hasSeed = true;
  }
  if (step < 0 || epoch < 0 || batch < 0) fileError(path, "negative step or epoch count");
  if (!warn) return true;
  bool hasState = std::any_of(tensors.begin(), tensors.end(), [](const StateTensor &t) { return t.kind == SlotKind::State; });
  if (stateDropped && hasState)
    std::cerr << oneLine(fmt::format("{}: warning: the checkpoint was written for another version of the model "
                                     "(the shapes agree, so its params are used; the optimiser's state starts "
                                     "afresh)", path));
  else if (writtenHash)
    file.warnIfOtherModel(path, modelHash);
  return true;
}

void TrainState::save(const std::string &path, const std::string &modelName,
                      const std::string &modelHash, uint64_t seed) const {
  TensorFile file;
  std::vector<NamedTensor> exact;
  for (const StateTensor &t : tensors) {
    NamedTensor nt{t.name, t.shape, std::vector<float>(static_cast<size_t>(t.elements))};
    for (int64_t i = 0; i < t.elements; ++i)
      nt.data[static_cast<size_t>(i)] = static_cast<float>(t.get(i, f64));
    file.tensors.push_back(std::move(nt));
    if (!f64) continue;
    NamedTensor copy;
    copy.name = exactCopyName(t.name);
    copy.shape = t.shape;
    copy.f64 = true;
    copy.data64.assign(t.buf.as<double>(), t.buf.as<double>() + t.elements);
    exact.push_back(std::move(copy));
  }
  file.tensors.push_back({"gradc.step", {}, {static_cast<float>(step)}});
  file.tensors.push_back({"gradc.epoch", {}, {static_cast<float>(epoch)}});
  for (NamedTensor &copy : exact) file.tensors.push_back(std::move(copy));
  file.metadata["gradc.model"] = modelName;
  file.metadata["gradc.model_hash"] = modelHash;
  file.metadata["gradc.step"] = std::to_string(step);
  file.metadata["gradc.epoch"] = std::to_string(epoch);
  file.metadata["gradc.batch"] = std::to_string(batch);
  file.metadata["gradc.optimizer_step"] = std::to_string(step - stateSince);
  file.metadata["gradc.seed"] = std::to_string(seed);
  if (!optimizer.empty()) file.metadata["gradc.optimizer"] = optimizer;
  if (!optimizerKind.empty()) file.metadata["gradc.optimizer_kind"] = optimizerKind;
  writeSafetensors(path, file);
}

// --- Call ---------------------------------------------------------------------------------

Call::Call(const Kernel &k, TrainState &st, const Batcher *batcher, int64_t maxRows)
    : k_(k), f64_(k.f64), dims_(k.sig.dimNames.size(), 1) {
  GRADC_ASSERT(k.f64 == st.f64, "kernel and state differ in float type");
  for (const Slot &s : k.sig.slots) {
    if (s.kind != SlotKind::Input || s.shape.empty()) continue;
    if (s.shape[0] >= 0) fixedRows_ = s.shape[0];
    else if (batchDim_ < 0) batchDim_ = static_cast<int>(-1 - s.shape[0]);
  }
  if (batchDim_ >= 0) dims_[static_cast<size_t>(batchDim_)] = maxRows;
  args_.resize(k.sig.slots.size(), nullptr);
  owned_.resize(k.sig.slots.size());
  for (size_t i = 0; i < k.sig.slots.size(); ++i) {
    const Slot &s = k.sig.slots[i];
    switch (s.kind) {
    case SlotKind::Input: {
      void *p = batcher ? batcher->buffer(s.name) : nullptr;
      if (!p) internalError("no data for input '{}'", s.name);
      args_[i] = p;
      break;
    }
    case SlotKind::Param:
    case SlotKind::State: {
      StateTensor *t = st.find(s.name);
      if (!t) internalError("the training state has no tensor '{}'", s.name);
      args_[i] = t->buf.data();
      break;
    }
    case SlotKind::Hyper:
      if (s.name == "lr") lrSlot_ = static_cast<int>(i);
      else if (s.name == "t") tSlot_ = static_cast<int>(i);
      else internalError("unknown hyper-parameter '{}'", s.name);
      [[fallthrough]];
    default:
      owned_[i].allocate(static_cast<size_t>(s.elements(dims_.data())) * elemBytes(s, f64_));
      args_[i] = owned_[i].data();
      if (s.kind == SlotKind::Loss && lossSlot_ < 0) lossSlot_ = static_cast<int>(i);
      if (s.kind == SlotKind::Metric) metricSlots_.push_back(static_cast<int>(i));
    }
  }
  work_.allocate(k.workBytes ? k.workBytes(dims_.data()) : 0);
  workRows_ = maxRows;
}

void Call::run(int64_t rows, double lr, double t) {
  prepare(rows, lr, t);
  k_.call(args_.data(), dims_.data(), work_.data());
}

void Call::prepare(int64_t rows, double lr, double t) {
  if (fixedRows_ >= 0 && rows != fixedRows_)
    throw UserError(std::string("gradc"),
                    fmt::format("the model's inputs take batches of exactly {} rows, not {}{}",
                                fixedRows_, rows, fixedRows_ == 1 ? "" : " (see --batch-size, --drop-last)"));
  if (batchDim_ >= 0) {
    dims_[static_cast<size_t>(batchDim_)] = rows;
    if (rows != workRows_ && k_.workBytes) {
      size_t need = k_.workBytes(dims_.data());
      if (need > work_.bytes()) work_.allocate(need);
      workRows_ = rows;
    }
  }
  auto setScalar = [&](int slot, double v) {
    if (slot < 0) return;
    if (f64_) owned_[static_cast<size_t>(slot)].as<double>()[0] = v;
    else owned_[static_cast<size_t>(slot)].as<float>()[0] = static_cast<float>(v);
  };
  setScalar(lrSlot_, lr);
  setScalar(tSlot_, t);
}

bool Call::allFinite() const {
  auto finite = [](const void *p, int64_t n, bool f64) {
    return f64 ? finiteBits64(static_cast<const uint64_t *>(p), n, UINT64_C(0x7fffffffffffffff),
                              UINT64_C(0x7ff0000000000000))
               : finiteBits32(static_cast<const uint32_t *>(p), n, 0x7fffffffu, 0x7f800000u);
  };
  for (size_t i = 0; i < k_.sig.slots.size(); ++i) {
    const Slot &s = k_.sig.slots[i];
    if (s.isInt || s.kind == SlotKind::Input || s.kind == SlotKind::Hyper) continue;
    if (!finite(args_[i], s.elements(dims_.data()), f64_)) return false;
  }
  return true;
}

bool Call::checkedFinite() const {
  if (k_.numericsFlag < 0) return allFinite();
  const char *flag = static_cast<const char *>(work_.data()) + k_.numericsFlag;
  return f64_ ? *reinterpret_cast<const double *>(flag) == 0 : *reinterpret_cast<const float *>(flag) == 0;
}

double Call::scalar(int slot) const {
  const Slot &s = k_.sig.slots[static_cast<size_t>(slot)];
  const void *p = args_[static_cast<size_t>(slot)];
  if (s.isInt) return static_cast<const int32_t *>(p)[0];
  return f64_ ? static_cast<const double *>(p)[0] : static_cast<const float *>(p)[0];
}

double Call::loss() const { return lossSlot_ >= 0 ? scalar(lossSlot_) : std::nan(""); }

std::vector<double> Call::metrics() const {
  std::vector<double> out;
  metrics(out);
  return out;
}

void Call::metrics(std::vector<double> &out) const {
  out.resize(metricSlots_.size());
  for (size_t i = 0; i < metricSlots_.size(); ++i) out[i] = scalar(metricSlots_[i]);
}

std::vector<std::string> Call::metricNames() const {
  std::vector<std::string> out;
  for (int s : metricSlots_) out.push_back(k_.sig.slots[static_cast<size_t>(s)].name);
  return out;
}

std::vector<InputSpec> inputSpecs(const Signature &sig) {
  std::vector<InputSpec> out;
  for (const Slot &s : sig.slots) {
    if (s.kind != SlotKind::Input) continue;
    InputSpec spec;
    spec.name = s.name;
    spec.isInt = s.isInt;
    spec.width = 1;
    for (size_t i = 1; i < s.shape.size(); ++i) {
      GRADC_ASSERT(s.shape[i] >= 0, "input '{}' has a symbolic dim after the batch dim", s.name);
      spec.width *= s.shape[i];
    }
    out.push_back(spec);
  }
  return out;
}

// --- evaluate / predict -------------------------------------------------------------------

EvalResult evaluate(const Kernel &k, TrainState &st, const Dataset &ds, int64_t batchSize) {
  batchSize = std::max<int64_t>(1, std::min(batchSize, ds.rows));
  Batcher batcher(ds, batchSize, k.f64);
  Call call(k, st, &batcher, batchSize);
  std::vector<int64_t> order = epochOrder(ds.rows, 0, 0, false);
  Means means;
  int64_t batches = batchCount(ds.rows, batchSize, false);
  for (int64_t b = 0; b < batches; ++b) {
    int64_t rows = batcher.gather(order, b);
    call.run(rows, 0, 0);
    means.add(static_cast<double>(rows), call.loss(), call.metrics());
  }
  EvalResult r;
  r.rows = ds.rows;
  r.loss = means.meanLoss();
  r.metricNames = call.metricNames();
  r.metrics = means.meanMetrics();
  return r;
}

EvalResult evaluateWithoutInputs(const Kernel &k, TrainState &st) {
  Call call(k, st, nullptr, 1);
  call.run(1, 0, 0);
  EvalResult r;
  r.rows = 1;
  r.loss = call.loss();
  r.metricNames = call.metricNames();
  r.metrics = call.metrics();
  return r;
}

std::vector<std::string> predictColumns(const std::string &name, int64_t width) {
  if (width == 1) return {name};
  std::vector<std::string> columns;
  for (int64_t j = 0; j < width; ++j) columns.push_back(fmt::format("{}_{}", name, j));
  return columns;
}

void predict(const Kernel &k, TrainState &st, const Dataset &ds, int64_t batchSize,
             std::ostream &out) {
  batchSize = std::max<int64_t>(1, std::min(batchSize, ds.rows));
  Batcher batcher(ds, batchSize, k.f64);
  Call call(k, st, &batcher, batchSize);
  struct Out {
    int slot;
    int64_t width;
    bool isInt;
  };
  std::vector<Out> outs;
  std::vector<std::string> header;
  for (size_t i = 0; i < k.sig.slots.size(); ++i) {
    const Slot &s = k.sig.slots[i];
    if (s.kind != SlotKind::Output) continue;
    int64_t w = 1;
    for (size_t d = 1; d < s.shape.size(); ++d) w *= s.shape[d] >= 0 ? s.shape[d] : 1;
    if (s.shape.empty() || (s.shape[0] >= 0 && s.shape[0] != call.fixedRows()))
      internalError("output '{}' does not have the batch dim first", s.name);
    outs.push_back({static_cast<int>(i), w, s.isInt});
    for (std::string &c : predictColumns(s.name, w)) header.push_back(std::move(c));
  }
  if (outs.empty()) internalError("the model has no outputs to predict");
  out << fmt::format("{}\n", fmt::join(header, ","));
  std::vector<int64_t> order = epochOrder(ds.rows, 0, 0, false);
  int64_t batches = batchCount(ds.rows, batchSize, false);
  std::string line;
  for (int64_t b = 0; b < batches; ++b) {
    int64_t rows = batcher.gather(order, b);
    call.run(rows, 0, 0);
    for (int64_t r = 0; r < rows; ++r) {
      line.clear();
      for (const Out &o : outs) {
        const void *p = call.result(o.slot);
        for (int64_t j = 0; j < o.width; ++j) {
          if (!line.empty()) line += ',';
          int64_t idx = r * o.width + j;
          if (o.isInt) line += std::to_string(static_cast<const int32_t *>(p)[idx]);
          else if (k.f64) line += exact(static_cast<const double *>(p)[idx]);
          else line += exact(static_cast<const float *>(p)[idx]);
        }
      }
      line += '\n';
      out << line;
    }
  }
}

// --- train --------------------------------------------------------------------------------

namespace {

class MetricsFile {
public:
  MetricsFile(std::string path, bool withEpoch, const std::vector<std::string> &names, bool val)
      : path_(std::move(path)) {
    std::vector<std::string> cols;
    if (withEpoch) cols.push_back("epoch");
    cols.push_back("step");
    cols.push_back("loss");
    for (const std::string &n : names) cols.push_back(n);
    if (val) {
      cols.push_back("val_loss");
      for (const std::string &n : names) cols.push_back("val_" + n);
    }
    text_ = fmt::format("{}\n", fmt::join(cols, ","));
    withEpoch_ = withEpoch;
    valColumns_ = val ? names.size() + 1 : 0;
    if (!path_.empty()) {
      inPlace_ = writtenInPlace(path_);  // a pipe or a terminal gets each line once
      writeFileAtomic(path_, text_);     // an unwritable path fails before training
    }
  }
  void add(const EpochStats &e) {
    if (path_.empty()) return;
    std::vector<std::string> cols;
    if (withEpoch_) cols.push_back(std::to_string(e.epoch));
    cols.push_back(std::to_string(e.step));
    cols.push_back(exact(e.loss));
    for (double m : e.metrics) cols.push_back(exact(m));
    if (e.hasVal) {
      cols.push_back(exact(e.valLoss));
      for (double m : e.valMetrics) cols.push_back(exact(m));
    } else {
      cols.resize(cols.size() + valColumns_);
    }
    std::string line = fmt::format("{}\n", fmt::join(cols, ","));
    text_ += line;
    writeFileAtomic(path_, inPlace_ ? line : text_);
  }

private:
  std::string path_, text_;
  bool inPlace_ = false;
  bool withEpoch_ = true;
  size_t valColumns_ = 0;
};

/// A copy of the params, optimiser states and step count, to go back to when a step gives a
/// non-finite value (the step updates the state in place). Sized once; taking it copies.
class Snapshot {
public:
  void take(const TrainState &st) {
    bufs_.resize(st.tensors.size());
    for (size_t i = 0; i < st.tensors.size(); ++i) {
      const Buffer &b = st.tensors[i].buf;
      if (bufs_[i].bytes() != b.bytes()) bufs_[i].allocate(b.bytes());
      std::memcpy(bufs_[i].data(), b.data(), b.bytes());
    }
    step_ = st.step;
  }
  void restore(TrainState &st) const {
    for (size_t i = 0; i < bufs_.size(); ++i)
      std::memcpy(st.tensors[i].buf.data(), bufs_[i].data(), bufs_[i].bytes());
    st.step = step_;
  }

private:
  std::vector<Buffer> bufs_;
  int64_t step_ = 0;
};

std::string epochLine(const EpochStats &e, const std::string &head,
                      const std::vector<std::string> &names) {
  std::string s = fmt::format("{}  loss {}", head, number(e.loss));
  for (size_t i = 0; i < names.size() && i < e.metrics.size(); ++i)
    s += fmt::format("  {} {}", names[i], number(e.metrics[i]));
  if (e.hasVal) {
    s += fmt::format("  val_loss {}", number(e.valLoss));
    for (size_t i = 0; i < names.size() && i < e.valMetrics.size(); ++i)
      s += fmt::format("  val_{} {}", names[i], number(e.valMetrics[i]));
  }
  return s + fmt::format("  ({:.0f} steps/s)", e.stepsPerSecond);
}

}  // namespace

TrainResult train(const Kernel &step, const Kernel *eval, TrainState &st, const Dataset *data,
                  const Dataset *val, const TrainOptions &o, std::ostream &out) {
  SignalGuard signals(o.handleSignals);
  Progress progress(o.progress < 0 ? ::isatty(2) != 0 : o.progress > 0);
  TrainResult result;
  if (!o.savePath.empty()) checkWritable(o.savePath);
  auto save = [&] {
    if (!o.savePath.empty()) st.save(o.savePath, o.modelName, o.modelHash, o.seed);
  };
  auto stopStatus = [&]() -> int { return gSignal == 0 ? 0 : 128 + gSignal; };
  // A step gave a non-finite value: go back to the state before it (from the snapshot, then
  // replaying the batches from `from`), let explainNonFinite name the value, else blame the
  // loss. An earlier step whose loss was finite but which left a param or state non-finite
  // (a NaN gradient that where() keeps out of the loss, an update that overflows) is the one
  // explained instead: the replay checks the params after each step. `b` past the replayed
  // steps (`pastEnd`) means that one of them must be it.
  // A data-parallel step is replayed by every process together (the loss every process
  // checks is the same), with the epoch's order; `call` then holds batch `b` whole.
  Snapshot snap;
  const std::vector<int64_t> *runnerOrder = nullptr;
  auto stateFinite = [&] {
    for (const StateTensor &t : st.tensors) {
      bool ok = st.f64 ? finiteBits64(static_cast<const uint64_t *>(t.buf.data()), t.elements,
                                      UINT64_C(0x7fffffffffffffff), UINT64_C(0x7ff0000000000000))
                       : finiteBits32(static_cast<const uint32_t *>(t.buf.data()), t.elements,
                                      0x7fffffffu, 0x7f800000u);
      if (!ok) return false;
    }
    return true;
  };
  // `rowOf(b, r)`: where row r of batch b was read (FILE:LINE), or empty (no data file).
  using RowOf = std::function<std::string(int64_t, int64_t)>;
  auto nonFinite = [&](Call &call, double loss, const std::function<std::string(int64_t)> &where, const RowOf &rowOf,
                       const std::function<int64_t(int64_t)> &gather, int64_t from, int64_t b,
                       bool pastEnd = false) {
    progress.clear();
    auto replay = [&](int64_t c) {
      double t = st.t();
      if (o.runner) o.runner->run(*runnerOrder, c, o.lr, t);
      else call.run(gather(c), o.lr, t);
    };
    snap.restore(st);
    int64_t at = b, reached = from;  // st holds the state before batch `reached` (-1: none)
    if (stateFinite()) {
      for (int64_t c = from; c < b; ++c) {
        replay(c);
        if (!stateFinite()) {
          at = c;
          reached = -1;
          loss = o.runner ? o.runner->loss() : call.loss();
          break;
        }
        ++st.step;
        reached = c + 1;
      }
    }
    if (pastEnd && at == b) at = from;  // the snapshot itself held the non-finite value
    if (reached != at) {
      snap.restore(st);
      for (int64_t c = from; c < at; ++c) {
        replay(c);
        ++st.step;
      }
    }
    call.prepare(gather(at), o.lr, st.t());
    auto rowPlace = [&](int64_t r) { return rowOf ? rowOf(at, r) : std::string(); };
    if (o.explainNonFinite) o.explainNonFinite(call, where(at), rowPlace);
    std::string what = std::isfinite(loss) ? "a value of the step became non-finite"
                                           : fmt::format("the loss became {}", loss);
    throw UserError(o.modelPath.empty() ? std::string("gradc") : o.modelPath, what + where(at));
  };
  // The loss every step; with --check-numerics also the metrics and every value the step
  // computed (the check-mode kernel's flag), so the failing step is the one just run.
  auto failed = [&](const Call &call, double loss, const std::vector<double> &metricValues) {
    if (!std::isfinite(loss)) return true;
    if (!o.checkNumerics) return false;
    for (double m : metricValues)
      if (!std::isfinite(m)) return true;
    return o.runner ? !call.allFinite() : !call.checkedFinite();
  };
  auto record = [&](const EpochStats &e) {
    if (o.keepHistory) result.history.push_back(e);
  };
  // A step can leave a param or state non-finite with a finite loss. Before a run reports or
  // saves an epoch (a tenth of a run without inputs), every param and state is checked, and
  // a non-finite one is explained at the step that made it: nothing is saved.
  auto checkState = [&](Call &call, int64_t from, int64_t to, const std::function<int64_t(int64_t)> &gather,
                        const std::function<std::string(int64_t)> &where, const RowOf &rowOf) {
    if (!stateFinite()) nonFinite(call, 0.0, where, rowOf, gather, from, to, true);
  };

  if (!data) {
    // No inputs: `maxSteps` steps of the kernel, a report every tenth of them.
    Call call(step, st, nullptr, 1);
    result.metricNames = call.metricNames();
    MetricsFile metrics(o.metricsPath, false, result.metricNames, false);
    int64_t total = o.maxSteps < 0 ? 1000 : o.maxSteps;
    int64_t every = std::max<int64_t>(1, total / 10);
    auto start = Clock::now();
    int64_t snapAt = 0;
    std::vector<double> metricValues;
    for (int64_t s = 0; s < total; ++s) {
      if (s % every == 0) {
        snap.take(st);
        snapAt = s;
      }
      call.run(1, o.lr, st.t());
      double loss = call.loss();
      call.metrics(metricValues);
      if (failed(call, loss, metricValues))
        nonFinite(call, loss, [&](int64_t) { return fmt::format(" at step {}", st.step + 1); }, {},
                  [](int64_t) -> int64_t { return 1; }, snapAt, s);
      ++st.step;
      progress.update("train", s + 1, total, loss, s + 1, start);
      if ((s + 1) % every == 0 || s + 1 == total || gSignal) {
        checkState(call, snapAt, s + 1, [](int64_t) -> int64_t { return 1; },
                   [&](int64_t) { return fmt::format(" at step {}", st.step + 1); }, {});
        EpochStats e;
        e.step = st.step;
        e.loss = loss;
        e.metrics = call.metrics();
        e.stepsPerSecond = static_cast<double>(s + 1) / std::max(1e-9, seconds(start, Clock::now()));
        progress.clear();
        out << epochLine(e, fmt::format("step {}/{}", s + 1, total), result.metricNames) << "\n"
            << std::flush;
        metrics.add(e);
        record(e);
      }
      if (gSignal) break;
    }
    progress.clear();
    save();
    result.status = stopStatus();
    return result;
  }

  int64_t rows = data->rows;
  if (o.dropLast && o.batchSize > rows)
    throw UserError(data->path, fmt::format("--drop-last with --batch-size {} drops every row: the "
                                            "file has {} rows, fewer than one batch", o.batchSize, rows));
  int64_t batchSize = std::max<int64_t>(1, std::min(o.batchSize, rows));
  int64_t batches = batchCount(rows, batchSize, o.dropLast);
  Batcher batcher(*data, batchSize, step.f64);
  // A data-parallel run steps with its runner (its share of a batch on this process); its
  // `call` runs only to explain a non-finite step, and takes its work for a whole batch then
  // (prepare() grows it), not at the start on every process beside the runner's own.
  Call call(step, st, &batcher, o.runner ? 1 : batchSize);
  if (int64_t fixed = call.fixedRows(); fixed > rows)
    throw UserError(data->path, fmt::format("the model's inputs take batches of exactly {} rows, and the "
                                            "file has only {}", fixed, rows));
  if (int64_t fixed = call.fixedRows(); fixed >= 0 && (batchSize != fixed || (rows % fixed != 0 && !o.dropLast)))
    throw UserError(data->path, fmt::format("the model's inputs take batches of exactly {} rows: "
                                            "use --batch-size {}{}", fixed, fixed,
                                            rows % fixed != 0 ? " --drop-last" : ""));
  // A fixed batch size holds for validation too: its batches are of that size.
  int64_t valBatchSize = o.valBatchSize;
  if (int64_t fixed = call.fixedRows(); fixed >= 0 && val && eval) {
    if (val->rows % fixed != 0)
      throw UserError(val->path, fmt::format("the model's inputs take batches of exactly {} rows, and "
                                             "the file's {} rows do not divide into them", fixed, val->rows));
    valBatchSize = fixed;
  }
  result.metricNames = call.metricNames();
  MetricsFile metrics(o.metricsPath, true, result.metricNames, val && eval);
  GRADC_ASSERT(o.epochs >= 0 || o.maxSteps >= 0, "training without an epoch or step limit");
  // A checkpoint that stopped inside an epoch at a batch past this data's last one (it was
  // written for other data or another batch size) has no batch of that epoch left: the
  // epoch is over, and the run starts the next one (so `--epochs 1` trains a whole epoch).
  if (st.batch >= batches && o.epochs != 0) {
    if (o.warnings)
      std::cerr << oneLine(fmt::format("{}: warning: the checkpoint stopped after batch {} of epoch {}, and "
                                       "the data has {} batches of {}: training goes on with epoch {}",
                                       data->path, st.batch, st.epoch + 1, batches, batchSize, st.epoch + 2));
    ++st.epoch;
    st.batch = 0;
  }
  bool byEpochs = o.epochs >= 0;
  int64_t lastEpoch = byEpochs ? st.epoch + o.epochs : std::numeric_limits<int64_t>::max();
  int64_t stepsThisRun = 0;
  std::vector<double> metricValues;
  bool stopped = false;
  for (int64_t epoch = st.epoch; epoch < lastEpoch && !stopped; ++epoch) {
    std::vector<int64_t> order = epochOrder(rows, o.seed, epoch, o.shuffle);
    Means means;
    auto start = Clock::now();
    int64_t first = st.batch, done = 0, snapAt = first, snapStep = st.step;
    std::string head = byEpochs ? fmt::format("epoch {}/{}", epoch + 1, lastEpoch)
                                : fmt::format("epoch {}", epoch + 1);
    snap.take(st);
    runnerOrder = &order;
    auto gather = [&](int64_t b) { return batcher.gather(order, b); };
    auto where = [&](int64_t b) {
      int64_t n = std::min(batchSize, rows - b * batchSize);
      return fmt::format(" at step {}, batch rows {}..{}{}", snapStep + (b - snapAt) + 1,
                         b * batchSize, b * batchSize + n - 1,
                         o.shuffle ? fmt::format(" of epoch {}'s shuffled order", epoch + 1)
                                   : std::string());
    };
    // Row r of batch b: its line in the data file, when the rows came from one.
    auto rowOf = [&](int64_t b, int64_t r) -> std::string {
      int64_t i = b * batchSize + r;
      if (data->lines.size() != static_cast<size_t>(rows) || r < 0 || r >= batchSize || i < 0 || i >= rows) return "";
      return fmt::format("{}:{}", data->path, data->lines[static_cast<size_t>(order[static_cast<size_t>(i)])]);
    };
    for (int64_t b = first; b < batches; ++b) {
      if (o.maxSteps >= 0 && stepsThisRun >= o.maxSteps) {
        stopped = true;
        break;
      }
      int64_t n = o.runner ? o.runner->run(order, b, o.lr, st.t())
                           : batcher.gather(order, b);
      if (!o.runner) call.run(n, o.lr, st.t());
      double loss = o.runner ? o.runner->loss() : call.loss();
      if (o.runner) o.runner->metrics(metricValues);
      else call.metrics(metricValues);
      if (failed(call, loss, metricValues)) nonFinite(call, loss, where, rowOf, gather, snapAt, b);
      ++st.step;
      ++stepsThisRun;
      ++done;
      st.batch = b + 1;
      means.add(static_cast<double>(n), loss, metricValues);
      progress.update(head, b + 1, batches, means.meanLoss(), done, start);
      if (gSignal) {
        stopped = true;
        break;
      }
    }
    double elapsed = seconds(start, Clock::now());
    bool finished = st.batch >= batches;
    if (finished) {
      st.epoch = epoch + 1;
      st.batch = 0;
    }
    progress.clear();
    // No step: the limit of steps was reached (the loop ends).
    if (done == 0) continue;
    checkState(call, snapAt, first + done, gather, where, rowOf);
    EpochStats e;
    e.epoch = epoch + 1;
    e.step = st.step;
    e.loss = means.meanLoss();
    e.metrics = means.meanMetrics();
    e.stepsPerSecond = done / std::max(1e-9, elapsed);
    // The last epoch of a run that --steps stops inside it is validated too (its line is the
    // run's last word on the weights it saves); one a signal interrupts is not, to exit soon.
    if (val && eval && (finished || !gSignal)) {
      EvalResult v = evaluate(*eval, st, *val, valBatchSize);
      e.hasVal = true;
      e.valLoss = v.loss;
      e.valMetrics = v.metrics;
    }
    out << epochLine(e, head, result.metricNames) << "\n" << std::flush;
    metrics.add(e);
    record(e);
    if (finished && !stopped && epoch + 1 < lastEpoch) save();
  }
  save();
  result.status = stopStatus();
  return result;
}

}  // namespace gradc::rt
