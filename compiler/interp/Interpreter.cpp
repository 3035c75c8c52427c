// The reference interpreter: one small function per op, in a table indexed by ir::Op that
// is checked at compile time to cover every op of Ops.def.
#include "interp/Interpreter.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <limits>
#include <memory>

#include "ir/Signature.h"

namespace gradc::interp {

namespace {

using ir::Node;
using ir::Op;
using Shape = std::vector<int64_t>;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

int64_t count(const Shape &shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// The elements of `t` broadcast to `shape` (NumPy rules: align from the right, a size-1
// axis repeats).
std::vector<double> broadcastTo(const Tensor &t, const Shape &shape) {
  GRADC_ASSERT(t.shape.size() <= shape.size(), "cannot broadcast rank {} to rank {}",
               t.shape.size(), shape.size());
  size_t rank = shape.size(), off = rank - t.shape.size();
  std::vector<int64_t> stride(rank, 0);
  int64_t s = 1;
  for (size_t i = t.shape.size(); i-- > 0;) {
    GRADC_ASSERT(t.shape[i] == 1 || t.shape[i] == shape[off + i], "cannot broadcast axis {}", i);
    if (t.shape[i] != 1) stride[off + i] = s;
    s *= t.shape[i];
  }
  std::vector<double> out(static_cast<size_t>(count(shape)));
  std::vector<int64_t> idx(rank, 0);
  int64_t src = 0;
  for (double &o : out) {
    o = t.data[static_cast<size_t>(src)];
    for (size_t a = rank; a-- > 0;) {
      ++idx[a];
      src += stride[a];
      if (idx[a] < shape[a]) break;
      src -= stride[a] * shape[a];
      idx[a] = 0;
    }
  }
  return out;
}

// `shape` with the axes in `axes` set to 1 (a reduction's result with keepdims).
Shape keptShape(const Shape &shape, uint32_t axes) {
  Shape out = shape;
  for (size_t i = 0; i < out.size(); ++i)
    if (axes & (1u << i)) out[i] = 1;
  return out;
}

// For each element of a tensor of `shape`: the index of its group when the axes in `axes`
// are reduced (the flat index into the keepdims result).
std::vector<int64_t> groupOf(const Shape &shape, uint32_t axes) {
  Tensor ids;
  ids.shape = keptShape(shape, axes);
  ids.data.resize(static_cast<size_t>(count(ids.shape)));
  for (size_t i = 0; i < ids.data.size(); ++i) ids.data[i] = static_cast<double>(i);
  std::vector<int64_t> out;
  for (double g : broadcastTo(ids, shape)) out.push_back(static_cast<int64_t>(g));
  return out;
}

int64_t reducedCount(const Shape &shape, uint32_t axes) {
  int64_t n = 1;
  for (size_t i = 0; i < shape.size(); ++i)
    if (axes & (1u << i)) n *= shape[i];
  return n;
}

// One node being evaluated: its operands (for an argument leaf: the bound argument) and
// its result, whose shape is set and data sized before the op's function runs.
struct Eval {
  const Node &node;
  std::vector<const Tensor *> in;
  const std::vector<int64_t> &dims;
  Tensor &out;
  bool f32 = false;  // the values are rounded to float32 after each node
  const Tensor &x(size_t i = 0) const { return *in[i]; }
};
using EvalFn = void (*)(Eval &);

// ---- Leaves

void evalArgument(Eval &e) {
  const Tensor &a = e.x();
  if (a.shape != e.out.shape || a.data.size() != e.out.data.size())
    internalError("interpreter: argument {} has the wrong shape", e.node.name);
  e.out.data = a.data;
}
void evalConst(Eval &e) { std::fill(e.out.data.begin(), e.out.data.end(), e.node.value); }
void evalDimSize(Eval &e) { e.out.data[0] = static_cast<double>(e.node.dim.eval(e.dims)); }

// ---- Element-wise

template <double (*F)(double)>
void evalMap(Eval &e) {
  for (size_t i = 0; i < e.out.data.size(); ++i) e.out.data[i] = F(e.x().data[i]);
}

double neg(double x) { return -x; }
double exp_(double x) { return std::exp(x); }
double log_(double x) { return std::log(x); }
double sqrt_(double x) { return std::sqrt(x); }
double abs_(double x) { return x == 0 ? 0.0 : std::fabs(x); }
double sign(double x) { return x > 0 ? 1.0 : x < 0 ? -1.0 : x == 0 ? 0.0 : x; }
double tanh_(double x) { return std::tanh(x); }
// 0 below -ir::sigmoidZeroBelow, as PyTorch's 1 / (1 + exp(-x)) gives there.
void evalSigmoid(Eval &e) {
  const double zeroBelow = -ir::sigmoidZeroBelow(!e.f32);
  for (size_t i = 0; i < e.out.data.size(); ++i) {
    double x = e.x().data[i];
    double z = std::exp(-std::fabs(x));
    e.out.data[i] = x < zeroBelow ? 0.0 : x >= 0 ? 1 / (1 + z) : z / (1 + z);
  }
}
double relu(double x) { return x > 0 ? x : std::isnan(x) ? x : 0.0; }
double softplus(double x) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }
double sin_(double x) { return std::sin(x); }
double cos_(double x) { return std::cos(x); }
double square(double x) { return x * x; }
double identity(double x) { return x; }

void evalLeakyRelu(Eval &e) {
  double slope = e.node.value;
  for (size_t i = 0; i < e.out.data.size(); ++i) {
    double x = e.x().data[i];
    e.out.data[i] = x > 0 ? x : x < 0 ? slope * x : x == 0 ? 0.0 : x;
  }
}

template <double (*F)(double, double)>
void evalZip(Eval &e) {
  std::vector<double> a = broadcastTo(e.x(0), e.out.shape), b = broadcastTo(e.x(1), e.out.shape);
  for (size_t i = 0; i < e.out.data.size(); ++i) e.out.data[i] = F(a[i], b[i]);
}

double add(double a, double b) { return a + b; }
double sub(double a, double b) { return a - b; }
double mul(double a, double b) { return a * b; }
double div(double a, double b) { return a / b; }
// a^(b + value), the sum in the float type of the run (the exponent of a gradient, b - 1).
void evalPow(Eval &e) {
  std::vector<double> a = broadcastTo(e.x(0), e.out.shape), b = broadcastTo(e.x(1), e.out.shape);
  for (size_t i = 0; i < e.out.data.size(); ++i) {
    double p = b[i] + e.node.value;
    e.out.data[i] = std::pow(a[i], e.f32 ? static_cast<double>(static_cast<float>(p)) : p);
  }
}
double maximum(double a, double b) { return std::isnan(a) || std::isnan(b) ? kNaN : std::max(a, b); }
double minimum(double a, double b) { return std::isnan(a) || std::isnan(b) ? kNaN : std::min(a, b); }
double lt(double a, double b) { return a < b ? 1.0 : 0.0; }
double le(double a, double b) { return a <= b ? 1.0 : 0.0; }
double gt(double a, double b) { return a > b ? 1.0 : 0.0; }
double ge(double a, double b) { return a >= b ? 1.0 : 0.0; }
double eq(double a, double b) { return a == b ? 1.0 : 0.0; }
double ne(double a, double b) { return a != b ? 1.0 : 0.0; }

void evalWhere(Eval &e) {
  std::vector<double> c = broadcastTo(e.x(0), e.out.shape);
  std::vector<double> a = broadcastTo(e.x(1), e.out.shape), b = broadcastTo(e.x(2), e.out.shape);
  for (size_t i = 0; i < e.out.data.size(); ++i) e.out.data[i] = c[i] != 0 ? a[i] : b[i];
}

// ---- Reductions over node.axes; the result's layout is the same with or without keepdims.

void evalSum(Eval &e) {
  std::vector<int64_t> g = groupOf(e.x().shape, e.node.axes);
  for (size_t i = 0; i < g.size(); ++i) e.out.data[static_cast<size_t>(g[i])] += e.x().data[i];
}

void evalMean(Eval &e) {
  evalSum(e);
  double n = static_cast<double>(reducedCount(e.x().shape, e.node.axes));
  for (double &v : e.out.data) v /= n;
}

// max and min propagate NaN, like torch.amax.
void evalMax(Eval &e) {
  std::vector<int64_t> g = groupOf(e.x().shape, e.node.axes);
  std::fill(e.out.data.begin(), e.out.data.end(), -kInf);
  for (size_t i = 0; i < g.size(); ++i) {
    double &m = e.out.data[static_cast<size_t>(g[i])], x = e.x().data[i];
    if (std::isnan(x) || x > m) m = x;
  }
}

void evalMin(Eval &e) {
  std::vector<int64_t> g = groupOf(e.x().shape, e.node.axes);
  std::fill(e.out.data.begin(), e.out.data.end(), kInf);
  for (size_t i = 0; i < g.size(); ++i) {
    double &m = e.out.data[static_cast<size_t>(g[i])], x = e.x().data[i];
    if (std::isnan(x) || x < m) m = x;
  }
}

// logsumexp(x) = m + log(sum(exp(x - m))) with m = max(x); a row whose max is infinite
// (all -inf, or a +inf) gives that max.
void evalLogSumExp(Eval &e) {
  evalMax(e);
  std::vector<double> m = e.out.data, s(m.size(), 0.0);
  std::vector<int64_t> g = groupOf(e.x().shape, e.node.axes);
  for (size_t i = 0; i < g.size(); ++i) {
    size_t k = static_cast<size_t>(g[i]);
    if (std::isfinite(m[k])) s[k] += std::exp(e.x().data[i] - m[k]);
  }
  for (size_t k = 0; k < m.size(); ++k)
    e.out.data[k] = std::isfinite(m[k]) ? m[k] + std::log(s[k]) : m[k];
}

// ---- Normalisations along one axis, the row's max subtracted.

struct RowStats {
  std::vector<int64_t> group;
  std::vector<double> max, sumExp;
};

RowStats rowStats(const Tensor &x, uint32_t axes) {
  RowStats r;
  r.group = groupOf(x.shape, axes);
  size_t groups = static_cast<size_t>(count(keptShape(x.shape, axes)));
  r.max.assign(groups, -kInf);
  r.sumExp.assign(groups, 0.0);
  for (size_t i = 0; i < r.group.size(); ++i) {
    double &m = r.max[static_cast<size_t>(r.group[i])];
    if (std::isnan(x.data[i]) || x.data[i] > m) m = x.data[i];
  }
  for (size_t i = 0; i < r.group.size(); ++i) {
    size_t k = static_cast<size_t>(r.group[i]);
    r.sumExp[k] += std::exp(x.data[i] - r.max[k]);
  }
  return r;
}

// softmax(x)_i = exp(x_i - m) / sum_j exp(x_j - m)
void evalSoftmax(Eval &e) {
  RowStats r = rowStats(e.x(), e.node.axes);
  for (size_t i = 0; i < r.group.size(); ++i) {
    size_t k = static_cast<size_t>(r.group[i]);
    e.out.data[i] = std::exp(e.x().data[i] - r.max[k]) / r.sumExp[k];
  }
}

// log_softmax(x)_i = x_i - m - log(sum_j exp(x_j - m))
void evalLogSoftmax(Eval &e) {
  RowStats r = rowStats(e.x(), e.node.axes);
  for (size_t i = 0; i < r.group.size(); ++i) {
    size_t k = static_cast<size_t>(r.group[i]);
    e.out.data[i] = e.x().data[i] - r.max[k] - std::log(r.sumExp[k]);
  }
}

// ---- Layout

void evalTranspose(Eval &e) {
  int64_t rows = e.x().shape[0], cols = e.x().shape[1];
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j)
      e.out.data[static_cast<size_t>(j * rows + i)] = e.x().data[static_cast<size_t>(i * cols + j)];
}

void evalReshape(Eval &e) { e.out.data = e.x().data; }
void evalBroadcast(Eval &e) { e.out.data = broadcastTo(e.x(), e.out.shape); }

// ---- Special

// out[i,j] = sum_p a(i,p) * b(p,j), where a and b read their operand transposed when
// transA / transB is set.
void evalMatMul(Eval &e) {
  const Tensor &A = e.x(0), &B = e.x(1);
  bool ta = e.node.transA, tb = e.node.transB;
  int64_t m = e.out.shape[0], n = e.out.shape[1], k = ta ? A.shape[0] : A.shape[1];
  int64_t lda = A.shape[1], ldb = B.shape[1];
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t p = 0; p < k; ++p) {
        double a = A.data[static_cast<size_t>(ta ? p * lda + i : i * lda + p)];
        double b = B.data[static_cast<size_t>(tb ? j * ldb + p : p * ldb + j)];
        s += a * b;
      }
      e.out.data[static_cast<size_t>(i * n + j)] = s;
    }
}

