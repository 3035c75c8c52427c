// The calling convention of a Function (runtime/Kernel.h): which buffer each slot of a
// compiled (or interpreted) function holds.
//
// Slots are the function's arguments in IR order (inputs, params, optimiser states,
// hyper-parameters), then its results that are not written in place (loss, metrics,
// outputs, gradients). An updated param (NewParam) or state (NewState) has no slot of its
// own: it is written back into the buffer of the argument with the same name. The JIT and
// the interpreter both build their Kernel's signature with this one function.
#pragma once

#include "ir/IR.h"
#include "runtime/Kernel.h"

namespace gradc::ir {

rt::Signature signatureOf(const Function &f);

/// For a NewParam/NewState result: the argument (Param/State node) it is written back
/// into. kNoValue for any other result.
ValueId writeBackArgument(const Function &f, const Result &r);

}  // namespace gradc::ir
