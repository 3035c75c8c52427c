// The vector-Jacobian rules: for y = op(x0, x1, ...) and g = dL/dy, the contribution of y
// to dL/dxi. One rule per differentiable op, in a table indexed by ir::Op (as tinygrad and
// Halide keep theirs); gradKind() says which ops have none on purpose.
//
// Notation above each rule: y is the forward value, g its adjoint, x/a/b the operands.
// `keep(v)` is v reshaped to the operand's rank (reduced axes kept as 1) so that it
// broadcasts against the operand; `N` is the number of elements reduced. Rules may return a
// value of y's (broadcast) shape: the driver sums it back to the operand's shape.
// Derivatives at kinks follow PyTorch (docs/language.md, "Expressions"). Where two operands of
// one call would each make values, they are made one statement at a time: C++ leaves the order
// of a call's arguments to the compiler, and the order of the values is the numbering that
// `gradc inspect` prints (the same whichever compiler built gradc).
#include "autodiff/GradRules.h"

#include <array>
#include <cmath>
#include <limits>

namespace gradc::autodiff {

using namespace ir;

namespace {

ValueId k(const RuleArgs &r, double v) { return r.b.constant(v); }

// The reduced axes of a reduction kept as size 1: the shape `keep(v)` reshapes to.
Shape keptShape(const RuleArgs &r) {
  Shape s = r.operand(0).shape;
  for (size_t i = 0; i < s.size(); ++i)
    if (r.node.axes & (1u << i)) s[i] = Dim::fixed(1);
  return s;
}

ValueId keep(const RuleArgs &r, ValueId v) {
  if (r.node.keepdims || opKind(r.node.op) == OpKind::Row) return v;
  return r.b.reshape(v, keptShape(r));
}

// keep(v) broadcast to the operand's shape.
ValueId expand(const RuleArgs &r, ValueId v) {
  return r.b.broadcast(keep(r, v), r.operand(0).shape);
}

// The number of elements a reduction combines, as a value (a dimsize where it is symbolic).
ValueId reducedCount(const RuleArgs &r) {
  const Shape &s = r.operand(0).shape;
  int64_t n = 1;
  ValueId sym = kNoValue;
  for (size_t i = 0; i < s.size(); ++i) {
    if (!(r.node.axes & (1u << i))) continue;
    n *= s[i].factor;
    if (s[i].isStatic()) continue;
    ValueId d = r.b.dimSize(Dim{1, s[i].syms});
    sym = sym == kNoValue ? d : r.b.mul(sym, d);
  }
  if (sym == kNoValue) return k(r, static_cast<double>(n));
  return n == 1 ? sym : r.b.mul(sym, k(r, static_cast<double>(n)));
}

// ---- element-wise, one operand ------------------------------------------------------

// y = -x:        dx = -g
ValueId gradNeg(const RuleArgs &r, int) { return r.b.neg(r.g); }

// y = exp(x):    dx = g * y
ValueId gradExp(const RuleArgs &r, int) { return r.b.mul(r.g, r.y); }

// y = log(x):    dx = g / x
ValueId gradLog(const RuleArgs &r, int) { return r.b.div(r.g, r.x(0)); }

// y = sqrt(x):   dx = g / (2 y)
ValueId gradSqrt(const RuleArgs &r, int) { return r.b.div(r.g, r.b.mul(r.y, k(r, 2))); }

// y = |x|:       dx = g * sign(x)            (abs'(0) = sign(0) = 0)
ValueId gradAbs(const RuleArgs &r, int) { return r.b.mul(r.g, r.b.unary(Op::Sign, r.x(0))); }

// y = tanh(x):   dx = g * (1 - y^2)
ValueId gradTanh(const RuleArgs &r, int) {
  ValueId y2 = r.b.unary(Op::Square, r.y);
  return r.b.mul(r.g, r.b.sub(k(r, 1), y2));
}

// y = sigmoid(x): dx = g * y * (1 - y)
ValueId gradSigmoid(const RuleArgs &r, int) {
  return r.b.mul(r.g, r.b.mul(r.y, r.b.sub(k(r, 1), r.y)));
}

// y = relu(x):   dx = where(y > 0, g, 0)     (relu'(0) = 0)
// y > 0 exactly where x > 0. Testing y, as PyTorch's threshold_backward does, leaves x with
// one reader, so the forward pass computes relu in the loop of x and never stores x.
ValueId gradRelu(const RuleArgs &r, int) {
  ValueId zero = k(r, 0);
  return r.b.where(r.b.binary(Op::Gt, r.y, k(r, 0)), r.g, zero);
}

// y = softplus(x) = log(1 + exp(x)):  dx = g * sigmoid(x)
ValueId gradSoftplus(const RuleArgs &r, int) {
  return r.b.mul(r.g, r.b.unary(Op::Sigmoid, r.x(0)));
}

// y = sin(x):    dx = g * cos(x)
ValueId gradSin(const RuleArgs &r, int) { return r.b.mul(r.g, r.b.unary(Op::Cos, r.x(0))); }

// y = cos(x):    dx = -(g * sin(x))
ValueId gradCos(const RuleArgs &r, int) {
  return r.b.neg(r.b.mul(r.g, r.b.unary(Op::Sin, r.x(0))));
}

// y = x^2:       dx = g * 2x
ValueId gradSquare(const RuleArgs &r, int) { return r.b.mul(r.g, r.b.mul(r.x(0), k(r, 2))); }

// y = leaky_relu(x, s): dx = where(x > 0, g, s g)
ValueId gradLeakyRelu(const RuleArgs &r, int) {
  ValueId scaled = r.b.mul(r.g, k(r, r.node.value));
  return r.b.where(r.b.binary(Op::Gt, r.x(0), k(r, 0)), r.g, scaled);
}

// ---- element-wise, two or three operands -----------------------------------------------

// y = a + b:     da = g,  db = g
ValueId gradAdd(const RuleArgs &r, int) { return r.g; }

// y = a - b:     da = g,  db = -g
ValueId gradSub(const RuleArgs &r, int i) { return i == 0 ? r.g : r.b.neg(r.g); }

// y = a * b:     da = g * b,  db = g * a
ValueId gradMul(const RuleArgs &r, int i) { return r.b.mul(r.g, r.x(1 - i)); }

// y = a / b:     da = g / b,  db = -(g * y) / b
ValueId gradDiv(const RuleArgs &r, int i) {
  if (i == 0) return r.b.div(r.g, r.x(1));
  return r.b.neg(r.b.div(r.b.mul(r.g, r.y), r.x(1)));
}

// y = a^b:       da = where(b == 0, 0, g * b * a^(b-1))
//                db = where(a == 0 and b >= 0, 0, g * y * log(a))    (as PyTorch masks them)
// b - 1 is taken in the step's float type (Pow's exponent offset), from the b that y used:
// a constant b is rounded to it first (a^2.0000001 is a^2 in float32, and its gradient 2a,
// not a^1.0000001, nan for a < 0), where a constant b - 1 would be folded in double. For
// y = a^(b + c) (such a gradient, differentiated again), b + c stands for b.
ValueId gradPow(const RuleArgs &r, int i) {
  Builder &b = r.b;
  ValueId a = r.x(0), e = r.node.value == 0 ? r.x(1) : b.add(r.x(1), k(r, r.node.value));
  if (i == 0) {
    ValueId d = b.mul(r.g, b.mul(e, b.binary(Op::Pow, a, r.x(1), r.node.value - 1)));
    ValueId zero = k(r, 0);
    return b.where(b.binary(Op::Eq, e, k(r, 0)), zero, d);
  }
  ValueId nonNegative = b.binary(Op::Ge, e, k(r, 0));
  ValueId at0 = b.mul(b.binary(Op::Eq, a, k(r, 0)), nonNegative);
  ValueId d = b.mul(r.g, b.mul(r.y, b.unary(Op::Log, a)));
  return b.where(at0, k(r, 0), d);
}

// y = maximum(a, b): da = g * ([a > b] + [a == b] / 2),  db = g * ([a < b] + [a == b] / 2)
// y = minimum(a, b): the same with < and > swapped.            (ties split evenly)
ValueId gradMaxMin(const RuleArgs &r, int i, Op wins) {
  Builder &b = r.b;
  ValueId a = r.x(i), other = r.x(1 - i);
  ValueId half = k(r, 0.5);
  ValueId tie = b.mul(b.binary(Op::Eq, a, other), half);
  return b.mul(r.g, b.add(b.binary(wins, a, other), tie));
}
ValueId gradMaximum(const RuleArgs &r, int i) { return gradMaxMin(r, i, Op::Gt); }
ValueId gradMinimum(const RuleArgs &r, int i) { return gradMaxMin(r, i, Op::Lt); }

// y = where(c, a, b): dc = none,  da = where(c, g, 0),  db = where(c, 0, g)
ValueId gradWhere(const RuleArgs &r, int i) {
  if (i == 0) return kNoValue;
  return i == 1 ? r.b.where(r.x(0), r.g, k(r, 0)) : r.b.where(r.x(0), k(r, 0), r.g);
}

// ---- reductions and normalisations ----------------------------------------------------

// y = sum(x, axes):  dx = broadcast(keep(g))
ValueId gradSum(const RuleArgs &r, int) { return expand(r, r.g); }

// y = mean(x, axes): dx = broadcast(keep(g)) / N
ValueId gradMean(const RuleArgs &r, int) {
  ValueId n = reducedCount(r);
  return r.b.div(expand(r, r.g), n);
}

// y = max(x, axes) (or min):  m = [x == keep(y)],  dx = m * keep(g) / sum(m, axes)
// (the gradient is split evenly among tied elements, like torch.amax)
ValueId gradMaxReduce(const RuleArgs &r, int) {
  Builder &b = r.b;
  ValueId m = b.binary(Op::Eq, r.x(0), keep(r, r.y));
  ValueId count = b.reduce(Op::Sum, m, r.node.axes, true);
  return b.div(b.mul(m, keep(r, r.g)), count);
}

// y = logsumexp(x, axes):  dx = keep(g) * where(keep(y) == -inf, 0, exp(x - keep(y)))
// (softmax of x; a row of only -inf has y = -inf and gets 0, not exp(-inf + inf) = NaN)
ValueId gradLogSumExp(const RuleArgs &r, int) {
  Builder &b = r.b;
  ValueId yk = keep(r, r.y);
  ValueId empty = b.binary(Op::Eq, yk, k(r, -std::numeric_limits<double>::infinity()));
  ValueId e = b.unary(Op::Exp, b.sub(r.x(0), yk));
  ValueId p = b.where(empty, k(r, 0), e);
  return b.mul(keep(r, r.g), p);
}

// y = softmax(x, axis):      dx = y * (g - sum(g * y, axis, keepdims))
ValueId gradSoftmax(const RuleArgs &r, int) {
  Builder &b = r.b;
  return b.mul(r.y, b.sub(r.g, b.reduce(Op::Sum, b.mul(r.g, r.y), r.node.axes, true)));
}

// y = log_softmax(x, axis):  dx = g - exp(y) * sum(g, axis, keepdims)
ValueId gradLogSoftmax(const RuleArgs &r, int) {
  Builder &b = r.b;
  ValueId s = b.reduce(Op::Sum, r.g, r.node.axes, true);
  return b.sub(r.g, b.mul(b.unary(Op::Exp, r.y), s));
}

// ---- layout and matrix product -----------------------------------------------------------

// y = transpose(x):  dx = transpose(g)
ValueId gradTranspose(const RuleArgs &r, int) { return r.b.transpose(r.g); }

// y = reshape(x):    dx = reshape(g, shape(x))
ValueId gradReshape(const RuleArgs &r, int) { return r.b.reshape(r.g, r.operand(0).shape); }

// y = broadcast(x):  dx = g  (summed back to shape(x) by the driver)
ValueId gradBroadcast(const RuleArgs &r, int) { return r.g; }

// Z = op(A) op(B), op = transpose where the flag is set:
//   Z = A B      dA = dZ B^T        dB = A^T dZ
//   Z = A^T B    dA = B dZ^T        dB = A dZ
//   Z = A B^T    dA = dZ B          dB = dZ^T A
//   Z = A^T B^T  dA = B^T dZ^T      dB = dZ^T A^T
ValueId gradMatMul(const RuleArgs &r, int i) {
  Builder &b = r.b;
  ValueId A = r.x(0), B = r.x(1), dZ = r.g;
  bool tA = r.node.transA, tB = r.node.transB;
  if (i == 0) {
    if (!tA) return b.matmul(dZ, B, false, !tB);
    return b.matmul(B, dZ, tB, true);
  }
  if (!tB) return b.matmul(A, dZ, !tA, false);
  return b.matmul(dZ, A, true, tA);
}

struct Entry {
  GradKind kind = GradKind::Missing;
  GradRule rule = nullptr;
};

std::array<Entry, kNumOps> makeTable() {
  std::array<Entry, kNumOps> t{};
  for (int i = 0; i < kNumOps; ++i) {
    Op op = static_cast<Op>(i);
    if (isLeaf(op)) t[static_cast<size_t>(i)].kind = GradKind::Leaf;
    if (opKind(op) == OpKind::Compare) t[static_cast<size_t>(i)].kind = GradKind::NoGradient;
  }
  auto none = [&](Op op) { t[static_cast<size_t>(op)].kind = GradKind::NoGradient; };
  auto rule = [&](Op op, GradRule fn) { t[static_cast<size_t>(op)] = {GradKind::Differentiable, fn}; };
  none(Op::StopGradient);
  none(Op::Cast);
  none(Op::Sign);
  none(Op::OneHot);
  none(Op::ArgMax);
  rule(Op::Neg, gradNeg);
  rule(Op::Exp, gradExp);
  rule(Op::Log, gradLog);
  rule(Op::Sqrt, gradSqrt);
  rule(Op::Abs, gradAbs);
  rule(Op::Tanh, gradTanh);
  rule(Op::Sigmoid, gradSigmoid);
  rule(Op::Relu, gradRelu);
  rule(Op::Softplus, gradSoftplus);
  rule(Op::Sin, gradSin);
  rule(Op::Cos, gradCos);
  rule(Op::Square, gradSquare);
  rule(Op::LeakyRelu, gradLeakyRelu);
  rule(Op::Add, gradAdd);
  rule(Op::Sub, gradSub);
  rule(Op::Mul, gradMul);
  rule(Op::Div, gradDiv);
  rule(Op::Pow, gradPow);
  rule(Op::Maximum, gradMaximum);
  rule(Op::Minimum, gradMinimum);
  rule(Op::Where, gradWhere);
  rule(Op::Sum, gradSum);
  rule(Op::Mean, gradMean);
  rule(Op::Max, gradMaxReduce);
  rule(Op::Min, gradMaxReduce);
  rule(Op::LogSumExp, gradLogSumExp);
  rule(Op::Softmax, gradSoftmax);
  rule(Op::LogSoftmax, gradLogSoftmax);
  rule(Op::Transpose, gradTranspose);
  rule(Op::Reshape, gradReshape);
  rule(Op::Broadcast, gradBroadcast);
  rule(Op::MatMul, gradMatMul);
  return t;
}

const std::array<Entry, kNumOps> &table() {
  static const std::array<Entry, kNumOps> t = makeTable();
  return t;
}

}  // namespace

GradRule gradRule(Op op) { return table()[static_cast<size_t>(op)].rule; }
GradKind gradKind(Op op) { return table()[static_cast<size_t>(op)].kind; }

}  // namespace gradc::autodiff
