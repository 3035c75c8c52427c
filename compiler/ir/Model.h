// Model: everything the front end learned from a model file, beside the forward IR.
//
// The forward Function computes, from the inputs and params, the results `loss` (kind
// Loss), each metric (Metric) and each output (Output). The rest of the model file that is
// not a computation lives here: the params' initialisers, the inputs' types, the optimiser.
// Later stages (autodiff, the step program, the runtime) read the model from this struct.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "ir/IR.h"

namespace gradc {

enum class InitKind { Zeros, Ones, Const, Normal, Uniform, Glorot, He };

struct ParamInfo {
  std::string name;
  ir::Shape shape;             // static dims only
  InitKind init = InitKind::Zeros;
  std::vector<double> initArgs;  // Const: {v}; Normal: {mean, std}; Uniform: {lo, hi}
  Loc loc;
  // False when no differentiated path leads from the param to the loss (it is read only by
  // metrics and outputs, or through stop_gradient, comparisons, argmax): its gradient is
  // zero and the optimiser leaves it and its state as they are, as torch.optim skips a
  // param whose .grad is None (no weight decay, no momentum).
  bool reachesLoss = true;
};

struct InputInfo {
  std::string name;
  ir::DType dtype = ir::DType::F32;
  ir::Shape shape;      // the first dim is the batch dim
  int64_t classes = 0;  // int inputs: the class count that cross_entropy/onehot give it (0: unknown)
  Loc loc;
};

struct OptimizerInfo {
  std::string kind = "sgd";             // sgd adam adamw rmsprop adagrad
  std::map<std::string, double> args;   // every argument, defaults filled in (docs/language.md)
  Loc loc;
  bool fromFlag = false;                // --optimizer replaced the model's own by another kind
};

struct Model {
  std::string name;
  std::vector<InputInfo> inputs;   // declaration order = CSV column order
  std::vector<ParamInfo> params;   // declaration order = state layout order
  OptimizerInfo optimizer;
  ir::Function forward;            // results: loss, metrics, outputs
  std::map<std::string, Loc> outputLocs;  // each output's name, where the model writes it
  std::map<std::string, Loc> outputExprLocs;  // the start of each output's expression
  int sourceFile = -1;             // SourceManager id of the model file
};

/// The optimiser's defaults (docs/language.md, "Optimisers"), by optimiser name; empty when the
/// name is unknown.
const std::map<std::string, double> &optimizerDefaults(const std::string &kind);
/// The names of the optimisers, in the documented order (docs/language.md, "Optimisers").
const std::vector<std::string> &optimizerNames();
/// The order of positional optimiser arguments (as listed in docs/language.md, "Optimisers").
const std::vector<std::string> &optimizerArgOrder(const std::string &kind);

}  // namespace gradc
