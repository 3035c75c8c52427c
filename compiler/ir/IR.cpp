// The op table's properties, dims and shapes, the shape rules, and the verifier.
#include "ir/Builder.h"
#include "ir/IR.h"

#include <bit>

namespace gradc::ir {

namespace {
struct OpInfo {
  const char *name;
  OpKind kind;
  int arity;
};
constexpr OpInfo kOpInfo[] = {
#define GRADC_OP(Enum, Name, Kind, Arity) {Name, OpKind::Kind, Arity},
#include "ir/Ops.def"
};
static_assert(sizeof(kOpInfo) / sizeof(kOpInfo[0]) == kNumOps);
}  // namespace

const char *opName(Op op) { return kOpInfo[static_cast<int>(op)].name; }
OpKind opKind(Op op) { return kOpInfo[static_cast<int>(op)].kind; }
int opArity(Op op) { return kOpInfo[static_cast<int>(op)].arity; }
bool isElementwise(Op op) {
  OpKind k = opKind(op);
  return k == OpKind::Unary || k == OpKind::Binary || k == OpKind::Compare ||
         k == OpKind::Ternary;
}
bool isLeaf(Op op) { return opKind(op) == OpKind::Leaf; }

const char *dtypeName(DType t) { return t == DType::F32 ? "f32" : "i32"; }

const char *resultKindName(ResultKind k) {
  switch (k) {
  case ResultKind::Loss: return "loss";
  case ResultKind::Metric: return "metric";
  case ResultKind::Output: return "output";
  case ResultKind::Grad: return "grad";
  case ResultKind::NewParam: return "param";
  case ResultKind::NewState: return "state";
  }
  return "?";
}

int64_t Dim::eval(const std::vector<int64_t> &dimValues) const {
  int64_t v = factor;
  for (uint32_t s = syms; s; s &= s - 1) {
    int i = std::countr_zero(s);
    GRADC_ASSERT(static_cast<size_t>(i) < dimValues.size(), "unbound dim {}", i);
    v *= dimValues[static_cast<size_t>(i)];
  }
  return v;
}

std::string formatDim(const Dim &d, const std::vector<std::string> &dimNames) {
  std::string out;
  if (d.factor != 1 || d.syms == 0) out = std::to_string(d.factor);
  for (uint32_t s = d.syms; s; s &= s - 1) {
    size_t i = static_cast<size_t>(std::countr_zero(s));
    if (!out.empty()) out += '*';
    out += i < dimNames.size() ? dimNames[i] : fmt::format("d{}", i);
  }
  return out;
}

static std::string formatShapeSep(const Shape &s, const std::vector<std::string> &dimNames,
                                  const char *sep) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += sep;
    out += formatDim(s[i], dimNames);
  }
  return out + "]";
}

std::string formatShape(const Shape &s, const std::vector<std::string> &dimNames) {
  return formatShapeSep(s, dimNames, ",");
}

std::string formatShapeForUser(const Shape &s, const std::vector<std::string> &dimNames) {
  return formatShapeSep(s, dimNames, ", ");
}

int64_t numElements(const Shape &s, const std::vector<int64_t> &dimValues) {
  int64_t n = 1;
  for (const Dim &d : s) n *= d.eval(dimValues);
  return n;
}

std::vector<ValueId> Function::arguments() const {
  std::vector<ValueId> out;
  for (ValueId v = 0; v < size(); ++v) {
    Op op = nodes[static_cast<size_t>(v)].op;
    if (op == Op::Input || op == Op::Param || op == Op::State || op == Op::Hyper)
      out.push_back(v);
  }
  return out;
}

ValueId Function::findResult(ResultKind kind, const std::string &n) const {
  for (const Result &r : results)
    if (r.kind == kind && (n.empty() || r.name == n)) return r.value;
  return kNoValue;
}

ValueId Function::findArgument(Op op, const std::string &n) const {
  for (ValueId v = 0; v < size(); ++v)
    if (nodes[static_cast<size_t>(v)].op == op && nodes[static_cast<size_t>(v)].name == n)
      return v;
  return kNoValue;
}

