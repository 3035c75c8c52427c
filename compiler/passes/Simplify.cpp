// Rewrites (constant folding, algebraic identities, numerically stable forms) and the
// fixed-point driver that alternates them with CSE and DCE.
//
// rewriteOnce() walks the nodes in order with operands already rewritten, and replaces a
// node by what a rule gives (new nodes take the replaced node's place and source name). A
// replacement always has the node's dtype and shape: a value that is smaller is broadcast,
// so `x + 0` with a zero of a larger shape stays well-typed. What rules leave behind
// unused is removed by DCE; duplicates they create are merged by CSE in the next round.
#include "passes/Simplify.h"

#include <cmath>
#include <limits>

#include "ir/Builder.h"

namespace gradc::passes {

using namespace ir;

namespace {

double sigmoid(double x) { return x < -sigmoidZeroBelow(true) ? 0 : 1 / (1 + std::exp(-x)); }
double softplus(double x) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }

// The element-wise ops on one element (what the interpreter computes, in double).
double evalElement(Op op, const std::vector<double> &x, double attr) {
  switch (op) {
  case Op::Neg: return -x[0];
  case Op::Exp: return std::exp(x[0]);
  case Op::Log: return std::log(x[0]);
  case Op::Sqrt: return std::sqrt(x[0]);
  case Op::Abs: return std::fabs(x[0]);
  case Op::Sign: return x[0] > 0 ? 1.0 : x[0] < 0 ? -1.0 : x[0] == 0 ? 0.0 : x[0];
  case Op::Tanh: return std::tanh(x[0]);
  case Op::Sigmoid: return sigmoid(x[0]);
  case Op::Relu: return x[0] > 0 || std::isnan(x[0]) ? x[0] : 0.0;
  case Op::Softplus: return softplus(x[0]);
  case Op::Sin: return std::sin(x[0]);
  case Op::Cos: return std::cos(x[0]);
  case Op::Square: return x[0] * x[0];
  case Op::LeakyRelu: return x[0] > 0 ? x[0] : x[0] * attr;
  case Op::StopGradient: return x[0];
  case Op::Cast: return x[0];
  case Op::Add: return x[0] + x[1];
  case Op::Sub: return x[0] - x[1];
  case Op::Mul: return x[0] * x[1];
  case Op::Div: return x[0] / x[1];
  case Op::Pow: return std::pow(x[0], x[1] + attr);
  case Op::Maximum:
    return std::isnan(x[0]) || std::isnan(x[1]) ? NAN : std::max(x[0], x[1]);
  case Op::Minimum:
    return std::isnan(x[0]) || std::isnan(x[1]) ? NAN : std::min(x[0], x[1]);
  case Op::Lt: return x[0] < x[1];
  case Op::Le: return x[0] <= x[1];
  case Op::Gt: return x[0] > x[1];
  case Op::Ge: return x[0] >= x[1];
  case Op::Eq: return x[0] == x[1];
  case Op::Ne: return x[0] != x[1];
  case Op::Where: return x[0] != 0 ? x[1] : x[2];
  default: internalError("evalElement: {} is not element-wise", opName(op));
  }
}

class Rewriter {
public:
  explicit Rewriter(Function &out) : f_(out), b_(out) {}
  Builder &builder() { return b_; }
  ValueId rewrite(const Node &n);

private:
  Op op(ValueId v) const { return f_.node(v).op; }
  ValueId arg(ValueId v, int i = 0) const { return f_.node(v).operands[static_cast<size_t>(i)]; }
  bool isConst(ValueId v, double *value = nullptr) const {
    if (op(v) != Op::Const) return false;
    if (value) *value = f_.node(v).value;
    return true;
  }
  bool is(ValueId v, double c) const {
    double x = 0;
    return isConst(v, &x) && x == c;
  }
  // The product of the static dims selected by `axes`, or -1 when one is symbolic.
  int64_t staticCount(const Shape &s, uint32_t axes) const {
    int64_t n = 1;
    for (size_t i = 0; i < s.size(); ++i)
      if (axes & (1u << i)) {
        if (!s[i].isStatic()) return -1;
        n *= s[i].factor;
      }
    return n;
  }
  ValueId fit(ValueId v, const Node &n) {
    if (f_.node(v).shape == n.shape) return v;
    return b_.broadcast(v, n.shape);
  }
  ValueId zeros(const Node &n, double value = 0) { return b_.constant(value, n.shape); }

