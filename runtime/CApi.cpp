// The C API of gradc_runtime.h over the C++ runtime: each function converts the C model
// description into the runtime's Signature / Kernel, copies the caller's contiguous state
// buffer into a TrainState (and back), runs the C++ code `gradc train` runs, and turns
// exceptions into -1 / NULL and a message for gradc_last_error().
#include "runtime/gradc_runtime.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>

#include "runtime/Batches.h"
#include "runtime/Csv.h"
#include "runtime/Init.h"
#include "runtime/Trainer.h"
#include "support/Diagnostics.h"

struct gradc_dataset {
  gradc::rt::Dataset ds;
  bool f64 = false;  // read for a float64 model: the float values are doubles
};

struct gradc_batcher {
  std::unique_ptr<gradc::rt::Batcher> b;
  std::vector<int64_t> window;
};

namespace gradc::rt {
namespace {

thread_local std::string gLastError;

// Runs `f`, turning an exception into `fail` and a message.
template <typename F, typename R>
R guarded(R fail, F &&f) {
  try {
    gLastError.clear();
    return f();
  } catch (const UserError &e) {
    if (e.loc.line > 0) gLastError = fmt::format("{}:{}:{}: error: {}", e.fileName, e.loc.line, e.loc.col, e.what());
    else gLastError = fmt::format("{}: error: {}", e.fileName.empty() ? "gradc" : e.fileName, e.what());
  } catch (const std::exception &e) {
    gLastError = fmt::format("gradc: error: {}", e.what());
  }
  return fail;
}

Slot toSlot(const gradc_slot &s) {
  Slot out;
  out.name = s.name;
  out.kind = static_cast<SlotKind>(s.kind);
  out.isInt = s.is_int != 0;
  out.shape.assign(s.shape, s.shape + s.rank);
  return out;
}

Signature toSignature(const gradc_model &m, const gradc_kernel &k) {
  Signature sig;
  for (int i = 0; i < m.num_dims; ++i) sig.dimNames.push_back(m.dim_names[i]);
  for (int i = 0; i < k.num_slots; ++i) sig.slots.push_back(toSlot(k.slots[i]));
  return sig;
}

Kernel toKernel(const gradc_model &m, const gradc_kernel &k) {
  if (!k.fn) throw UserError(std::string(m.name), fmt::format("the model has no {} function", k.name));
  // The function needs its work memory: without its size it would write past a buffer of none.
  if (!k.work_size)
    throw UserError(std::string(m.name), fmt::format("the model's {} function has no work-size function "
                                                     "(gradc_NAME_{}_work_size)", k.name, k.name));
  Kernel out;
  out.sig = toSignature(m, k);
  out.f64 = m.f64 != 0;
  gradc_kernel_fn fn = k.fn;
  gradc_work_size_fn ws = k.work_size;
  out.call = [fn](void *const *args, const int64_t *dims, void *work) { fn(args, dims, work); };
  out.workBytes = [ws](const int64_t *dims) { return ws ? static_cast<size_t>(ws(dims)) : size_t(0); };
  return out;
}

// The TrainState of `gradc train`: the step's params and states in slot order, then the
// rest of the state buffer (params only the eval function uses).
TrainState stateOf(const gradc_model &m) {
  TrainState st(toSignature(m, m.step), m.f64 != 0);
  st.optimizerKind = m.optimizer ? m.optimizer : "";
  Signature rest;
  for (int i = 0; i < m.num_state; ++i) rest.slots.push_back(toSlot(m.state[i]));
  st.include(rest);
  return st;
}

const gradc_slot &stateSlot(const gradc_model &m, const std::string &name) {
  for (int i = 0; i < m.num_state; ++i)
    if (name == m.state[i].name) return m.state[i];
  internalError("the state buffer has no tensor '{}'", name);
}

void copyIn(const gradc_model &m, TrainState &st, const void *state) {
  for (StateTensor &t : st.tensors)
    std::memcpy(t.buf.data(), static_cast<const char *>(state) + stateSlot(m, t.name).state_offset,
                t.buf.bytes());
}

void copyOut(const gradc_model &m, const TrainState &st, void *state) {
  for (const StateTensor &t : st.tensors)
    std::memcpy(static_cast<char *>(state) + stateSlot(m, t.name).state_offset, t.buf.data(),
                t.buf.bytes());
}

// The C API's own argument checks: a NULL or ill-fitting argument is an error (-1 / NULL and
// a message), not a crash or a read past the end of a buffer.
void checkModel(const gradc_model *m) {
  if (!m) throw UserError(std::string("gradc"), "no model: the model is NULL");
}

void checkState(const gradc_model &m, const void *state) {
  if (!state) throw UserError(std::string(m.name), "no state buffer: the state is NULL");
}

// A data set fits a function when it holds each of its inputs with the same columns per row
// and kind, and labels within the input's classes: a data set read for another model would
// otherwise be read past its end by the compiled function. A data set read for a float64
// model holds doubles, which a float32 model cannot take; one read for a float32 model holds
// its values rounded to float, which a float64 model would take as less than the file says.
// A function without inputs (a model of params only) takes no data: d may then be NULL.
void checkData(const gradc_model &m, const gradc_kernel &k, const gradc_dataset *d, const char *what) {
  bool inputs = std::any_of(k.slots, k.slots + k.num_slots, [](const gradc_slot &s) { return s.kind == GRADC_SLOT_INPUT; });
  if (!d && !inputs) return;
  // Nor does it take one: a data set would decide the steps of an epoch (one), which `gradc
  // train` counts otherwise (--steps, 1000 by default).
  if (!inputs)
    throw UserError(d->ds.path, fmt::format("the model {} has no inputs: it takes no data set to {} (pass NULL)",
                                            m.name, what));
  if (!d) throw UserError(std::string(m.name), fmt::format("no data to {} (the data set is NULL)", what));
  const std::string &file = d->ds.path;
  if (d->f64 && !m.f64)
    throw UserError(file, fmt::format("the data set was read for a float64 model; the model {} is float32", m.name));
  if (!d->f64 && m.f64)
    throw UserError(file, fmt::format("the data set was read for a float32 model (its values rounded to float); the "
                                      "model {} is float64: read the file for it", m.name));
  std::vector<InputSpec> specs = inputSpecs(toSignature(m, k));
  size_t j = 0;
  for (int i = 0; i < k.num_slots; ++i) {
    const gradc_slot &s = k.slots[i];
    if (s.kind != GRADC_SLOT_INPUT) continue;
    const InputSpec &spec = specs[j++];
    auto c = std::find_if(d->ds.inputs.begin(), d->ds.inputs.end(), [&](const Column &c) { return c.name == spec.name; });
    if (c == d->ds.inputs.end())
      throw UserError(file, fmt::format("the data set has no input '{}' of the model {}: it was read for another model",
                                        spec.name, m.name));
    if (c->isInt != spec.isInt || c->width != spec.width)
      throw UserError(file, fmt::format("input '{}' of the data set is {} {} per row, the model {}'s is {} {}: the data "
                                        "set was read for another model", spec.name, c->width, c->isInt ? "label(s)" : "value(s)",
                                        m.name, spec.width, spec.isInt ? "label(s)" : "value(s)"));
    if (spec.isInt && s.classes > 0)
      for (size_t r = 0; r < c->i.size(); ++r)
        if (c->i[r] < 0 || c->i[r] >= s.classes)
          throw UserError(file, fmt::format("label {} of input '{}' (row {}) is not a class of the model {} (0..{})",
                                            c->i[r], spec.name, static_cast<int64_t>(r) / c->width + 1, m.name, s.classes - 1));
  }
}

void checkRows(int64_t rows) {
  if (rows < 0) throw UserError(std::string("gradc"), fmt::format("a row count cannot be negative ({})", rows));
}

// The arguments of gradc_init_param_*: an initialiser of Init's order with as many arguments
// as it takes (const 1, normal and uniform 2, the others none), a shape of at most
// GRADC_MAX_RANK dims that are not negative, and somewhere to write. Returns num_args.
size_t checkInitCall(const void *out, int kind, const double *args, int num_args, const int64_t *shape, int rank,
                     int index) {
  auto fail = [](const std::string &why) { throw UserError(std::string("gradc"), why); };
  if (kind < static_cast<int>(Init::Zeros) || kind > static_cast<int>(Init::He))
    fail(fmt::format("unknown initialiser kind {} (0..{})", kind, static_cast<int>(Init::He)));
  Init init = static_cast<Init>(kind);
  int wanted = init == Init::Const ? 1 : init == Init::Normal || init == Init::Uniform ? 2 : 0;
  if (num_args != wanted) fail(fmt::format("initialiser kind {} takes {} arguments, got {}", kind, wanted, num_args));
  if (num_args > 0 && !args) fail("no initialiser arguments: `args` is NULL");
  if (rank < 0 || rank > GRADC_MAX_RANK) fail(fmt::format("rank {} is not 0..{}", rank, GRADC_MAX_RANK));
  if (rank > 0 && !shape) fail("no shape: `shape` is NULL");
  int64_t n = 1;
  for (int i = 0; i < rank; ++i) {
    if (shape[i] < 0) fail(fmt::format("dim {} of the shape is {}", i, shape[i]));
    if (shape[i] > 0 && n > (int64_t{1} << 40) / shape[i]) fail("the shape holds more than 2^40 elements");
    n *= shape[i];
  }
  if (n > 0 && !out) fail("nowhere to write: `out` is NULL");
  if (index < 0) fail(fmt::format("param index {} is negative", index));
  return static_cast<size_t>(num_args);
}

// gradc_init_param_f32/_f64: the checked call, then the initialiser.
template <typename T>
int initParamChecked(T *out, int kind, const double *args, int numArgs, const int64_t *shape, int rank,
                     uint64_t seed, int index) {
  return guarded<>(-1, [&] {
    size_t n = checkInitCall(out, kind, args, numArgs, shape, rank, index);
    initParam(out, kind, std::vector<double>(args, args + n), std::vector<int64_t>(shape, shape + rank), seed, index);
    return 0;
  });
}

void checkPath(const char *path) {
  if (!path) throw UserError(std::string("gradc"), "no file name: the path is NULL");
  if (!*path) throw UserError(std::string("gradc"), "no file name: the path is empty");
}

// A batch of no rows would divide by zero (gradc_batch_count) or be taken for 1 (training).
void checkBatchSize(int64_t batchSize) {
  if (batchSize < 1) throw UserError(std::string("gradc"), "the batch size must be at least 1");
}

void countersIn(TrainState &st, const gradc_counters *c, bool check = true) {
  if (!c) return;
  st.step = c->step;
  st.epoch = c->epoch;
  st.batch = c->batch;
  st.seed = c->seed;
  st.stateSince = c->optimizer_start;
  if (!check) return;
  if (c->step < 0 || c->optimizer_start < 0 || c->optimizer_start > c->step)
    throw UserError(std::string("gradc"), fmt::format("counters: optimizer_start {} is not between 0 and step {}",
                                                      c->optimizer_start, c->step));
}

void countersOut(const TrainState &st, gradc_counters *c, uint64_t seed) {
  if (!c) return;
  c->step = st.step;
  c->epoch = st.epoch;
  c->batch = st.batch;
  c->seed = seed;
  c->optimizer_start = st.stateSince;
}

}  // namespace
}  // namespace gradc::rt

