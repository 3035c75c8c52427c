// Data-parallel training with MPI (see Distributed.h): the MPI session with its time-limited
// collectives, and the step that sums the gradients of all ranks between the gradient and
// the update kernel. Compiled to nothing in a build without MPI (GRADC_MPI off).
#include "runtime/Distributed.h"

#ifdef GRADC_MPI

#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "support/Diagnostics.h"

namespace gradc::rt {

namespace {

using Clock = std::chrono::steady_clock;

std::string errorText(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) return fmt::format("MPI error {}", code);
  return std::string(text, static_cast<size_t>(len));
}

int envInt(const char *name, int fallback) {
  const char *v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

constexpr int64_t kBucket = int64_t(1) << 30;

}  // namespace

// --- Mpi ----------------------------------------------------------------------------------

Mpi::Mpi(double timeoutSeconds) : timeout_(timeoutSeconds) {
  int provided = 0;
  if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
    throw UserError(std::string("gradc"), "MPI could not be initialised");
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  if (MPI_Comm_dup(MPI_COMM_WORLD, &comm_) != MPI_SUCCESS) abort("MPI_Comm_dup failed");
  MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  localSize_ = std::max(1, envInt("OMPI_COMM_WORLD_LOCAL_SIZE", envInt("MPI_LOCALNRANKS", 1)));
}

Mpi::~Mpi() {
  if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
  MPI_Finalize();
}

void Mpi::abort(const std::string &message) const {
  std::fprintf(stderr, "gradc: error: rank %d: %s\n", rank_, message.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::_Exit(1);
}

void Mpi::end(int status) const {
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(status);
}

// Polls the requests until all are done (a non-blocking collective progresses inside these
// calls, so they follow each other closely), yielding the core between polls so that ranks
// sharing a core leave it to the others. An error or `timeoutSeconds` without completion
// aborts.
void Mpi::wait(std::vector<MPI_Request> &requests, const char *what, double timeoutSeconds) {
  auto start = Clock::now();
  for (uint64_t spins = 1;; ++spins) {
    int done = 0;
    int rc = MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done, MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS) abort(fmt::format("{} failed: {}", what, errorText(rc)));
    if (done) return;
    if (spins % 64 != 0) continue;
    std::this_thread::yield();
    double waited = std::chrono::duration<double>(Clock::now() - start).count();
    if (waited > timeoutSeconds)
      abort(fmt::format("{} got no answer from the other ranks within {} s (--mpi-timeout): "
                        "a rank died or hangs", what, timeoutSeconds));
  }
}

void Mpi::sum(void *data, int64_t count, bool f64, const char *what) {
  requests_.clear();
  size_t bytes = f64 ? sizeof(double) : sizeof(float);
  for (int64_t at = 0; at < count; at += kBucket) {
    int n = static_cast<int>(std::min(kBucket, count - at));
    requests_.push_back(MPI_REQUEST_NULL);
    int rc = MPI_Iallreduce(MPI_IN_PLACE, static_cast<char *>(data) + static_cast<size_t>(at) * bytes, n,
                            f64 ? MPI_DOUBLE : MPI_FLOAT, MPI_SUM, comm_, &requests_.back());
    if (rc != MPI_SUCCESS) abort(fmt::format("{} failed: {}", what, errorText(rc)));
  }
  wait(requests_, what, timeout_);
}

void Mpi::min(uint64_t *data, int count, const char *what, double timeoutSeconds) {
  std::vector<MPI_Request> r(1, MPI_REQUEST_NULL);
  int rc = MPI_Iallreduce(MPI_IN_PLACE, data, count, MPI_UINT64_T, MPI_MIN, comm_, &r[0]);
  if (rc != MPI_SUCCESS) abort(fmt::format("{} failed: {}", what, errorText(rc)));
  wait(r, what, timeoutSeconds);
}

// --- DataParallelStep ---------------------------------------------------------------------

DataParallelStep::DataParallelStep(Mpi &mpi, const Kernel &grad, const Kernel &update,
                                   TrainState &st, const Dataset &ds, int64_t batchSize)
    : mpi_(mpi), update_(update), batchSize_(batchSize), f64_(grad.f64),
      local_(ds, (batchSize + mpi.size() - 1) / mpi.size(), grad.f64),
      grad_(grad, st, &local_, local_.batchSize()) {
  if (grad_.fixedRows() >= 0)
    throw UserError(ds.path, fmt::format("distributed training needs inputs whose batch dim is a "
                                         "`dim`; this model's inputs take exactly {} rows",
                                         grad_.fixedRows()));
  rows_.reserve(static_cast<size_t>(local_.batchSize()));
  // The buffer: each gradient in the update's argument order, then the loss and metrics.
  int64_t offset = 0;
  std::vector<std::pair<int, int64_t>> gradInputs;  // update slot, offset
  for (size_t i = 0; i < update.sig.slots.size(); ++i) {
    const Slot &s = update.sig.slots[i];
    if (s.kind != SlotKind::Input) continue;
    GRADC_ASSERT(s.name.rfind("grad.", 0) == 0, "update input '{}' is not a gradient", s.name);
    int g = grad.sig.find(SlotKind::Grad, s.name.substr(5));
    GRADC_ASSERT(g >= 0, "the gradient kernel has no gradient '{}'", s.name);
    int64_t n = s.elements(nullptr);
    grads_.push_back({g, offset, n});
    gradInputs.push_back({static_cast<int>(i), offset});
    offset += n;
  }
  lossAt_ = offset;
  metricsAt_ = offset + 1;
  metrics_.resize(grad_.metricNames().size());
  packed_ = metricsAt_ + static_cast<int64_t>(metrics_.size());
  buffer_.allocate(static_cast<size_t>(packed_) * (f64_ ? sizeof(double) : sizeof(float)));

  updateArgs_.resize(update.sig.slots.size(), nullptr);
  updateOwned_.resize(update.sig.slots.size());
  size_t elem = f64_ ? sizeof(double) : sizeof(float);
  for (auto [slot, off] : gradInputs)
    updateArgs_[static_cast<size_t>(slot)] = static_cast<char *>(buffer_.data()) + static_cast<size_t>(off) * elem;
  for (size_t i = 0; i < update.sig.slots.size(); ++i) {
    const Slot &s = update.sig.slots[i];
    if (s.kind == SlotKind::Input) continue;
    if (s.kind == SlotKind::Param || s.kind == SlotKind::State) {
      StateTensor *t = st.find(s.name);
      if (!t) internalError("the training state has no tensor '{}'", s.name);
      updateArgs_[i] = t->buf.data();
      continue;
    }
    if (s.kind == SlotKind::Hyper) (s.name == "lr" ? lrSlot_ : tSlot_) = static_cast<int>(i);
    updateOwned_[i].allocate(static_cast<size_t>(s.elements(nullptr)) * elem);
    updateArgs_[i] = updateOwned_[i].data();
  }
  int64_t noDims = 0;
  updateWork_.allocate(update.workBytes ? update.workBytes(&noDims) : 0);
}

double DataParallelStep::at(int64_t i) const {
  return f64_ ? buffer_.as<double>()[i] : buffer_.as<float>()[i];
}

void DataParallelStep::set(int64_t i, double v) {
  if (f64_) buffer_.as<double>()[i] = v;
  else buffer_.as<float>()[i] = static_cast<float>(v);
}

int64_t DataParallelStep::run(const std::vector<int64_t> &order, int64_t batch, double lr, double t) {
  auto start = Clock::now();
  int64_t begin = batch * batchSize_;
  int64_t n = std::min<int64_t>(batchSize_, static_cast<int64_t>(order.size()) - begin);
  int64_t r = mpi_.rank(), size = mpi_.size();
  int64_t lo = begin + n * r / size, hi = begin + n * (r + 1) / size;
  rows_.assign(order.begin() + lo, order.begin() + hi);
  int64_t mine = hi - lo;
  if (mine > 0) {
    local_.gather(rows_, 0);
    grad_.run(mine, lr, t);
    // Scaled by this rank's share of the rows: the sum over ranks is the batch mean.
    double share = static_cast<double>(mine) / static_cast<double>(n);
    for (const Packed &p : grads_) {
      if (f64_) {
        const double *g = static_cast<const double *>(grad_.result(p.slot));
        double *out = buffer_.as<double>() + p.offset;
        for (int64_t i = 0; i < p.elements; ++i) out[i] = g[i] * share;
      } else {
        const float *g = static_cast<const float *>(grad_.result(p.slot));
        float *out = buffer_.as<float>() + p.offset;
        float s = static_cast<float>(share);
        for (int64_t i = 0; i < p.elements; ++i) out[i] = g[i] * s;
      }
    }
    set(lossAt_, grad_.loss() * share);
    grad_.metrics(metrics_);
    for (size_t i = 0; i < metrics_.size(); ++i) set(metricsAt_ + static_cast<int64_t>(i), metrics_[i] * share);
  } else {
    std::memset(buffer_.data(), 0, buffer_.bytes());
  }
  auto reduceStart = Clock::now();
  mpi_.sum(buffer_.data(), packed_, f64_, "the gradient exchange (MPI_Iallreduce)");
  reduceSeconds += std::chrono::duration<double>(Clock::now() - reduceStart).count();

  auto setScalar = [&](int slot, double v) {
    if (slot < 0) return;
    if (f64_) updateOwned_[static_cast<size_t>(slot)].as<double>()[0] = v;
    else updateOwned_[static_cast<size_t>(slot)].as<float>()[0] = static_cast<float>(v);
  };
  setScalar(lrSlot_, lr);
  setScalar(tSlot_, t);
  int64_t noDims = 0;
  update_.call(updateArgs_.data(), &noDims, updateWork_.data());
  loss_ = at(lossAt_);
  for (size_t i = 0; i < metrics_.size(); ++i) metrics_[i] = at(metricsAt_ + static_cast<int64_t>(i));
  ++steps;
  stepSeconds += std::chrono::duration<double>(Clock::now() - start).count();
  return n;
}

void DataParallelStep::metrics(std::vector<double> &out) const { out = metrics_; }

}  // namespace gradc::rt

#endif  // GRADC_MPI
