#include "driver/Pipeline.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <thread>
#include <utility>
#include <vector>

#include "autodiff/ReverseMode.h"
#include "autodiff/Step.h"
#include "codegen/Codegen.h"
#include "frontend/Frontend.h"
#include "interp/Interpreter.h"
#include "passes/Simplify.h"

namespace gradc::driver {

Model applyFlags(Model m, const Options &o) {
  if (!o.optimizer.empty() && o.optimizer != m.optimizer.kind) {
    const auto &defaults = optimizerDefaults(o.optimizer);
    if (defaults.empty()) {
      std::string known;
      for (const std::string &n : optimizerNames()) known += (known.empty() ? "" : ", ") + n;
      throw UserError(std::string("--optimizer"),
                      fmt::format("unknown optimiser '{}' (known: {})", o.optimizer, known));
    }
    m.optimizer.kind = o.optimizer;
    m.optimizer.args = defaults;
    m.optimizer.fromFlag = true;
  }
  return m;
}

// The model's settings and initial values that a float32 program takes as floats and that
// lie beyond float's range: each with its place and message.
static std::vector<std::pair<Loc, std::string>> beyondFloat32(const Model &m, const Options &o) {
  std::vector<std::pair<Loc, std::string>> out;
  auto tooLarge = [](double v) { return std::isinf(static_cast<float>(v)); };
  const float most = std::numeric_limits<float>::max();
  for (const auto &[name, v] : m.optimizer.args) {
    if (!tooLarge(v) || (name == "lr" && o.lr)) continue;
    out.emplace_back(m.optimizer.loc,
                     name == "lr" ? fmt::format("the learning rate {} is too large for float32 (at most {}): use a "
                                                "smaller one or --dtype f64", v, most)
                                  : fmt::format("the optimiser's {} {} is too large for float32 (at most {}): use a "
                                                "smaller one or --dtype f64", name, v, most));
  }
  for (const ParamInfo &p : m.params)
    for (double v : p.initArgs)
      if (tooLarge(v))
        out.emplace_back(p.loc, fmt::format("the {} {} of param {} is too large for float32 (at most {}): use a "
                                            "smaller one or --dtype f64",
                                            p.init == InitKind::Const ? "value" : "initialiser argument", v, p.name,
                                            most));
  return out;
}

Model loadModelFor(SourceManager &sm, const Options &o, Float32Use use) {
  Model m = applyFlags(loadModel(sm, o.model), o);
  if (o.dtype == "f64") return m;
  for (const auto &[loc, msg] : beyondFloat32(m, o)) {
    if (use == Float32Use::Step) throw UserError(loc, msg);
    warn(sm, loc, msg);
  }
  return m;
}

static ir::Function named(ir::Function f, const Model &m, const char *suffix) {
  f.name = m.name + "_" + suffix;
  return f;
}

ir::Function rawGradient(const Model &m) {
  return named(autodiff::differentiate(m.forward), m, "grad");
}

ir::Function optimizedGradient(const Model &m) {
  return passes::simplify(rawGradient(m));
}

ir::Function stepProgram(const Model &m) {
  return named(passes::simplify(autodiff::buildStep(m, optimizedGradient(m))), m, "step");
}

ir::Function updateProgram(const Model &m) {
  return named(passes::simplify(autodiff::buildUpdate(m, optimizedGradient(m))), m, "update");
}

// The forward function keeping only the results of the given kinds.
static ir::Function forwardWith(const Model &m, ir::ResultKind a, ir::ResultKind b) {
  ir::Function f = m.forward;
  std::erase_if(f.results, [&](const ir::Result &r) { return r.kind != a && r.kind != b; });
  return f;
}

ir::Function buildProgram(const Model &model, Program p, const Options &o) {
  return buildProgram(applyFlags(model, o), p);
}

ir::Function buildProgram(const Model &m, Program p) {
  switch (p) {
  case Program::Eval:
    return named(passes::simplify(forwardWith(m, ir::ResultKind::Loss, ir::ResultKind::Metric)),
                 m, "eval");
  case Program::Predict:
    return named(passes::simplify(forwardWith(m, ir::ResultKind::Output, ir::ResultKind::Output)),
                 m, "predict");
  case Program::Grad:
    return named(optimizedGradient(m), m, "grad");
  case Program::Step:
    return stepProgram(m);
  case Program::Update:
    return updateProgram(m);
  }
  internalError("unknown program");
}

static codegen::CodegenOptions codegenOptions(const Options &o) {
  codegen::CodegenOptions c;
  c.f64 = o.dtype == "f64";
  c.threads = o.threads > 0 ? o.threads : std::max(1u, std::thread::hardware_concurrency());
  return c;
}

rt::Kernel compileProgram(const ir::Function &f, const Options &o, double *compileMs, bool checkNumerics) {
  const char *backend = std::getenv("GRADC_BACKEND");
  if (backend && std::strcmp(backend, "interp") == 0) {
    if (compileMs) *compileMs = 0;
    return interp::interpreterKernel(f, o.dtype == "f64");
  }
  codegen::CompileStats stats;
  codegen::CodegenOptions co = codegenOptions(o);
  co.checkNumerics = checkNumerics;
  rt::Kernel k = codegen::jitCompile(f, co, &stats);
  if (compileMs) *compileMs = stats.compileMs;
  return k;
}

std::string compiledText(const ir::Function &f, const Options &o, bool assembly) {
  return assembly ? codegen::emitAsm(f, codegenOptions(o)) : codegen::emitLLVM(f, codegenOptions(o));
}

std::string loopPlanText(const ir::Function &f, const Options &o, const SourceManager &sm) {
  return codegen::printLoopPlan(f, codegenOptions(o), &sm);
}

}  // namespace gradc::driver