// A label outside [0, classes) gives a row of zeros (the CSV reader rejects such labels).
void evalOneHot(Eval &e) {
  int64_t classes = e.node.classes;
  for (size_t i = 0; i < e.x().data.size(); ++i) {
    double l = e.x().data[i];
    if (l >= 0 && l < static_cast<double>(classes))
      e.out.data[i * static_cast<size_t>(classes) + static_cast<size_t>(l)] = 1.0;
  }
}

// The index of the first maximum along the axis (a NaN counts as the maximum, as in torch).
void evalArgMax(Eval &e) {
  const Tensor &x = e.x();
  int axis = std::countr_zero(e.node.axes);
  int64_t stride = 1;
  for (size_t a = static_cast<size_t>(axis) + 1; a < x.shape.size(); ++a) stride *= x.shape[a];
  int64_t len = x.shape[static_cast<size_t>(axis)];
  std::vector<int64_t> g = groupOf(x.shape, e.node.axes);
  std::vector<double> best(e.out.data.size(), -kInf);
  std::vector<bool> seen(e.out.data.size(), false);
  for (size_t i = 0; i < g.size(); ++i) {
    size_t k = static_cast<size_t>(g[i]);
    double v = x.data[i];
    bool better = !seen[k] || (!std::isnan(best[k]) && (std::isnan(v) || v > best[k]));
    if (better) {
      best[k] = v;
      seen[k] = true;
      e.out.data[k] = static_cast<double>((static_cast<int64_t>(i) / stride) % len);
    }
  }
}