// ---------------------------------------------------------------------------------------
// Shape rules

Shape broadcastShapes(const Shape &a, const Shape &b, Loc loc,
                      const std::vector<std::string> &dimNames) {
  size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    // Align from the right, as NumPy does.
    Dim da = i < rank - a.size() ? Dim::fixed(1) : a[i - (rank - a.size())];
    Dim db = i < rank - b.size() ? Dim::fixed(1) : b[i - (rank - b.size())];
    if (da == db || db == Dim::fixed(1)) out[i] = da;
    else if (da == Dim::fixed(1)) out[i] = db;
    else
      userError(loc, "shapes {} and {} do not broadcast", formatShapeSep(a, dimNames, ", "),
                formatShapeSep(b, dimNames, ", "));
  }
  return out;
}

// Symbolic product of the dims of a shape, or nullopt-like {0,~0} when a symbol repeats.
static bool shapeProduct(const Shape &s, Dim &out) {
  out = Dim::fixed(1);
  for (const Dim &d : s) {
    if (out.syms & d.syms) return false;
    out.factor *= d.factor;
    out.syms |= d.syms;
  }
  return true;
}

// Equal but for dims of size 1: a reshape that only adds or drops 1s is valid even where a
// dim name repeats (`[B, B]` to `[B, B, 1]`), which shapeProduct cannot multiply.
static bool equalButOnes(const Shape &a, const Shape &b) {
  auto strip = [](const Shape &s) {
    Shape out;
    for (const Dim &d : s)
      if (d != Dim::fixed(1)) out.push_back(d);
    return out;
  };
  return strip(a) == strip(b);
}