  ValueId fold(const Node &n);
  ValueId commute(const Node &n);
  ValueId elementwise(const Node &n);
  ValueId identity(const Node &n);
  ValueId factor(const Node &n);
  ValueId stableLog(const Node &n);

  Function &f_;
  Builder b_;
};

// Constant folding: an op whose operands are all constants is a constant.
ValueId Rewriter::fold(const Node &n) {
  std::vector<double> c;
  for (ValueId o : n.operands) {
    double v = 0;
    if (!isConst(o, &v)) return kNoValue;
    c.push_back(v);
  }
  if (c.empty()) return kNoValue;
  const Shape &in = f_.node(n.operands[0]).shape;
  // (sigmoid is 0 from another bound in float32 than in float64: between them the step's own
  // code computes it, in the float type it is compiled in.)
  if (n.op == Op::Sigmoid && c[0] < -sigmoidZeroBelow(false) && c[0] >= -sigmoidZeroBelow(true)) return kNoValue;
  if (isElementwise(n.op)) return zeros(n, evalElement(n.op, c, n.value));
  switch (n.op) {
  case Op::Transpose:
  case Op::Reshape:
  case Op::Broadcast:
  case Op::Mean:
  case Op::Max:
  case Op::Min:
    return zeros(n, c[0]);
  case Op::Sum:
  case Op::LogSumExp:
  case Op::Softmax:
  case Op::LogSoftmax: {
    int64_t count = staticCount(in, n.axes);
    if (count < 0) return kNoValue;
    double N = static_cast<double>(count);
    if (n.op == Op::Sum) return zeros(n, c[0] * N);
    if (n.op == Op::LogSumExp) return zeros(n, c[0] + std::log(N));
    return zeros(n, n.op == Op::Softmax ? 1 / N : -std::log(N));
  }
  case Op::MatMul: {
    Dim kdim = in[n.transA ? 0 : 1];
    if (!kdim.isStatic()) return kNoValue;
    return zeros(n, c[0] * c[1] * static_cast<double>(kdim.factor));
  }
  default:
    return kNoValue;
  }
}

// Broadcasting is implicit in element-wise ops: an explicit broadcast (or a constant of a
// larger shape) as an operand is not needed when the result keeps its shape without it.
ValueId Rewriter::elementwise(const Node &n) {
  // op(broadcast(x)) = broadcast(op(x)) for one operand: computed on fewer elements.
  if (opKind(n.op) == OpKind::Unary && op(n.operands[0]) == Op::Broadcast) {
    Node m = n;
    m.operands[0] = arg(n.operands[0]);
    return fit(b_.add(std::move(m)), n);
  }
  for (size_t i = 0; i < n.operands.size(); ++i) {
    ValueId o = n.operands[i];
    bool isBroadcast = op(o) == Op::Broadcast;
    if (!isBroadcast && !(op(o) == Op::Const && !f_.node(o).shape.empty())) continue;
    Shape s = isBroadcast ? f_.node(arg(o)).shape : Shape{};
    for (size_t j = 0; j < n.operands.size(); ++j)
      if (j != i) s = broadcastShapes(s, f_.node(n.operands[j]).shape, n.loc, f_.dimNames);
    if (isBroadcast && s != n.shape) continue;
    Node m = n;
    m.operands[i] = isBroadcast ? arg(o) : b_.constant(f_.node(o).value);
    return fit(b_.add(std::move(m)), n);
  }
  return kNoValue;
}

ValueId Rewriter::identity(const Node &n) {
  auto x = [&](int i) { return n.operands[static_cast<size_t>(i)]; };
  switch (n.op) {
  case Op::Add:
    if (ValueId r = factor(n); r != kNoValue) return r;
    if (is(x(0), 0)) return fit(x(1), n);                       // 0 + b = b
    if (is(x(1), 0)) return fit(x(0), n);                       // a + 0 = a
    if (op(x(1)) == Op::Neg) return b_.sub(x(0), arg(x(1)));     // a + -b = a - b
    if (op(x(0)) == Op::Neg) return b_.sub(x(1), arg(x(0)));     // -a + b = b - a
    return kNoValue;
  case Op::Sub:
    if (ValueId r = factor(n); r != kNoValue) return r;
    if (is(x(1), 0)) return fit(x(0), n);                       // a - 0 = a
    if (is(x(0), 0)) return fit(b_.neg(x(1)), n);               // 0 - b = -b
    if (op(x(1)) == Op::Neg) return b_.add(x(0), arg(x(1)));     // a - -b = a + b
    return kNoValue;
  case Op::Mul:
    // No `0 * b = 0`: it is not when b is NaN or infinite (PyTorch gives NaN).
    if (is(x(1), 1)) return fit(x(0), n);                       // a * 1 = a
    if (is(x(0), 1)) return fit(x(1), n);
    if (is(x(1), -1)) return fit(b_.neg(x(0)), n);              // a * -1 = -a
    if (is(x(0), -1)) return fit(b_.neg(x(1)), n);
    if (x(0) == x(1)) return b_.unary(Op::Square, x(0));        // a * a = square(a)
    if (op(x(0)) == Op::Mul && isConst(x(1)) && f_.node(x(1)).shape.empty() &&
        isConst(arg(x(0), 1)) && f_.node(arg(x(0), 1)).shape.empty())  // (a * c) * d = a * (c d)
      return fit(b_.mul(arg(x(0)), b_.constant(f_.node(x(1)).value * f_.node(arg(x(0), 1)).value)), n);
    if (op(x(0)) == Op::Neg && op(x(1)) == Op::Neg)             // -a * -b = a * b
      return b_.mul(arg(x(0)), arg(x(1)));
    for (int i = 0; i < 2; ++i)                                 // (1 / d) * b = b / d
      if (op(x(i)) == Op::Div && is(arg(x(i), 0), 1)) return b_.div(x(1 - i), arg(x(i), 1));
    if (op(x(0)) == Op::Neg) return b_.neg(b_.mul(arg(x(0)), x(1)));  // -a * b = -(a * b)
    if (op(x(1)) == Op::Neg) return b_.neg(b_.mul(x(0), arg(x(1))));
    return kNoValue;
  case Op::Div:
    if (is(x(1), 1)) return fit(x(0), n);                       // a / 1 = a
    if (is(x(1), -1)) return fit(b_.neg(x(0)), n);              // a / -1 = -a
    if (op(x(0)) == Op::Neg) return b_.neg(b_.div(arg(x(0)), x(1)));  // -a / b = -(a / b)
    return kNoValue;
  case Op::Pow:
    if (double c; n.value != 0 && isConst(x(1), &c)) {
      // a^(c + k) = a^(c+k) when the sum is the same in float32 and float64 (3 - 1, not
      // 2.0000001 - 1), the float types the step may be compiled in.
      double sum = c + n.value;
      if (static_cast<double>(static_cast<float>(c) + static_cast<float>(n.value)) != sum) return kNoValue;
      return fit(b_.binary(Op::Pow, x(0), b_.constant(sum, f_.node(x(1)).shape)), n);
    }
    if (n.value != 0) return kNoValue;
    if (is(x(1), 1)) return fit(x(0), n);                       // a^1 = a
    if (is(x(1), 2)) return fit(b_.unary(Op::Square, x(0)), n); // a^2 = square(a)
    if (is(x(1), 0)) return zeros(n, 1);                        // a^0 = 1
    return kNoValue;
  case Op::Neg:
    if (op(x(0)) == Op::Neg) return arg(x(0));                  // --a = a
    if (op(x(0)) == Op::Sub) return b_.sub(arg(x(0), 1), arg(x(0), 0));  // -(a - b) = b - a
    return kNoValue;
  case Op::Where: {
    double c = 0;
    if (isConst(x(0), &c)) return fit(c != 0 ? x(1) : x(2), n);  // where(1, a, b) = a
    if (x(1) == x(2)) return fit(x(1), n);                      // where(c, a, a) = a
    return kNoValue;
  }
  case Op::Maximum:
  case Op::Minimum:
    return x(0) == x(1) ? x(0) : kNoValue;                      // max(a, a) = a
  case Op::Transpose:
    return op(x(0)) == Op::Transpose ? arg(x(0)) : kNoValue;    // (a^T)^T = a
  case Op::Reshape:
    if (f_.node(x(0)).shape == n.shape) return x(0);            // reshape to its own shape
    if (op(x(0)) == Op::Reshape) return b_.reshape(arg(x(0)), n.shape);
    if (op(x(0)) == Op::Broadcast && f_.node(arg(x(0))).shape.empty())  // a broadcast scalar
      return b_.broadcast(arg(x(0)), n.shape);
    return kNoValue;
  case Op::Broadcast:
    if (f_.node(x(0)).shape == n.shape) return x(0);
    if (op(x(0)) == Op::Broadcast) return b_.broadcast(arg(x(0)), n.shape);
    return kNoValue;
  case Op::Sum:
  case Op::Mean:
  case Op::Max:
  case Op::Min:
  case Op::LogSumExp:
    if (staticCount(f_.node(x(0)).shape, n.axes) != 1) return kNoValue;
    // Over no axes, or axes of size 1: nothing is combined.
    return f_.node(x(0)).shape == n.shape ? x(0) : b_.reshape(x(0), n.shape);
  case Op::MatMul: {
    // matmul(transpose(a), b) = matmul(a^T, b), and the same for b.
    bool ta = op(x(0)) == Op::Transpose, tb = op(x(1)) == Op::Transpose;
    if (!ta && !tb) return kNoValue;
    return b_.matmul(ta ? arg(x(0)) : x(0), tb ? arg(x(1)) : x(1), n.transA != ta,
                     n.transB != tb);
  }
  case Op::Log:
    return stableLog(n);
  default:
    return kNoValue;
  }
}

// a*b + a*c = a * (b + c) and a*b - a*c = a * (b - c), for a factor shared by both sides;
// b/d + c/d = (b + c) / d, and the same for -.
ValueId Rewriter::factor(const Node &n) {
  ValueId l = n.operands[0], r = n.operands[1];
  if (op(l) == Op::Div && op(r) == Op::Div && arg(l, 1) == arg(r, 1) && l != r)
    return fit(b_.div(b_.binary(n.op, arg(l, 0), arg(r, 0)), arg(l, 1)), n);
  if (op(l) != Op::Mul || op(r) != Op::Mul || l == r) return kNoValue;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j)
      if (arg(l, i) == arg(r, j))
        return fit(b_.mul(arg(l, i), b_.binary(n.op, arg(l, 1 - i), arg(r, 1 - j))), n);
  return kNoValue;
}