// ---- The table

struct Rule {
  Op op;
  EvalFn fn;
};

constexpr Rule kRules[] = {
    {Op::Input, evalArgument},       {Op::Param, evalArgument},
    {Op::State, evalArgument},       {Op::Hyper, evalArgument},
    {Op::Const, evalConst},          {Op::DimSize, evalDimSize},
    {Op::Neg, evalMap<neg>},         {Op::Exp, evalMap<exp_>},
    {Op::Log, evalMap<log_>},        {Op::Sqrt, evalMap<sqrt_>},
    {Op::Abs, evalMap<abs_>},        {Op::Sign, evalMap<sign>},
    {Op::Tanh, evalMap<tanh_>},      {Op::Sigmoid, evalSigmoid},
    {Op::Relu, evalMap<relu>},       {Op::Softplus, evalMap<softplus>},
    {Op::Sin, evalMap<sin_>},        {Op::Cos, evalMap<cos_>},
    {Op::Square, evalMap<square>},   {Op::LeakyRelu, evalLeakyRelu},
    {Op::StopGradient, evalMap<identity>}, {Op::Cast, evalMap<identity>},
    {Op::Add, evalZip<add>},         {Op::Sub, evalZip<sub>},
    {Op::Mul, evalZip<mul>},         {Op::Div, evalZip<div>},
    {Op::Pow, evalPow},        {Op::Maximum, evalZip<maximum>},
    {Op::Minimum, evalZip<minimum>}, {Op::Lt, evalZip<lt>},
    {Op::Le, evalZip<le>},           {Op::Gt, evalZip<gt>},
    {Op::Ge, evalZip<ge>},           {Op::Eq, evalZip<eq>},
    {Op::Ne, evalZip<ne>},           {Op::Where, evalWhere},
    {Op::Sum, evalSum},              {Op::Mean, evalMean},
    {Op::Max, evalMax},              {Op::Min, evalMin},
    {Op::LogSumExp, evalLogSumExp},  {Op::Softmax, evalSoftmax},
    {Op::LogSoftmax, evalLogSoftmax}, {Op::Transpose, evalTranspose},
    {Op::Reshape, evalReshape},      {Op::Broadcast, evalBroadcast},
    {Op::MatMul, evalMatMul},        {Op::OneHot, evalOneHot},
    {Op::ArgMax, evalArgMax},
};