void inferType(const Function &f, Node &n) {
  const auto &dn = f.dimNames;
  auto shapeStr = [&](const Shape &s) { return formatShapeSep(s, dn, ", "); };
  int arity = opArity(n.op);
  if (static_cast<int>(n.operands.size()) != arity)
    internalError("{} takes {} operands, got {}", opName(n.op), arity, n.operands.size());
  for (ValueId v : n.operands)
    if (v < 0 || v >= f.size()) internalError("{}: operand %{} out of range", opName(n.op), v);
  auto operand = [&](int i) -> const Node & { return f.node(n.operands[static_cast<size_t>(i)]); };
  auto needFloat = [&](int i) {
    if (operand(i).dtype != DType::F32)
      userError(n.loc, "{} expects a float tensor, got an int tensor", opName(n.op));
  };
  auto checkAxes = [&](const Shape &s) {
    if (s.size() < 32 && (n.axes >> s.size()) != 0)
      userError(n.loc, "axis out of range for a tensor of rank {}", s.size());
  };

  switch (opKind(n.op)) {
  case OpKind::Leaf:
    if (n.op == Op::Const || n.op == Op::DimSize || n.op == Op::Hyper) n.dtype = DType::F32;
    if (n.op == Op::DimSize || n.op == Op::Hyper) n.shape = {};
    if (n.shape.size() > kMaxRank) userError(n.loc, "tensors may have at most 8 dims");
    return;
  case OpKind::Unary:
    if (n.op == Op::Cast) {
      n.dtype = DType::F32;
    } else {
      needFloat(0);
      n.dtype = DType::F32;
    }
    n.shape = operand(0).shape;
    return;
  case OpKind::Binary:
    needFloat(0);
    needFloat(1);
    n.dtype = DType::F32;
    n.shape = broadcastShapes(operand(0).shape, operand(1).shape, n.loc, dn);
    return;
  case OpKind::Compare:
    if (operand(0).dtype != operand(1).dtype)
      internalError("{}: operands of different dtypes (the front end inserts a cast)",
                    opName(n.op));
    n.dtype = DType::F32;
    n.shape = broadcastShapes(operand(0).shape, operand(1).shape, n.loc, dn);
    return;
  case OpKind::Ternary:
    needFloat(1);
    needFloat(2);
    n.dtype = DType::F32;
    n.shape = broadcastShapes(
        operand(0).shape, broadcastShapes(operand(1).shape, operand(2).shape, n.loc, dn),
        n.loc, dn);
    return;
  case OpKind::Reduce: {
    needFloat(0);
    const Shape &s = operand(0).shape;
    checkAxes(s);
    n.dtype = DType::F32;
    n.shape.clear();
    for (size_t i = 0; i < s.size(); ++i) {
      if (n.axes & (1u << i)) {
        if (n.keepdims) n.shape.push_back(Dim::fixed(1));
      } else {
        n.shape.push_back(s[i]);
      }
    }
    return;
  }
  case OpKind::Row:
    needFloat(0);
    checkAxes(operand(0).shape);
    if (std::popcount(n.axes) != 1) internalError("{} takes exactly one axis", opName(n.op));
    n.dtype = DType::F32;
    n.shape = operand(0).shape;
    return;
  case OpKind::Layout: {
    const Shape &s = operand(0).shape;
    if (n.op == Op::Transpose) {
      if (s.size() != 2)
        userError(n.loc, "transpose expects a 2-D tensor, got shape {}", shapeStr(s));
      n.shape = {s[1], s[0]};
    } else if (n.op == Op::Reshape) {
      Dim a, b;
      if (!equalButOnes(s, n.shape) && (!shapeProduct(s, a) || !shapeProduct(n.shape, b) || a != b))
        userError(n.loc, "cannot reshape {} to {}: the sizes differ", shapeStr(s),
                  shapeStr(n.shape));
      if (n.shape.size() > kMaxRank) userError(n.loc, "tensors may have at most 8 dims");
    } else {  // Broadcast
      if (broadcastShapes(s, n.shape, n.loc, dn) != n.shape)
        userError(n.loc, "cannot broadcast {} to {}", shapeStr(s), shapeStr(n.shape));
    }
    n.dtype = operand(0).dtype;
    return;
  }
  case OpKind::Special:
    break;
  }

  switch (n.op) {
  case Op::MatMul: {
    needFloat(0);
    needFloat(1);
    const Shape &a = operand(0).shape, &b = operand(1).shape;
    if (a.size() != 2 || b.size() != 2)
      internalError("matmul of {} and {}: the front end reshapes vectors to matrices",
                    shapeStr(a), shapeStr(b));
    Dim m = a[n.transA ? 1 : 0], ka = a[n.transA ? 0 : 1];
    Dim kb = b[n.transB ? 1 : 0], nn = b[n.transB ? 0 : 1];
    if (ka != kb)
      userError(n.loc, "{} @ {}: inner sizes {} and {} differ", shapeStr(a), shapeStr(b),
                formatDim(ka, dn), formatDim(kb, dn));
    n.dtype = DType::F32;
    n.shape = {m, nn};
    return;
  }
  case Op::OneHot:
    if (operand(0).dtype != DType::I32)
      userError(n.loc, "onehot expects int labels, got a float tensor");
    if (n.classes <= 0) userError(n.loc, "onehot needs a positive number of classes");
    n.dtype = DType::F32;
    n.shape = operand(0).shape;
    n.shape.push_back(Dim::fixed(n.classes));
    if (n.shape.size() > kMaxRank) userError(n.loc, "tensors may have at most 8 dims");
    return;
  case Op::ArgMax: {
    needFloat(0);
    const Shape &s = operand(0).shape;
    checkAxes(s);
    if (std::popcount(n.axes) != 1) internalError("argmax takes exactly one axis");
    n.dtype = DType::I32;
    n.shape.clear();
    for (size_t i = 0; i < s.size(); ++i)
      if (!(n.axes & (1u << i))) n.shape.push_back(s[i]);
    return;
  }
  default:
    internalError("no shape rule for op {}", opName(n.op));
  }
}

// ---------------------------------------------------------------------------------------
// Builder

ValueId Builder::addUnchecked(Node n) {
  f_.nodes.push_back(std::move(n));
  return f_.size() - 1;
}

ValueId Builder::add(Node n) {
  if (!n.loc.valid()) {
    n.loc = loc;
    n.callLoc = callLoc;
  }
  if (n.srcName.empty()) n.srcName = srcName;
  inferType(f_, n);
  return addUnchecked(std::move(n));
}

