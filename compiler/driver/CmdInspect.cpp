// `gradc inspect MODEL --stage S [--format text|dot]`: print the program at one stage of the
// pipeline. One case per stage, in pipeline order; each prints the very object that the
// next stage consumes.
#include <iostream>

#include "driver/Commands.h"
#include "driver/Pipeline.h"
#include "frontend/AST.h"
#include "frontend/Frontend.h"
#include "ir/Printer.h"

namespace gradc::driver {

namespace {
// The stages of `inspect --stage` (docs/language.md, "Command line") in pipeline order; `loops`
// is the loop plan of the step.
enum class Stage { AST, IR, Grad, Opt, Step, Loops, LLVM, Asm };

Stage parseStage(const std::string &s) {
  if (s == "ast") return Stage::AST;
  if (s == "ir") return Stage::IR;
  if (s == "grad") return Stage::Grad;
  if (s == "opt") return Stage::Opt;
  if (s == "step") return Stage::Step;
  if (s == "loops") return Stage::Loops;
  if (s == "llvm") return Stage::LLVM;
  if (s == "asm") return Stage::Asm;
  internalError("unknown stage {}", s);  // main.cpp accepts only the names above
}
}  // namespace

int runInspect(Options &o, SourceManager &sm) {
  bool dot = o.format == "dot";
  auto printIR = [&](const ir::Function &f) {
    std::cout << (dot ? ir::printDot(f, &sm) : ir::printFunction(f, &sm));
    return 0;
  };
  Stage stage = parseStage(o.stage);
  if (stage == Stage::AST) {
    std::unique_ptr<ModuleAST> ast = parseModelFile(sm, o.model);
    std::cout << printAST(*ast, sm, dot);
    return 0;
  }
  // The loop plan, LLVM IR and assembly are the step compiled in --dtype, as `compile` makes it.
  bool compiled = stage == Stage::Loops || stage == Stage::LLVM || stage == Stage::Asm;
  Model m = loadModelFor(sm, o, compiled ? Float32Use::Step : Float32Use::Other);
  switch (stage) {
  case Stage::AST: break;
  case Stage::IR: return printIR(m.forward);
  case Stage::Grad: return printIR(rawGradient(m));
  case Stage::Opt: return printIR(optimizedGradient(m));
  case Stage::Step: return printIR(stepProgram(m));
  case Stage::Loops:
    std::cout << loopPlanText(stepProgram(m), o, sm);
    return 0;
  case Stage::LLVM:
  case Stage::Asm:
    std::cout << compiledText(stepProgram(m), o, stage == Stage::Asm);
    return 0;
  }
  return 0;
}

}  // namespace gradc::driver