constexpr std::array<EvalFn, ir::kNumOps> kTable = [] {
  std::array<EvalFn, ir::kNumOps> t{};
  for (const Rule &r : kRules) t[static_cast<size_t>(r.op)] = r.fn;
  return t;
}();
// Checked on the ops, not on the function pointers: a sanitizer build does not treat a
// function's address as a constant expression.
constexpr bool everyOpHasARule() {
  for (int op = 0; op < ir::kNumOps; ++op)
    if (std::ranges::none_of(kRules, [&](const Rule &r) { return static_cast<int>(r.op) == op; }))
      return false;
  return true;
}
static_assert(everyOpHasARule(), "an op of Ops.def has no interpreter rule");

bool isArgument(Op op) {
  return op == Op::Input || op == Op::Param || op == Op::State || op == Op::Hyper;
}

}  // namespace

std::vector<Tensor> interpret(const ir::Function &f, const std::vector<Tensor> &args,
                              const std::vector<int64_t> &dims, bool roundToF32) {
  if (args.size() != f.arguments().size())
    internalError("interpreter: {} takes {} arguments, got {}", f.name, f.arguments().size(),
                  args.size());
  if (dims.size() < f.dimNames.size())
    internalError("interpreter: {} needs {} dims, got {}", f.name, f.dimNames.size(), dims.size());
  std::vector<Tensor> values(static_cast<size_t>(f.size()));
  size_t nextArg = 0;
  for (ir::ValueId v = 0; v < f.size(); ++v) {
    const Node &n = f.node(v);
    Tensor &out = values[static_cast<size_t>(v)];
    for (const ir::Dim &d : n.shape) out.shape.push_back(d.eval(dims));
    out.data.assign(static_cast<size_t>(count(out.shape)), 0.0);
    out.isInt = n.dtype == ir::DType::I32;
    Eval e{n, {}, dims, out, roundToF32};
    if (isArgument(n.op)) e.in.push_back(&args[nextArg++]);
    for (ir::ValueId o : n.operands) e.in.push_back(&values[static_cast<size_t>(o)]);
    kTable[static_cast<size_t>(n.op)](e);
    if (roundToF32 && !out.isInt)
      for (double &x : out.data) x = static_cast<double>(static_cast<float>(x));
  }
  std::vector<Tensor> results;
  for (const ir::Result &r : f.results) results.push_back(values[static_cast<size_t>(r.value)]);
  return results;
}

