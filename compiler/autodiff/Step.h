// The fused step program: forward + backward + optimiser update as one IR function.
//
// buildStep copies the gradient function and lowers the model's optimiser into IR with
// PyTorch 1.13's update rules (torch.optim, single-tensor path). The learning rate and the
// 1-based step count are run-time arguments (`hyper lr`, `hyper t`); the other settings are
// constants. Optimiser state (`state W1.m`, ...) starts at zero and is updated in place.
//
// buildUpdate makes the same update as a function of its own, whose gradients are
// arguments (`input grad.W1`, ...): data-parallel training runs the gradient function on
// each process's rows, averages the gradients across processes, then runs the update.
// Both are made by one optimiser lowering, so they cannot differ.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "ir/IR.h"
#include "ir/Model.h"

namespace gradc::autodiff {

/// The step function of model `m`. `grad` has arguments inputs and params and results
/// `loss`, metrics and one `grad NAME` per param. The step's arguments are the inputs,
/// params, states (in optimizerStates order), `hyper lr`, `hyper t`; its results are
/// `loss`, the metrics, `param NAME` (NewParam) per param and `state NAME` (NewState) per
/// state.
ir::Function buildStep(const Model &m, const ir::Function &grad);

/// The update alone. Its arguments are the params, the states (optimizerStates order),
/// `hyper lr`, `hyper t`, and one `input grad.NAME` per param (gradInputName, the param's
/// shape, in declaration order); its results are `param NAME` and `state NAME` as in
/// buildStep. `grad` is the gradient function (for the params' and gradients' shapes).
ir::Function buildUpdate(const Model &m, const ir::Function &grad);

/// The name of the update's input that holds the gradient of `param`: `grad.PARAM`.
std::string gradInputName(const std::string &param);

/// The optimiser states of the model's optimiser, param by param (e.g. W1.m, W1.v, b1.m,
/// ...), each with its param's shape. All start at zero.
std::vector<std::pair<std::string, ir::Shape>> optimizerStates(const Model &m);

}  // namespace gradc::autodiff
