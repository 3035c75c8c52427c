// The pipeline as a straight line, shared by every command:
//
//   Model m = loadModelFor(...)                frontend/   (inspect ast, ir)
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

/// The model with the flags that change the program applied: `--optimizer X` keeps the model's
/// settings when X is its optimiser and takes X's defaults otherwise (docs/language.md,
/// "Optimisers"). (`--lr` is a run-time argument of the step and changes nothing here.)
Model applyFlags(Model m, const Options &o);
/// What a command does with the model's settings in its float type (loadModelFor).
enum class Float32Use {
  Step,   // compiles a step that takes them (train, bench, compile, inspect --stage loops|llvm|asm)
  Other,  // does not take them as float32 (check; eval, predict and grad read the params from
          // a file and take no optimiser; gradcheck computes in float64)
};
/// Every command's model: loadModel, then applyFlags. A float32 run's settings must be
/// floats: an optimiser setting of the model (its `lr` when no --lr replaces it; main checks
/// --lr) beyond float's range, or a param's value or initialiser argument, is an error (at
/// the optimiser, at the param) of a command that compiles a step with them unless --dtype
/// is f64, and a warning of the other commands, for which it would be one of `train`. (A
/// number literal that large is an error of the model; a constant expression, folded in
/// double, may reach it.)
Model loadModelFor(SourceManager &sm, const Options &o, Float32Use use);

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
