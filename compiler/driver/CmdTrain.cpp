// `gradc train MODEL [--data F] [--val F] ...` (docs/language.md, "Command line"): reads and
// checks all the data first, JIT-compiles the step (and the eval program for --val),
// initialises or loads the params, and runs the training loop of runtime/Trainer.h. Without
// inputs (a plain function such as rosenbrock) it runs --steps steps (default 1000).
//
// The NaN trap: when a step gives a non-finite value (the loss; with --check-numerics, any
// value the step computes, flagged by the JIT's check mode), the trainer goes back to the
// state before that step and calls explainNonFinite, which runs the step program in the reference
// interpreter value by value on that state and that batch and reports the first value that is
// not finite, at its place in the model, and the data file's line of its row when the value
// is one of a row: `digits.grad:14:9: error: log of 0 gives -inf in 'log(p)' at step 412,
// batch rows 384..415, in the row read from train.csv:1022`.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <iostream>
#include <optional>
#include <string>
#include <utility>
#include <vector>
#include <unistd.h>

#include "driver/GradSupport.h"
#include "driver/Pipeline.h"
#include "driver/RunSupport.h"
#include "interp/Interpreter.h"
#include "runtime/Distributed.h"
#include "runtime/Trainer.h"

namespace gradc::driver {

namespace {

/// The expression that starts at `loc`: a call with its parentheses, or the text up to the
/// end of the enclosing expression.
std::string sourceText(const SourceManager &sm, Loc loc) {
  std::string_view line = sm.lineText(loc.file, loc.line);
  size_t start = static_cast<size_t>(loc.col - 1);
  if (start >= line.size()) return "";
  size_t i = start;
  while (i < line.size() && (std::isalnum(static_cast<unsigned char>(line[i])) || line[i] == '_')) ++i;
  int depth = 0;
  size_t end = i;
  if (i > start && i < line.size() && line[i] == '(') {
    for (end = i; end < line.size(); ++end) {
      if (line[end] == '(') ++depth;
      else if (line[end] == ')' && --depth == 0) return std::string(line.substr(start, end + 1 - start));
    }
    return std::string(line.substr(start));
  }
  for (end = start; end < line.size(); ++end) {
    char c = line[end];
    if (c == '(' || c == '[') ++depth;
    else if ((c == ')' || c == ']') && depth-- == 0) break;
    else if ((c == ',' || c == '#') && depth == 0) break;
    else if (depth == 0 && c == 'w' && end > start && line[end - 1] == ' ' && line.compare(end, 4, "with") == 0 &&
             (end + 4 == line.size() || !(std::isalnum(static_cast<unsigned char>(line[end + 4])) || line[end + 4] == '_')))
      break;  // minimize EXPR with OPTIMIZER(...)
  }
  while (end > start && std::isspace(static_cast<unsigned char>(line[end - 1]))) --end;
  return std::string(line.substr(start, end - start));
}

// A value as the step held it: the shortest text that reads back as the same float (or
// double with --dtype f64).
std::string formatValue(double v, bool f64) {
  return std::isnan(v) ? "nan" : f64 ? fmt::format("{}", v) : fmt::format("{}", static_cast<float>(v));
}

/// What went wrong in node `n`, whose value at index `i` is `bad`.
std::string describe(const ir::Node &n, const std::vector<interp::Tensor> &vals, size_t i, double bad, bool f64) {
  auto number = [f64](double v) { return formatValue(v, f64); };
  auto operand = [&](size_t k) -> std::optional<double> {
    if (k >= n.operands.size()) return std::nullopt;
    const interp::Tensor &t = vals[static_cast<size_t>(n.operands[k])];
    if (t.data.size() == 1) return t.data[0];
    if (i < t.data.size()) return t.data[i];
    return std::nullopt;
  };
  std::optional<double> a = operand(0), b = operand(1);
  if (n.op == ir::Op::Pow && b) *b += n.value;  // the exponent pow used (a gradient's b - 1)
  std::string gives = number(bad);
  switch (n.op) {
  case ir::Op::Log:
    if (a && *a == 0) return "log of 0 gives " + gives;
    if (a && *a < 0) return fmt::format("log of a negative number ({}) gives {}", number(*a), gives);
    break;
  case ir::Op::Sqrt:
    if (a && *a < 0) return fmt::format("sqrt of a negative number ({}) gives {}", number(*a), gives);
    break;
  case ir::Op::Exp:
    if (a) return fmt::format("exp of {} overflows to {}", number(*a), gives);
    break;
  case ir::Op::Div:
    if (a && b && *b == 0) return fmt::format("{} / 0 gives {}", number(*a), gives);
    if (a && b) return fmt::format("{} / {} gives {}", number(*a), number(*b), gives);
    break;
  case ir::Op::Param:
  case ir::Op::State:
    return fmt::format("{} '{}' holds {} before the step", ir::opName(n.op), n.name, gives);
  default:
    break;
  }
  if (a && b) return fmt::format("{} of {} and {} gives {}", ir::opName(n.op), number(*a), number(*b), gives);
  if (a) return fmt::format("{} of {} gives {}", ir::opName(n.op), number(*a), gives);
  return fmt::format("{} gives {}", ir::opName(n.op), gives);
}

}  // namespace

void explainNonFinite(const ir::Function &f, const SourceManager &sm, const std::string &modelPath,
                      bool f64, const rt::Call &call, const std::string &whereInData,
                      const std::function<std::string(int64_t)> &rowPlace) {
  std::vector<int64_t> dims(call.dims(), call.dims() + f.dimNames.size());
  std::vector<ir::ValueId> argIds = f.arguments();
  std::vector<interp::Tensor> args;
  for (size_t a = 0; a < argIds.size(); ++a) {
    const ir::Node &n = f.node(argIds[a]);
    interp::Tensor t;
    for (const ir::Dim &d : n.shape) t.shape.push_back(d.eval(dims));
    size_t count = static_cast<size_t>(ir::numElements(n.shape, dims));
    t.isInt = n.dtype == ir::DType::I32;
    const void *p = call.args()[a];
    t.data.resize(count);
    for (size_t i = 0; i < count; ++i)
      t.data[i] = t.isInt ? static_cast<const int32_t *>(p)[i]
                  : f64   ? static_cast<const double *>(p)[i]
                          : static_cast<const float *>(p)[i];
    args.push_back(std::move(t));
  }
  ir::Function every = f;
  every.results.clear();
  for (ir::ValueId v = 0; v < f.size(); ++v)
    every.results.push_back({fmt::format("v{}", v), v, ir::ResultKind::Output});
  std::vector<interp::Tensor> vals = interp::interpret(every, args, dims, !f64);
  // The batch dim: the first dim of the inputs.
  std::optional<ir::Dim> batch;
  for (ir::ValueId a : argIds)
    if (const ir::Node &n = f.node(a); n.op == ir::Op::Input && !n.shape.empty()) {
      if (!n.shape[0].isStatic()) batch = n.shape[0];
      break;
    }
  for (ir::ValueId v = 0; v < f.size(); ++v) {
    const ir::Node &n = f.node(v);
    const interp::Tensor &t = vals[static_cast<size_t>(v)];
    if (t.isInt || n.op == ir::Op::Const) continue;  // (a rule's -inf constant is no error)
    for (size_t i = 0; i < t.data.size(); ++i) {
      if (std::isfinite(t.data[i])) continue;
      // A value of the batch's rows (its first dim the batch dim) names the data line of the row,
      // when its other rows are finite: a row, not the params or the batch as a whole, is why.
      std::string where = whereInData;
      if (batch && !n.shape.empty() && n.shape[0] == *batch && !t.shape.empty() && t.shape[0] > 1) {
        size_t per = t.data.size() / static_cast<size_t>(t.shape[0]);
        bool finiteRow = false;
        for (size_t r = 0; r < static_cast<size_t>(t.shape[0]) && !finiteRow; ++r)
          finiteRow = std::all_of(t.data.begin() + static_cast<std::ptrdiff_t>(r * per),
                                  t.data.begin() + static_cast<std::ptrdiff_t>((r + 1) * per),
                                  [](double x) { return std::isfinite(x); });
        std::string place = finiteRow ? rowPlace(static_cast<int64_t>(i / per)) : "";
        if (!place.empty()) where += ", in the row read from " + place;
      }
      std::string what = describe(n, vals, i, t.data[i], f64);
      if (!n.loc.valid())
        fileError(modelPath, "{} in value %{} of the step{}", what, v, where);
      std::string text = sourceText(sm, n.loc);
      bool grad = n.srcName.rfind("d.", 0) == 0;
      userError(n.loc, "{} in {}'{}'{}", what, grad ? "the gradient of " : "", text, where);
    }
  }
}

int runTrain(Options &o, SourceManager &sm) {
  if (o.distributed || rt::launchedByMpi()) return runTrainDistributed(o, sm);
  Model m = loadModelFor(sm, o, Float32Use::Step);
  bool f64 = o.dtype == "f64";

  rt::Dataset data, val;
  bool hasData = !m.inputs.empty();
  if (hasData) {
    if (o.data.empty()) needData(m, o.model, "train");
    {
      Status status("reading " + o.data);
      data = readData(m, o.data, f64);
    }
    if (!o.val.empty()) {
      Status status("reading " + o.val);
      val = readData(m, o.val, f64);
    }
  } else {
    std::vector<std::string> unused;
    for (auto [given, flag] : {std::pair{!o.data.empty(), "--data"}, {!o.val.empty(), "--val"},
                               {o.batchSizeGiven, "--batch-size"}, {o.noShuffle, "--no-shuffle"},
                               {o.dropLast, "--drop-last"}})
      if (given) unused.push_back(flag);
    if (!unused.empty())
      warnNoInputs(o.model, fmt::format("{} {}", fmt::join(unused, ", "), unused.size() == 1 ? "is" : "are").c_str());
  }
  if (!hasData && o.epochs)
    std::cerr << oneLine(fmt::format("{}: warning: the model has no inputs, so no epochs; --steps N sets the "
                                     "length of training (default 1000)", o.model));

  ir::Function stepFn = buildProgram(m, Program::Step);
  rt::Kernel step, eval;
  bool hasVal = hasData && !o.val.empty();
  {
    Status status("compiling the training step of " + o.model);
    step = compileProgram(stepFn, o, nullptr, o.checkNumerics);
    if (hasVal) eval = compileProgram(buildProgram(m, Program::Eval), o);
  }
  int64_t rows = hasData ? std::max<int64_t>(1, std::min(o.batchSize, data.rows)) : 1;
  checkMemory(step, rows, o, /*stateCopy=*/true);

  std::string hash = modelHash(sm, m);
  rt::TrainState st(step.sig, f64);
  if (hasVal) st.include(eval.sig);
  st.initParams(paramSpecs(m), o.seed);
  if (m.optimizer.fromFlag) st.optimizer = m.optimizer.kind;
  st.optimizerKind = m.optimizer.kind;
  if (!o.init.empty()) st.load(o.init, hash, /*resume=*/true);

  rt::TrainOptions t;
  // --steps N without --epochs trains N steps, over as many epochs as they take.
  t.epochs = o.epochs.value_or(o.steps ? -1 : 1);
  t.maxSteps = o.steps ? *o.steps : hasData ? -1 : 1000;
  t.batchSize = o.batchSize;
  t.lr = o.lr ? *o.lr : m.optimizer.args.count("lr") ? m.optimizer.args.at("lr") : 0.01;
  // A resumed run keeps the data order of the run it continues.
  t.seed = trainSeed(st, o, /*warn=*/hasData);
  t.shuffle = !o.noShuffle;
  t.dropLast = o.dropLast;
  t.savePath = o.save;
  t.metricsPath = o.metrics;
  t.modelName = m.name;
  t.modelHash = hash;
  t.modelPath = o.model;
  t.checkNumerics = o.checkNumerics;
  t.keepHistory = false;
  t.explainNonFinite = [&](const rt::Call &call, const std::string &where,
                           const std::function<std::string(int64_t)> &rowPlace) {
    explainNonFinite(stepFn, sm, o.model, f64, call, where, rowPlace);
  };
  rt::TrainResult r = rt::train(step, hasVal ? &eval : nullptr, st, hasData ? &data : nullptr,
                                hasVal ? &val : nullptr, t, std::cout);
  return r.status;
}

}  // namespace gradc::driver