rt::Kernel interpreterKernel(const ir::Function &f, bool f64) {
  rt::Kernel k;
  k.sig = ir::signatureOf(f);
  k.f64 = f64;
  k.workBytes = [](const int64_t *) { return size_t{0}; };
  auto fn = std::make_shared<const ir::Function>(f);
  k.call = [fn, sig = k.sig, f64](void *const *args, const int64_t *dims, void *) {
    std::vector<int64_t> dimValues(dims, dims + (dims ? sig.dimNames.size() : 0));
    auto bound = [&](const rt::Slot &s) {
      Shape shape;
      for (int64_t d : s.shape) shape.push_back(d >= 0 ? d : dimValues.at(static_cast<size_t>(-1 - d)));
      return shape;
    };
    std::vector<ir::ValueId> argIds = fn->arguments();
    std::vector<Tensor> in(argIds.size());
    for (size_t i = 0; i < argIds.size(); ++i) {
      Tensor &t = in[i];
      t.shape = bound(sig.slots[i]);
      t.isInt = sig.slots[i].isInt;
      size_t n = static_cast<size_t>(count(t.shape));
      t.data.resize(n);
      for (size_t j = 0; j < n; ++j)
        t.data[j] = t.isInt ? static_cast<const int32_t *>(args[i])[j]
                    : f64   ? static_cast<const double *>(args[i])[j]
                            : static_cast<const float *>(args[i])[j];
    }
    std::vector<Tensor> out = interpret(*fn, in, dimValues, !f64);
    size_t nextSlot = argIds.size();
    for (size_t r = 0; r < fn->results.size(); ++r) {
      ir::ValueId wb = ir::writeBackArgument(*fn, fn->results[r]);
      void *dst = wb == ir::kNoValue
                      ? args[nextSlot++]
                      : args[std::find(argIds.begin(), argIds.end(), wb) - argIds.begin()];
      const Tensor &t = out[r];
      for (size_t j = 0; j < t.data.size(); ++j) {
        if (t.isInt) static_cast<int32_t *>(dst)[j] = static_cast<int32_t>(t.data[j]);
        else if (f64) static_cast<double *>(dst)[j] = t.data[j];
        else static_cast<float *>(dst)[j] = static_cast<float>(t.data[j]);
      }
    }
  };
  return k;
}

}  // namespace gradc::interp
