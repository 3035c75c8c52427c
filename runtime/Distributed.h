// Data-parallel training with MPI (Open MPI): every process (rank) holds the same params,
// computes the gradient of its rows of each global batch, the gradients are averaged with
// one MPI_Allreduce per step, and every rank applies the same update. See
// docs/distributed.md.
//
// The step is split in two compiled functions made by the same optimiser lowering
// (autodiff/Step.h): the gradient (inputs, params -> loss, metrics, grad per param) and the
// update (params, states, lr, t, grad.NAME -> params, states in place). Per step, rank r of
// R gathers rows [n*r/R, n*(r+1)/R) of the batch's n rows (the common order of the epoch,
// the same seed on every rank), runs the gradient, scales it by its share of the rows
// (local_rows / n) into one contiguous buffer together with the loss and metrics, sums the
// buffer over all ranks (MPI_SUM; a rank with no rows adds zeros), and runs the update with
// its `grad.NAME` arguments pointing into that buffer. The result is the gradient of the
// whole batch's mean loss, also for a last smaller batch and uneven shares.
//
// Failure: the communicator returns errors instead of aborting (MPI_ERRORS_RETURN), and
// each collective is non-blocking and polled with a time limit (`--mpi-timeout`): a
// collective that fails or does not finish makes the rank print an error and abort the job
// (MPI_Abort), so no rank waits forever for a dead one.
//
// This file is compiled only when CMake finds MPI (option GRADC_MPI, which defines
// GRADC_MPI); launchedByMpi() is always there.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "runtime/Trainer.h"

#ifdef GRADC_MPI
#define OMPI_SKIP_MPICXX 1  // the C API only
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace gradc::rt {

/// True when an MPI launcher (mpirun, srun, hydra) started this process: one of
/// OMPI_COMM_WORLD_SIZE, PMIX_RANK, PMI_SIZE, PMI_RANK is set.
inline bool launchedByMpi() {
  for (const char *v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK"})
    if (std::getenv(v)) return true;
  return false;
}

#ifdef GRADC_MPI

/// MPI for the lifetime of the object: MPI_Init_thread (funneled: only the main thread
/// calls MPI) and a duplicate of MPI_COMM_WORLD that returns errors; MPI_Finalize at the
/// end.
class Mpi {
public:
  explicit Mpi(double timeoutSeconds);
  ~Mpi();
  Mpi(const Mpi &) = delete;
  Mpi &operator=(const Mpi &) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  /// Ranks on this machine (to share its cores among them).
  int localSize() const { return localSize_; }

  /// Sums `count` floats (or doubles) over all ranks, in place: one MPI_Iallreduce per
  /// bucket of up to 2^30 values (one call in practice), waited for with the time limit.
  void sum(void *data, int64_t count, bool f64, const char *what);
  /// Element-wise minimum of `count` unsigned 64-bit values over all ranks, in place.
  void min(uint64_t *data, int count, const char *what, double timeoutSeconds);
  /// Prints `gradc: error: rank R: MESSAGE` and ends every rank with exit status 1.
  [[noreturn]] void abort(const std::string &message) const;
  /// Exits now with `status` (the error is printed already), without MPI_Finalize, which
  /// would wait for the other ranks while they wait in a collective this rank will not join:
  /// the launcher sees a rank fail and ends the job (or else their --mpi-timeout does).
  [[noreturn]] void end(int status) const;

private:
  void wait(std::vector<MPI_Request> &requests, const char *what, double timeoutSeconds);
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1, localSize_ = 1;
  double timeout_;
  std::vector<MPI_Request> requests_;
};

/// The data-parallel step: the gradient kernel on this rank's rows, one summed buffer, the
/// update kernel. `grad` and `update` are Program::Grad and Program::Update of one model;
/// `st` holds the params and states of both.
class DataParallelStep : public StepRunner {
public:
  DataParallelStep(Mpi &mpi, const Kernel &grad, const Kernel &update, TrainState &st,
                   const Dataset &ds, int64_t batchSize);
  int64_t run(const std::vector<int64_t> &order, int64_t batch, double lr, double t) override;
  double loss() const override { return loss_; }
  void metrics(std::vector<double> &out) const override;

  int64_t steps = 0;
  double stepSeconds = 0, reduceSeconds = 0;  // wall time of the steps, and in the allreduce

private:
  double at(int64_t i) const;
  void set(int64_t i, double v);
  Mpi &mpi_;
  const Kernel &update_;
  int64_t batchSize_;
  bool f64_;
  Batcher local_;
  Call grad_;
  std::vector<int64_t> rows_;              // this rank's rows of the current batch
  struct Packed { int slot; int64_t offset, elements; };
  std::vector<Packed> grads_;              // gradient result slots of `grad` and their place
  int64_t lossAt_ = 0, metricsAt_ = 0, packed_ = 0;
  Buffer buffer_;                          // gradients, then the loss, then the metrics
  std::vector<void *> updateArgs_;
  std::vector<Buffer> updateOwned_;
  int lrSlot_ = -1, tSlot_ = -1;
  Buffer updateWork_;
  double loss_ = 0;
  std::vector<double> metrics_;
};

#endif  // GRADC_MPI

}  // namespace gradc::rt