using namespace gradc;
using namespace gradc::rt;

extern "C" {

const char *gradc_last_error(void) { return gLastError.c_str(); }

gradc_dataset *gradc_dataset_read_csv(const gradc_model *m, const char *path) {
  return guarded<>(static_cast<gradc_dataset *>(nullptr), [&] {
    checkModel(m);
    checkPath(path);
    std::vector<InputSpec> specs = inputSpecs(toSignature(*m, m->step));
    for (int i = 0, j = 0; i < m->step.num_slots; ++i)
      if (m->step.slots[i].kind == GRADC_SLOT_INPUT) specs[static_cast<size_t>(j++)].classes = m->step.slots[i].classes;
    auto d = std::make_unique<gradc_dataset>();
    // A float64 model reads its values as doubles, as `gradc train --dtype f64` does.
    d->ds = readCsv(path, specs, m->f64 != 0);  // may throw: nothing is leaked then
    d->f64 = m->f64 != 0;
    return d.release();
  });
}

int64_t gradc_dataset_rows(const gradc_dataset *d) {
  return guarded<>(int64_t{-1}, [&] {
    if (!d) throw UserError(std::string("gradc"), "no data set: `d` is NULL (did gradc_dataset_read_csv fail?)");
    return d->ds.rows;
  });
}

void gradc_dataset_free(gradc_dataset *d) { delete d; }

int gradc_epoch_order(int64_t rows, uint64_t seed, int64_t epoch, int shuffle, int64_t *order) {
  return guarded<>(-1, [&] {
    checkRows(rows);
    if (rows > 0 && !order) throw UserError(std::string("gradc"), "no room for the order: `order` is NULL");
    std::vector<int64_t> o;
    try {
      o = epochOrder(rows, seed, epoch, shuffle != 0);
    } catch (const std::bad_alloc &) {
      throw UserError(std::string("gradc"), fmt::format("out of memory for the order of {} rows", rows));
    } catch (const std::length_error &) {
      throw UserError(std::string("gradc"), fmt::format("out of memory for the order of {} rows", rows));
    }
    if (rows > 0) std::memcpy(order, o.data(), o.size() * sizeof(int64_t));
    return 0;
  });
}

int64_t gradc_batch_count(int64_t rows, int64_t batch_size, int drop_last) {
  return guarded<>(int64_t(-1), [&] {
    checkRows(rows);
    checkBatchSize(batch_size);
    return batchCount(rows, batch_size, drop_last != 0);
  });
}

gradc_batcher *gradc_batcher_new(const gradc_model *m, const gradc_dataset *d, int64_t batch_size) {
  return guarded<>(static_cast<gradc_batcher *>(nullptr), [&] {
    checkModel(m);
    checkBatchSize(batch_size);
    if (!d) throw UserError(std::string(m->name), "no data to gather (the data set is NULL)");
    checkData(*m, m->step, d, "gather");
    // Each buffer holds batch_size rows: refuse a size whose byte count overflows, or that
    // cannot be allocated, rather than a buffer smaller than the batches gathered into it.
    for (const Column &c : d->ds.inputs) {
      int64_t elem = c.isInt ? 4 : m->f64 ? 8 : 4, bytes = 0;
      if (__builtin_mul_overflow(batch_size, c.width * elem, &bytes))
        throw UserError(std::string(m->name), fmt::format("the batch size {} is too large: a batch of input '{}' "
                                                          "would take more than 2^63 bytes", batch_size, c.name));
    }
    auto b = std::make_unique<gradc_batcher>();
    try {
      b->b = std::make_unique<Batcher>(d->ds, batch_size, m->f64 != 0);
    } catch (const std::bad_alloc &) {
      throw UserError(std::string(m->name), fmt::format("out of memory for batches of {} rows", batch_size));
    }
    return b.release();
  });
}

int64_t gradc_batcher_gather(gradc_batcher *b, const int64_t *order, int64_t batch) {
  return guarded<>(int64_t(-1), [&]() -> int64_t {
    if (!b) throw UserError(std::string("gradc"), "no batcher: the batcher is NULL");
    if (!order) throw UserError(std::string("gradc"), "no order: `order` is NULL");
    // The batch's window of the order, in a vector reused from call to call; a batch past the
    // end (checked before batch * size, which could overflow) has no rows.
    int64_t size = b->b->batchSize(), rows = b->b->data().rows;
    if (batch < 0 || batch >= batchCount(rows, size, false)) return 0;
    int64_t begin = batch * size, end = std::min(rows, begin + size);
    // Each entry must be a row: another value would be read from outside the data set.
    for (int64_t k = begin; k < end; ++k)
      if (order[k] < 0 || order[k] >= rows)
        throw UserError(b->b->data().path, fmt::format("order[{}] = {} is not a row of the data set (0..{})", k,
                                                       order[k], rows - 1));
    b->window.assign(order + begin, order + end);
    return b->b->gather(b->window, 0);
  });
}

void *gradc_batcher_buffer(const gradc_batcher *b, const char *name) {
  return guarded<>(static_cast<void *>(nullptr), [&]() -> void * {
    if (!b) throw UserError(std::string("gradc"), "no batcher: the batcher is NULL");
    if (!name) throw UserError(std::string("gradc"), "no input name: the name is NULL");
    void *buffer = b->b->buffer(name);
    if (!buffer) throw UserError(std::string("gradc"), fmt::format("the batcher has no input '{}'", name));
    return buffer;
  });
}

void gradc_batcher_free(gradc_batcher *b) { delete b; }

int gradc_init_param_f32(float *out, int kind, const double *args, int num_args,
                         const int64_t *shape, int rank, uint64_t seed, int index) {
  return initParamChecked(out, kind, args, num_args, shape, rank, seed, index);
}

int gradc_init_param_f64(double *out, int kind, const double *args, int num_args,
                         const int64_t *shape, int rank, uint64_t seed, int index) {
  return initParamChecked(out, kind, args, num_args, shape, rank, seed, index);
}

int gradc_checkpoint_save(const gradc_model *m, const void *state, const gradc_counters *c,
                          const char *path) {
  return guarded<>(-1, [&] {
    checkModel(m);
    checkState(*m, state);
    checkPath(path);
    TrainState st = stateOf(*m);
    copyIn(*m, st, state);
    countersIn(st, c);
    st.save(path, m->name, m->hash, c ? c->seed : 0);
    return 0;
  });
}

int gradc_checkpoint_load(const gradc_model *m, void *state, gradc_counters *c, const char *path) {
  return guarded<>(-1, [&] {
    checkModel(m);
    checkState(*m, state);
    checkPath(path);
    TrainState st = stateOf(*m);
    copyIn(*m, st, state);
    // The counters are an output: a checkpoint replaces them, a weights file leaves them as
    // they were. They are not checked here (an uninitialised struct was refused).
    countersIn(st, c, /*check=*/false);
    uint64_t seed = c ? c->seed : 0;
    // Counters asked for are a run to resume: a checkpoint of another version of the model
    // loads with a warning, its optimiser state only when it records the model's optimiser,
    // as `gradc train --init` resumes it; without counters (to evaluate) everything loads.
    st.load(path, m->hash, /*resume=*/c != nullptr);
    copyOut(*m, st, state);
    countersOut(st, c, st.hasSeed ? st.seed : seed);
    return 0;
  });
}

gradc_train_options gradc_train_defaults(const gradc_model *m) {
  gradc_train_options o{};
  // Without a model there is no learning rate: NaN, which gradc_train refuses.
  gLastError = m ? "" : "gradc: error: no model: the model is NULL";
  o.epochs = 1;
  o.max_steps = -1;
  o.batch_size = 32;
  o.lr = m ? m->lr : std::nan("");
  o.seed = 0;
  o.shuffle = 1;
  o.drop_last = 0;
  o.verbose = 1;
  return o;
}

int gradc_train(const gradc_model *m, void *state, gradc_counters *c, const gradc_dataset *train,
                const gradc_dataset *val, const gradc_train_options *o) {
  return guarded<>(-1, [&] {
    checkModel(m);
    Kernel step = toKernel(*m, m->step);
    Kernel eval;
    bool hasVal = val != nullptr;
    if (hasVal) eval = toKernel(*m, m->eval);  // (a model without an eval function: an error, not skipped)
    checkState(*m, state);
    if (!o) throw UserError(std::string(m->name), "no training options: the options are NULL");
    checkData(*m, m->step, train, "train on");
    if (hasVal) checkData(*m, m->eval, val, "validate on");
    checkBatchSize(o->batch_size);
    if (o->epochs < 0 && o->max_steps < 0)
      throw UserError(std::string("gradc"), "training needs a limit: epochs or max_steps must be at least 0");
    // As `gradc train --lr` takes it: a finite number, at least 0, that a float32 model can hold.
    if (!std::isfinite(o->lr) || o->lr < 0)
      throw UserError(std::string(m->name), fmt::format("the learning rate must be a finite number of at least 0, not {}", o->lr));
    if (!m->f64 && o->lr > FLT_MAX)
      throw UserError(std::string(m->name), fmt::format("the learning rate {} is too large for float32 (at most {})",
                                                        o->lr, FLT_MAX));
    if (c && (c->epoch < 0 || c->batch < 0))
      throw UserError(std::string("gradc"), fmt::format("counters: epoch {} and batch {} cannot be negative", c->epoch,
                                                        c->batch));
    if (c && o->epochs > 0 && c->epoch > INT64_MAX - o->epochs)
      throw UserError(std::string("gradc"), fmt::format("counters: {} epochs after epoch {} is past the last epoch "
                                                        "that can be counted", o->epochs, c->epoch));
    // An empty path is not "none" (that is NULL), as `gradc train --save ''` is refused.
    if (o->save_path) checkPath(o->save_path);
    if (o->metrics_path) checkPath(o->metrics_path);
    TrainState st = stateOf(*m);
    copyIn(*m, st, state);
    countersIn(st, c);
    TrainOptions t;
    t.epochs = o->epochs;
    t.maxSteps = o->max_steps;
    t.batchSize = o->batch_size;
    t.lr = o->lr;
    // Counters of a run under way (a checkpoint's) keep its data order, as `gradc train --init`
    // keeps the checkpoint's seed: another seed would shuffle the rest of an unfinished epoch
    // differently, repeating some rows and skipping others.
    bool resumed = c && (c->step > 0 || c->epoch > 0 || c->batch > 0);
    uint64_t seed = resumed ? c->seed : o->seed;
    t.seed = seed;
    t.shuffle = o->shuffle != 0;
    t.dropLast = o->drop_last != 0;
    t.savePath = o->save_path ? o->save_path : "";
    t.metricsPath = o->metrics_path ? o->metrics_path : "";
    t.modelName = m->name;
    t.modelHash = m->hash;
    t.modelPath = m->name;
    t.progress = 0;
    t.handleSignals = false;
    t.keepHistory = false;  // nothing returns the figures of past epochs: a long run held them all
    std::ostream quiet(nullptr);  // discards (a string stream kept every epoch's line)
    TrainResult r = rt::train(step, hasVal ? &eval : nullptr, st, train ? &train->ds : nullptr,
                              hasVal ? &val->ds : nullptr, t, o->verbose ? std::cout : quiet);
    copyOut(*m, st, state);
    countersOut(st, c, seed);
    return r.status == 0 ? 0 : -1;
  });
}

int gradc_evaluate(const gradc_model *m, void *state, const gradc_dataset *d, int64_t batch_size,
                   double *loss, double *metrics) {
  return guarded<>(-1, [&] {
    checkModel(m);
    Kernel eval = toKernel(*m, m->eval);
    checkState(*m, state);
    checkBatchSize(batch_size);
    checkData(*m, m->eval, d, "evaluate");
    TrainState st = stateOf(*m);
    copyIn(*m, st, state);
    EvalResult r = d ? evaluate(eval, st, d->ds, batch_size) : evaluateWithoutInputs(eval, st);
    if (loss) *loss = r.loss;
    if (metrics)
      for (size_t i = 0; i < r.metrics.size(); ++i) metrics[i] = r.metrics[i];
    return 0;
  });
}

}  // extern "C"