// Numerically stable forms of log(...):
//   log(softmax(x))    = log_softmax(x)          softmax underflows to 0: log gives -inf
//   log(sigmoid(x))    = -softplus(-x)           sigmoid(-800) = 0: log gives -inf
//   log(1 - sigmoid(x)) = -softplus(x)           1 - sigmoid(40) = 0 in floating point
//   log(exp(x))        = x                       exp(800) = inf
//   log(sum(exp(x)))   = logsumexp(x)            computed with the max subtracted
//   log(1 + exp(x))    = softplus(x)             exp(800) = inf
ValueId Rewriter::stableLog(const Node &n) {
  ValueId in = n.operands[0];
  Node inner = f_.node(in);
  auto x = [&](int i) { return inner.operands[static_cast<size_t>(i)]; };
  switch (inner.op) {
  case Op::Softmax: {
    Node m = inner;
    m.op = Op::LogSoftmax;
    m.loc = n.loc;
    m.callLoc = n.callLoc;
    m.srcName = n.srcName;
    return b_.add(std::move(m));
  }
  case Op::Sigmoid:
    return b_.neg(b_.unary(Op::Softplus, b_.neg(x(0))));
  case Op::Sub:
    if (is(x(0), 1) && op(x(1)) == Op::Sigmoid)
      return fit(b_.neg(b_.unary(Op::Softplus, arg(x(1)))), n);
    return kNoValue;
  case Op::Exp:
    return x(0);
  case Op::Sum:
    if (op(x(0)) != Op::Exp) return kNoValue;
    return b_.reduce(Op::LogSumExp, arg(x(0)), inner.axes, inner.keepdims);
  case Op::Add:
    for (int i = 0; i < 2; ++i)
      if (is(x(i), 1) && op(x(1 - i)) == Op::Exp)
        return fit(b_.unary(Op::Softplus, arg(x(1 - i))), n);
    return kNoValue;
  default:
    return kNoValue;
  }
}

