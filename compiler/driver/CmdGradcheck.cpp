// `gradc gradcheck MODEL [--weights W] [--data F]` (docs/language.md, "Command line"): compares
// the compiled gradient program with central finite differences of the loss, both in float64.
//
// For each param, up to kMaxChecked of its elements (all of them for small params, else a
// random sample) are perturbed by ±h, h = 1e-5 * max(1, |w|), and
//   fd = (loss(w + h) - loss(w - h)) / 2h
// is compared with the gradient g by |fd - g| / max(|fd|, |g|, 1e-3): a relative error,
// which for gradients below 1e-3 becomes an absolute error scaled by 1e3 (finite
// differences cannot resolve relative errors of tiny gradients). When the error is above
// the tolerance the element is measured again with h ten times smaller and the smaller
// error counts: with many rows, one of them may sit within h of a kink (relu at 0), which
// bends the difference quotient but not the gradient. A wrong gradient is wrong at both
// steps. Weights come from the
// initialisers (--seed) unless --weights is given; without --data the batch is
// kRandomRows rows of random inputs. Exit status 1 when a param's worst error is above
// kTolerance. A loss that is not finite at the weights is an error of its own; a gradient or a
// difference quotient that is not finite is named, by its element, in the error.
#include <algorithm>
#include <cmath>
#include <iostream>
#include <cstdio>
#include <numeric>

#include "driver/GradSupport.h"
#include "driver/Pipeline.h"
#include "driver/RunSupport.h"
#include "runtime/Init.h"

