// The pipeline as a straight line, shared by every command:
//
//   Model m = loadModel(...)                  frontend/   (inspect ast, ir)
//   Function g = differentiate(m.forward)      autodiff/   (inspect grad)
//   Function o = simplify(g)                   passes/     (inspect opt)
//   Function s = buildStep(m, o)               autodiff/   (inspect step)
//   rt::Kernel k = compile(s)                  codegen/ (JIT) or interp/
//
// Each stage's output is the very object the next stage consumes and `inspect` prints.
#pragma once

#include <string>

#include "driver/Commands.h"
#include "ir/Model.h"
#include "runtime/Kernel.h"

namespace gradc::driver {

enum class Stage { AST, IR, Grad, Opt, Step, LLVM, Asm };

/// The function a command runs: forward (eval), predict (outputs only), gradient, step.
enum class Program { Eval, Predict, Grad, Step };

/// The IR of `program` for this model, after every pass up to it. Flags that change the
/// program (--optimizer, --lr is run-time and does not) come from `o`.
ir::Function buildProgram(const Model &m, Program program, const Options &o);

/// Compiles a program with the JIT (or the interpreter when GRADC_BACKEND=interp is set in
/// the environment, for differential debugging).
rt::Kernel compileProgram(const ir::Function &f, const Options &o);

}  // namespace gradc::driver