// Constants go right in commutative ops (`mul %x, 2`), so that equal values look alike.
ValueId Rewriter::commute(const Node &n) {
  bool commutative = n.op == Op::Add || n.op == Op::Mul || n.op == Op::Maximum ||
                     n.op == Op::Minimum || n.op == Op::Eq || n.op == Op::Ne;
  if (!commutative || !isConst(n.operands[0]) || isConst(n.operands[1])) return kNoValue;
  Node m = n;
  std::swap(m.operands[0], m.operands[1]);
  return b_.add(std::move(m));
}

ValueId Rewriter::rewrite(const Node &n) {
  if (isLeaf(n.op)) return kNoValue;
  ValueId r = fold(n);
  if (r == kNoValue) r = identity(n);
  if (r == kNoValue) r = commute(n);
  if (r == kNoValue && isElementwise(n.op)) r = elementwise(n);
  return r;
}

}  // namespace

Function rewriteOnce(const Function &f, bool *changed) {
  Function out;
  out.name = f.name;
  out.dimNames = f.dimNames;
  Rewriter rw(out);
  Builder &b = rw.builder();
  std::vector<ValueId> map(static_cast<size_t>(f.size()), kNoValue);
  for (ValueId v = 0; v < f.size(); ++v) {
    Node n = f.node(v);
    for (ValueId &o : n.operands) o = map[static_cast<size_t>(o)];
    b.loc = n.loc;
    b.callLoc = n.callLoc;
    b.srcName = n.srcName;
    ValueId r = rw.rewrite(n);
    if (r != kNoValue) {
      const Node &rn = out.node(r);
      if (rn.dtype != n.dtype || rn.shape != n.shape)
        internalError("simplify: rewriting {} changed its type to {}{}", opName(n.op),
                      dtypeName(rn.dtype), formatShape(rn.shape, out.dimNames));
      if (changed) *changed = true;
      map[static_cast<size_t>(v)] = r;
      // An unnamed value that stands for a named one takes its name (`z = t * 1`: t is z).
      Node &rep = out.node(r);
      if (rep.srcName.empty() && !isLeaf(rep.op)) rep.srcName = n.srcName;
    } else {
      map[static_cast<size_t>(v)] = b.addUnchecked(std::move(n));
    }
  }
  for (Result r : f.results) {
    r.value = map[static_cast<size_t>(r.value)];
    out.results.push_back(r);
  }
  return out;
}

Function simplify(const Function &f) {
  Function cur = eliminateDeadCode(f);
  for (int round = 0; round < 100; ++round) {
    bool changed = false;
    cur = rewriteOnce(cur, &changed);
    cur = eliminateCommonSubexpressions(cur, &changed);
    cur = eliminateDeadCode(cur, &changed);
    if (!changed) break;
  }
  verify(cur);
  return cur;
}

}  // namespace gradc::passes
