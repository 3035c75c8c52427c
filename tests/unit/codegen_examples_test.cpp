// The example models through the real pipeline (front end, reverse mode, simplifier, step
// with each optimiser), JIT-compiled in float32 and float64 and compared with the
// interpreter slot by slot: loss, metrics, outputs, updated params and optimiser states.
#include <doctest/doctest.h>

#include <filesystem>

#include "autodiff/ReverseMode.h"
#include "autodiff/Step.h"
#include "codegen/Codegen.h"
#include "frontend/Frontend.h"
#include "interp/Interpreter.h"
#include "passes/Simplify.h"

using namespace gradc;

namespace gradc::codegen::testing {
void checkAgainstInterpreterFor(const ir::Function &f, bool f64, double lo, double hi, int labels,
                                const std::vector<int64_t> &batches);
}

namespace {

std::filesystem::path examplesDir() {
  return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() / "examples";
}

int labelCount(const Model &m) {
  int classes = 1 << 20;
  for (const InputInfo &in : m.inputs)
    if (in.dtype == ir::DType::I32 && in.classes > 0) classes = std::min(classes, static_cast<int>(in.classes));
  return classes == 1 << 20 ? 2 : classes;
}

ir::Function stepOf(const Model &m) {
  return passes::simplify(autodiff::buildStep(m, passes::simplify(autodiff::differentiate(m.forward))));
}

}  // namespace

TEST_CASE("codegen: every example's step and forward agree with the interpreter") {
  int seen = 0;
  for (const auto &entry : std::filesystem::directory_iterator(examplesDir())) {
    if (entry.path().extension() != ".grad") continue;
    ++seen;
    SourceManager sm;
    Model m = loadModel(sm, entry.path().string());
    CAPTURE(entry.path().filename().string());
    int labels = labelCount(m);
    bool batched = !m.forward.dimNames.empty();
    std::vector<int64_t> batches = batched ? std::vector<int64_t>{1, 7, 32} : std::vector<int64_t>{1};
    codegen::testing::checkAgainstInterpreterFor(m.forward, false, -1, 1, labels, batches);
    codegen::testing::checkAgainstInterpreterFor(stepOf(m), false, -1, 1, labels, batches);
    codegen::testing::checkAgainstInterpreterFor(stepOf(m), true, -1, 1, labels, batches);
  }
  CHECK(seen >= 5);
}

TEST_CASE("codegen: every optimiser's step agrees with the interpreter") {
  SourceManager sm;
  Model base = loadModel(sm, (examplesDir() / "iris.grad").string());
  struct Variant {
    const char *kind;
    std::map<std::string, double> args;
  };
  std::vector<Variant> variants = {
      {"sgd", {}},
      {"sgd", {{"momentum", 0.9}, {"weight_decay", 0.01}}},
      {"sgd", {{"momentum", 0.9}, {"nesterov", 1}, {"dampening", 0}}},
      {"adam", {{"weight_decay", 0.01}}},
      {"adamw", {}},
      {"rmsprop", {{"momentum", 0.5}}},
      {"adagrad", {}},
  };
  for (const Variant &v : variants) {
    Model m = base;
    m.optimizer.kind = v.kind;
    m.optimizer.args = optimizerDefaults(v.kind);
    for (const auto &[k, x] : v.args) m.optimizer.args[k] = x;
    CAPTURE(v.kind);
    codegen::testing::checkAgainstInterpreterFor(stepOf(m), false, -1, 1, 3, {1, 33});
    codegen::testing::checkAgainstInterpreterFor(stepOf(m), true, -1, 1, 3, {7});
  }
}

TEST_CASE("codegen: layers of the same shapes run one merged function and agree with the interpreter") {
  // Three hidden layers of 16 x 16: their forward, backward and update loop nests are merged
  // into one function each (tests/golden/llvm/shared_steps.grad checks the merge itself).
  SourceManager sm;
  Model base = loadModel(sm, (examplesDir().parent_path() / "tests" / "golden" / "llvm" / "shared_steps.grad").string());
  for (const char *kind : {"sgd", "adam"}) {
    Model m = base;
    m.optimizer.kind = kind;
    m.optimizer.args = optimizerDefaults(kind);
    CAPTURE(kind);
    codegen::testing::checkAgainstInterpreterFor(stepOf(m), false, -1, 1, 3, {1, 7, 32});
    codegen::testing::checkAgainstInterpreterFor(stepOf(m), true, -1, 1, 3, {7});
  }
}
