// What `gradc train`, `eval`, `predict` and `bench` share: the model's params as the
// runtime's initialiser specs, the model's hash (stored in checkpoints), reading the data a
// kernel needs, the NaN trap's explanation (single-process and data-parallel training), and
// the status line on a terminal (train, gradcheck).
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "driver/Commands.h"
#include "ir/Model.h"
#include "runtime/Csv.h"
#include "runtime/Kernel.h"
#include "runtime/Trainer.h"

namespace gradc::driver {

/// The params' shapes and initialisers, in declaration order (the order of their random
/// streams).
std::vector<rt::ParamSpec> paramSpecs(const Model &m);

/// A hash of the model file's text (16 hex digits, FNV-1a 64).
std::string modelHash(const SourceManager &sm, const Model &m);

/// The names of the inputs that the results of `f` depend on.
std::vector<std::string> inputsUsed(const ir::Function &f);

/// Reads the data for a program: first as all the model's inputs (the training layout); when
/// that fails and `f` needs fewer inputs (predict needs no labels), as just those, the other
/// inputs then filled with zeros. When both fail, the error of the layout that read further.
/// With `f64` the float values are read as doubles (readCsv).
rt::Dataset readDataFor(const Model &m, const ir::Function &f, const std::string &path, bool f64);

/// Refuses, before anything is allocated, a kernel whose buffers for batches of `rows` rows
/// (params, optimiser states and, with `stateCopy` (train), a copy of them for the NaN trap,
/// inputs, results, work memory) need more than --max-memory or the machine's physical memory:
/// `MODEL: error: ... needs N bytes ...`.
void checkMemory(const rt::Kernel &k, int64_t rows, const Options &o, bool stateCopy);
/// The same for kernels that run side by side (data-parallel training's gradient and update),
/// their params held once.
void checkMemory(const std::vector<const rt::Kernel *> &kernels, int64_t rows, const Options &o, bool stateCopy);

/// The line for std::bad_alloc while running MODEL (plain and distributed training alike);
/// `prefix` goes before the message (a rank's `rank 1 of 2: `).
std::string outOfMemoryLine(const std::string &modelPath, std::string_view prefix = "");

/// Writes `bytes` to standard output (`compile -o -`, `--header -`, `grad --out -`). A write
/// that fails there (standard output closed, a full disk behind it) throws the error every
/// command gives for its standard output, `gradc: error: cannot write standard output: ...`,
/// not one about a file /dev/stdout.
void writeStandardOutput(std::string_view bytes);

/// `--max-memory`: a whole number of bytes with an optional K, M or G suffix (powers of 1024).
uint64_t parseBytes(const std::string &text);

/// The NaN trap's explanation (CmdTrain.cpp): runs the program `f` of the kernel that `call`
/// is bound to (the fused step, or the gradient program of data-parallel training) in the
/// reference interpreter on the arguments `call` holds, and throws a UserError at the first
/// value that is not finite, at its model line: `LINE:COL: error: log of 0 gives -inf in
/// 'log(p)'WHERE`, and when the value is one of a row of the batch (its first dim is the
/// batch dim) `, in the row read from FILE:LINE` (rowPlace, empty when not known). Returns when
/// every value is finite.
void explainNonFinite(const ir::Function &f, const SourceManager &sm, const std::string &modelPath,
                      bool f64, const rt::Call &call, const std::string &where,
                      const std::function<std::string(int64_t)> &rowPlace);

/// The names of the model's inputs, `x, y`.
std::string inputNames(const Model &m);
/// A flag error about a model with or without inputs: `MODEL: error: ...`.
[[noreturn]] void needData(const Model &m, const std::string &modelPath, const char *command);
/// `MODEL: warning: the model has no inputs; FLAGS not used`: data given to a model without
/// inputs (rosenbrock) is ignored by every command, with this warning.
void warnNoInputs(const std::string &modelPath, const char *flags);

/// On a terminal, what a command is doing while it takes seconds (train reading a large CSV
/// file or compiling a deep model, gradcheck perturbing a large param's elements): one status
/// line on stderr, redrawn by update() at most 10 times a second and erased when the Status
/// ends (also by an error, before its message). Off the terminal it prints nothing.
class Status {
public:
  explicit Status(const std::string &what);
  ~Status();
  Status(const Status &) = delete;
  Status &operator=(const Status &) = delete;
  void update(const std::string &what);

private:
  static std::string line(const std::string &what);
  bool on_;
  std::chrono::steady_clock::time_point last_{};
};

/// The seed of a training run's data order: a run resumed from a checkpoint keeps the one it
/// continues, and warns (when `warn`) that another --seed given is not used.
uint64_t trainSeed(const rt::TrainState &st, const Options &o, bool warn);

}  // namespace gradc::driver
