// The pipeline as a straight line, shared by every command:
//
//   Model m = loadModel(...)                   frontend/   (inspect ast, ir)
//   Function g = differentiate(m.forward)      autodiff/   (inspect grad)
//   Function o = simplify(g)                   passes/     (inspect opt)
//   Function s = simplify(buildStep(m, o))     autodiff/   (inspect step)
//   Function u = simplify(buildUpdate(m, o))   autodiff/   (distributed training only)
//   rt::Kernel k = jitCompile(s)               codegen/    (inspect llvm, asm)
//
// Each stage's output is the very object the next stage consumes and `inspect` prints.
#pragma once

#include <string>

#include "driver/Commands.h"
#include "ir/Model.h"
#include "runtime/Kernel.h"

namespace gradc::driver {

/// The model with the flags that change the program applied: `--optimizer X` keeps the
/// model's settings when X is its optimiser and takes X's defaults otherwise (SPEC §5).
/// (`--lr` is a run-time argument of the step and changes nothing here.)
Model applyFlags(Model m, const Options &o);
/// A float32 run's settings must be floats: an optimiser setting of the model (its `lr` when
/// no --lr replaces it; main checks --lr) beyond float's range is an error at the optimiser,
/// a param's value or initialiser argument one at the param. (A number literal that large
/// is an error of the model; a constant expression, folded in double, may reach it.)
void checkFloat32Range(const Model &m, const Options &o, bool f64);

/// The IR after each stage of the gradient pipeline.
ir::Function rawGradient(const Model &m);          // inspect --stage grad
ir::Function optimizedGradient(const Model &m);    // inspect --stage opt
ir::Function stepProgram(const Model &m);          // inspect --stage step
ir::Function updateProgram(const Model &m);        // the step's update alone

/// The function a command runs.
enum class Program {
  Eval,     // inputs, params -> loss, metrics
  Predict,  // inputs, params -> outputs
  Grad,     // inputs, params -> loss, metrics, grad per param
  Step,     // the fused forward + backward + update
  Update,   // params, states, lr, t, grad.NAME per param -> updated params and states
};
/// The program `p` of the model with the flags of `o` applied (applyFlags).
ir::Function buildProgram(const Model &m, Program p, const Options &o);
/// The program `p` of the model as written (no flags).
ir::Function buildProgram(const Model &m, Program p);

/// Compiles a program with the JIT (`--dtype`, `--threads` from `o`); with the environment
/// variable GRADC_BACKEND=interp the reference interpreter runs it instead, through the
/// same calling convention (for differential debugging). `compileMs` gets the JIT time.
/// `checkNumerics`: the JIT's check mode (rt::Kernel::numericsFlag; the interpreter has none).
rt::Kernel compileProgram(const ir::Function &f, const Options &o, double *compileMs = nullptr,
                          bool checkNumerics = false);

/// `inspect --stage llvm|asm`: the compiled step as optimised LLVM IR or assembly.
std::string compiledText(const ir::Function &f, const Options &o, bool assembly);
/// The loop plan of the step as codegen will build it (inspect --stage loops).
std::string loopPlanText(const ir::Function &f, const Options &o, const SourceManager &sm);

}  // namespace gradc::driver