namespace gradc::driver {

namespace {

constexpr int64_t kRandomRows = 4;
constexpr size_t kMaxChecked = 64;
constexpr double kTolerance = 1e-5;
constexpr double kStep = 1e-5;
constexpr double kFloor = 1e-3;
constexpr uint64_t kSampleStream = uint64_t(1) << 42;

// The elements of a param to check: all, or kMaxChecked of them drawn without repetition.
std::vector<size_t> elementsToCheck(size_t n, uint64_t seed, size_t paramIndex) {
  std::vector<size_t> idx(n);
  std::iota(idx.begin(), idx.end(), size_t{0});
  if (n <= kMaxChecked) return idx;
  rt::Rng rng(seed, kSampleStream + paramIndex);
  for (size_t i = 0; i < kMaxChecked; ++i) std::swap(idx[i], idx[i + rng.below(n - i)]);
  idx.resize(kMaxChecked);
  std::sort(idx.begin(), idx.end());
  return idx;
}

// Whether a stop_gradient node is one the model wrote, not one inside a built-in's lowering
// (bce's, which keeps PyTorch's gradient and is the derivative wherever p(1-p) >= 1e-12):
// the source at its place is `stop_gradient(`.
bool writtenStop(Loc loc, const SourceManager &sm) {
  if (!loc.valid()) return false;
  std::string_view line = sm.lineText(loc.file, loc.line);
  size_t col = static_cast<size_t>(loc.col) - 1;  // the code before a column is ASCII
  return col < line.size() && line.substr(col).rfind("stop_gradient", 0) == 0;
}

// The first stop_gradient the model wrote on a path from `param` to the loss, or kNoValue.
// Finite differences see through it; the gradient, by its definition, does not.
ir::ValueId stopOnPath(const ir::Function &f, const std::string &param, const SourceManager &sm) {
  ir::ValueId p = f.findArgument(ir::Op::Param, param), loss = f.findResult(ir::ResultKind::Loss);
  if (p == ir::kNoValue || loss == ir::kNoValue) return ir::kNoValue;
  std::vector<bool> fromParam(f.nodes.size()), toLoss(f.nodes.size());
  fromParam[p] = true;
  for (ir::ValueId v = p + 1; v < f.size(); ++v)
    for (ir::ValueId u : f.node(v).operands) fromParam[v] = fromParam[v] || fromParam[u];
  toLoss[loss] = true;
  for (ir::ValueId v = loss; v >= 0; --v)
    if (toLoss[v])
      for (ir::ValueId u : f.node(v).operands) toLoss[u] = true;
  for (ir::ValueId v = 0; v < f.size(); ++v)
    if (f.node(v).op == ir::Op::StopGradient && fromParam[v] && toLoss[v] && writtenStop(f.node(v).loc, sm))
      return v;
  return ir::kNoValue;
}

// An element of a param as the model indexes it: `W[1, 0]`, or `w` for a scalar.
std::string elementName(const ParamInfo &p, size_t flat) {
  if (p.shape.empty()) return p.name;
  std::vector<int64_t> index(p.shape.size());
  for (size_t d = p.shape.size(); d-- > 0;) {
    int64_t n = p.shape[d].factor;
    index[d] = static_cast<int64_t>(flat % static_cast<size_t>(n));
    flat /= static_cast<size_t>(n);
  }
  return fmt::format("{}[{}]", p.name, fmt::join(index, ", "));
}

std::string number(double v) { return std::isnan(v) ? "nan" : fmt::format("{:g}", v); }

}  // namespace

int runGradcheck(Options &o, SourceManager &sm) {
  Model m = loadModelFor(sm, o, Float32Use::Other);
  Weights w = o.weights.empty() ? initialWeights(m, o.seed) : readWeights(m, o.weights, modelHash(sm, m));
  if (!o.data.empty() && m.inputs.empty()) warnNoInputs(o.model, "--data is");
  // Random data has kRandomRows rows, or the batch size the model fixes.
  int64_t randomRows = fixedRows(m) >= 0 ? fixedRows(m) : kRandomRows;
  rt::Dataset data = o.data.empty() || m.inputs.empty() ? randomData(m, randomRows, o.seed)
                                                        : readData(m, o.data);
  if (!m.inputs.empty()) checkOneBatch(m, data, "gradcheck");

  // With no params there is no gradient to check: no table, and no "every gradient matches".
  if (m.params.empty()) {
    std::cerr << oneLine(fmt::format("{}: warning: the model has no params, so there is no gradient to check", o.model));
    return 0;
  }

  KernelCall grad(gradientKernel(gradientProgram(m, o), o, /*f64=*/true), m, data);
  grad.setParams(w);
  grad.run();
  KernelCall forward(gradientKernel(lossProgram(m), o, /*f64=*/true), m, data);
  forward.setParams(w);
  auto loss = [&] {
    forward.run();
    return forward.result(rt::SlotKind::Loss, "loss").at(0);
  };
  // The loss with one element of a param set to v (the others as in w).
  auto lossWith = [&](const std::string &name, size_t i, double v) {
    forward.setParam(name, i, v);
    double l = loss();
    forward.setParam(name, i, w.at(name)[i]);
    return l;
  };

  // Finite differences of a loss that is not finite are no derivative: say so, not that every
  // gradient differs from them.
  if (double at = loss(); !std::isfinite(at)) {
    std::string from =
        o.weights.empty() ? fmt::format("from the initialisers with --seed {}", o.seed) : "--weights " + o.weights;
    for (const ParamInfo &p : m.params) {  // a weight that is itself not finite is the reason
      const std::vector<double> &v = w.at(p.name);
      auto bad = std::find_if(v.begin(), v.end(), [](double x) { return !std::isfinite(x); });
      if (bad == v.end()) continue;
      from += fmt::format(", where {} is {}", elementName(p, static_cast<size_t>(bad - v.begin())), number(*bad));
      break;
    }
    // Random data (floats in [0, 1)) can be the reason as well: `log(x - 2)`.
    std::string onData = m.inputs.empty()  ? ""
                         : o.data.empty() ? fmt::format(" on random data (--seed {})", o.seed)
                                          : " on --data " + o.data;
    fileError(o.model, "the loss is {} at the weights checked ({}){}, so finite differences cannot check the "
              "gradients: give {} where it is finite", number(at), from, onData,
              m.inputs.empty() ? "weights" : "weights and data");
  }

  // Columns as wide as their longest entry, so that a long param name keeps the table aligned.
  size_t nameWidth = 16, countWidth = 9;
  for (const ParamInfo &p : m.params) {
    nameWidth = std::max(nameWidth, p.name.size());
    countWidth = std::max(countWidth, fmt::formatted_size("{}", w.at(p.name).size()));
  }
  fmt::print("{:<{}} {:>{}} {:>8}  {}\n", "param", nameWidth, "elements", countWidth, "checked", "worst relative error");
  std::vector<std::string> failed;
  std::string notFinite;  // the first element whose gradient or difference quotient is not finite
  for (size_t pi = 0; pi < m.params.size(); ++pi) {
    const std::string &name = m.params[pi].name;
    std::vector<double> g = grad.result(rt::SlotKind::Grad, name);
    std::vector<size_t> check = elementsToCheck(g.size(), o.seed, pi);
    double worst = 0;
    std::string why;  // the last step's value that is not finite, if any
    // The relative error of g[i] against central differences with step h.
    auto errorAt = [&](size_t i, double h) {
      double w0 = w.at(name)[i];
      double up = lossWith(name, i, w0 + h);
      double down = lossWith(name, i, w0 - h);
      double fd = (up - down) / (2 * h);
      why.clear();
      if (!std::isfinite(g[i])) {
        why = fmt::format("the gradient of {} is {}", elementName(m.params[pi], i), number(g[i]));
      } else if (!std::isfinite(fd)) {
        bool above = !std::isfinite(up);
        why = fmt::format("the loss is {} at {} = {:g}, a step of {:g} from the weight checked",
                          number(above ? up : down), elementName(m.params[pi], i), above ? w0 + h : w0 - h, h);
      }
      return std::fabs(fd - g[i]) / std::max({std::fabs(fd), std::fabs(g[i]), kFloor});
    };
    {
      // A large param takes seconds (each element two runs of the loss): say which, on a
      // terminal; the status line is erased before the param's row.
      Status status("checking " + name);
      for (size_t k = 0; k < check.size(); ++k) {
        size_t i = check[k];
        status.update(fmt::format("checking {}: element {} of {}", name, k + 1, check.size()));
        double h = kStep * std::max(1.0, std::fabs(w.at(name)[i]));
        double err = errorAt(i, h);
        if (!(err <= kTolerance)) err = std::min(err, errorAt(i, h / 10));
        if (!(err <= kTolerance) && notFinite.empty()) notFinite = why;
        if (!(err <= worst)) worst = err;
        if (std::isnan(worst)) break;
      }
    }
    fmt::print("{:<{}} {:>{}} {:>8}  {:.3g}\n", name, nameWidth, g.size(), countWidth, check.size(), worst);
    std::fflush(stdout);  // a row as soon as its param is done, into a pipe too
    if (!(worst <= kTolerance)) failed.push_back(name);
  }
  if (!failed.empty()) {
    for (const std::string &n : failed)
      if (ir::ValueId v = stopOnPath(m.forward, n, sm); v != ir::kNoValue)
        warn(sm, m.forward.node(v).loc,
             fmt::format("{} reaches the loss through stop_gradient, which finite differences see "
                         "through and the gradient does not", n));
    std::string names;
    for (const std::string &n : failed) names += (names.empty() ? "" : ", ") + n;
    std::cerr << oneLine(fmt::format("{}: error: the gradient of {} differs from finite differences (tolerance {:g}){}",
                                     o.model, names, kTolerance, notFinite.empty() ? "" : ": " + notFinite));
    return 1;
  }
  fmt::print("gradcheck passed: every gradient matches central differences within {:g}\n", kTolerance);
  return 0;
}

}  // namespace gradc::driver