ValueId Builder::leaf(Op op, const std::string &name, DType t, Shape s) {
  Node n;
  n.op = op;
  n.name = name;
  n.dtype = t;
  n.shape = std::move(s);
  return add(std::move(n));
}

ValueId Builder::constant(double v, Shape s) {
  Node n;
  n.op = Op::Const;
  n.value = v;
  n.shape = std::move(s);
  return add(std::move(n));
}

ValueId Builder::dimSize(Dim d) {
  Node n;
  n.op = Op::DimSize;
  n.dim = d;
  return add(std::move(n));
}

ValueId Builder::unary(Op op, ValueId x, double attr) {
  Node n;
  n.op = op;
  n.operands = {x};
  n.value = attr;
  return add(std::move(n));
}

ValueId Builder::binary(Op op, ValueId a, ValueId b, double attr) {
  Node n;
  n.op = op;
  n.operands = {a, b};
  n.value = attr;
  return add(std::move(n));
}

ValueId Builder::where(ValueId c, ValueId a, ValueId b) {
  Node n;
  n.op = Op::Where;
  n.operands = {c, a, b};
  return add(std::move(n));
}

ValueId Builder::reduce(Op op, ValueId x, uint32_t axes, bool keepdims) {
  Node n;
  n.op = op;
  n.operands = {x};
  n.axes = axes;
  n.keepdims = keepdims;
  return add(std::move(n));
}

ValueId Builder::row(Op op, ValueId x, int axis) {
  Node n;
  n.op = op;
  n.operands = {x};
  n.axes = 1u << axis;
  return add(std::move(n));
}

ValueId Builder::matmul(ValueId a, ValueId b, bool transA, bool transB) {
  Node n;
  n.op = Op::MatMul;
  n.operands = {a, b};
  n.transA = transA;
  n.transB = transB;
  return add(std::move(n));
}

ValueId Builder::transpose(ValueId x) { return unaryLayout(Op::Transpose, x, {}); }

ValueId Builder::reshape(ValueId x, Shape s) { return unaryLayout(Op::Reshape, x, std::move(s)); }

ValueId Builder::broadcast(ValueId x, Shape s) {
  return unaryLayout(Op::Broadcast, x, std::move(s));
}

ValueId Builder::unaryLayout(Op op, ValueId x, Shape s) {
  Node n;
  n.op = op;
  n.operands = {x};
  n.shape = std::move(s);
  return add(std::move(n));
}

ValueId Builder::onehot(ValueId labels, int64_t classes) {
  Node n;
  n.op = Op::OneHot;
  n.operands = {labels};
  n.classes = classes;
  return add(std::move(n));
}

ValueId Builder::argmax(ValueId x, int axis) {
  Node n;
  n.op = Op::ArgMax;
  n.operands = {x};
  n.axes = 1u << axis;
  return add(std::move(n));
}

// ---------------------------------------------------------------------------------------
// Verifier

void verify(const Function &f) {
  for (ValueId v = 0; v < f.size(); ++v) {
    const Node &n = f.node(v);
    for (ValueId o : n.operands)
      if (o < 0 || o >= v)
        internalError("verify {}: %{} ({}) uses %{}, which does not precede it", f.name, v,
                      opName(n.op), o);
    Node copy = n;
    try {
      inferType(f, copy);
    } catch (const UserError &e) {
      internalError("verify {}: %{} ({}) is ill-typed: {}", f.name, v, opName(n.op), e.what());
    }
    if (copy.dtype != n.dtype || copy.shape != n.shape)
      internalError("verify {}: %{} ({}) has type {}{}, but its operands give {}{}", f.name, v,
                    opName(n.op), dtypeName(n.dtype), formatShape(n.shape, f.dimNames),
                    dtypeName(copy.dtype), formatShape(copy.shape, f.dimNames));
  }
  for (const Result &r : f.results)
    if (r.value < 0 || r.value >= f.size())
      internalError("verify {}: result {} refers to %{}, which does not exist", f.name, r.name,
                    r.value);
}

}  // namespace gradc::ir
