// What `gradc grad` and `gradc gradcheck` share: the gradient program, weights (from a file
// or the initialisers), a batch (from a CSV file or random), and a kernel with its buffers.
//
// The kernel comes from gradientKernel(): the JIT-compiled program, or the reference
// interpreter when GRADC_BACKEND=interp is set (driver/Pipeline.h).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "driver/Commands.h"
#include "ir/Model.h"
#include "runtime/Csv.h"
#include "runtime/Kernel.h"

namespace gradc::driver {

/// The simplified gradient function of the model (arguments inputs, params; results loss,
/// metrics, `grad NAME`).
ir::Function gradientProgram(const Model &m, const Options &o);
/// The forward function with the loss and metrics (what finite differences evaluate).
ir::Function lossProgram(const Model &m);

/// The compiled `f` (float64 or float32 buffers and arithmetic).
rt::Kernel gradientKernel(const ir::Function &f, const Options &o, bool f64);

/// Param values by name, each the param's element count long.
using Weights = std::map<std::string, std::vector<double>>;

/// Reads the params from a safetensors file: each must be there with the param's shape (the
/// error names both model hashes when the file is a checkpoint of another model than `modelHash`).
Weights readWeights(const Model &m, const std::string &path, const std::string &modelHash);
/// Draws the params from their initialisers under `seed`.
Weights initialWeights(const Model &m, uint64_t seed);

/// The batch size the model fixes (an input declared `[4, 2]`: 4), or -1 when the batch dim
/// is a `dim`.
int64_t fixedRows(const Model &m);
/// A command that takes the whole data set as one batch (`eval`, `predict`, `grad`,
/// `gradcheck`): when the model fixes the batch size, the data must have exactly that many
/// rows, else `DATA: error: ...`.
void checkOneBatch(const Model &m, const rt::Dataset &data, const char *command);

/// The model's inputs read from a CSV file, or `rows` rows of random values (float inputs
/// uniform in [0, 1), labels uniform in [0, classes)).
/// Values per sample of an input: the product of its dims after the batch dim (a symbolic
/// one, which data cannot size, is an error at the input).
int64_t sampleWidth(const InputInfo &in);
rt::Dataset readData(const Model &m, const std::string &path, bool f64 = false);
rt::Dataset randomData(const Model &m, int64_t rows, uint64_t seed);

/// A kernel with one buffer per slot, for a whole data set as one batch.
class KernelCall {
public:
  KernelCall(rt::Kernel k, const Model &m, const rt::Dataset &data);
  /// Copies the params that the kernel takes from `w`.
  void setParams(const Weights &w);
  /// Sets one element of the param `name`, as setParams would from a weight holding `v` there;
  /// a param the kernel does not take is ignored.
  void setParam(const std::string &name, size_t i, double v);
  void run();
  /// The values of a result slot (by kind and name), as doubles.
  std::vector<double> result(rt::SlotKind kind, const std::string &name) const;

private:
  void *slot(size_t i) { return bufs_[i].data(); }
  rt::Kernel k_;
  std::vector<int64_t> dims_;
  std::vector<std::vector<char>> bufs_;
  std::vector<void *> ptrs_;
  std::vector<char> work_;
};

}  // namespace gradc::driver
