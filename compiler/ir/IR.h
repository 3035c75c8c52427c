// The tensor IR: an SSA graph of typed tensor ops.
//
// A Function is a list of Nodes in topological order; a node's operands are ValueIds (the
// index of an earlier node). Every node is one value with a dtype and a shape. The leaves
// (input, param, state, hyper) are the function's arguments, in the order they appear;
// `results` names the values the function returns. Shapes are static except for symbolic
// dims (`dim B`), bound when a batch arrives.
//
// The forward program, the raw gradient, the simplified gradient and the fused step are
// all Functions of this one IR, so each can be printed, checked, simplified, interpreted and
// compiled the same way. Passes do not mutate in place; they build a new Function (see
// Builder.h), which keeps every pass a plain walk over `nodes`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "support/Diagnostics.h"

namespace gradc::ir {

enum class Op : uint8_t {
#define GRADC_OP(Enum, Name, Kind, Arity) Enum,
#include "ir/Ops.def"
};
constexpr int kNumOps = 0
#define GRADC_OP(Enum, Name, Kind, Arity) +1
#include "ir/Ops.def"
    ;

enum class OpKind : uint8_t { Leaf, Unary, Binary, Compare, Ternary, Reduce, Row, Layout, Special };

const char *opName(Op op);
OpKind opKind(Op op);
int opArity(Op op);
bool isElementwise(Op op);  // Unary, Binary, Compare, Ternary
bool isLeaf(Op op);

enum class DType : uint8_t { F32, I32 };
const char *dtypeName(DType t);

/// One dimension: factor * (product of the symbolic dims in `syms`), e.g. 64, B, or 8*B.
/// `syms` is a bit set over Function::dimNames (at most 32 symbolic dims).
struct Dim {
  int64_t factor = 1;
  uint32_t syms = 0;
  static Dim fixed(int64_t n) { return {n, 0}; }
  static Dim sym(int index) { return {1, 1u << index}; }
  bool isStatic() const { return syms == 0; }
  bool operator==(const Dim &o) const { return factor == o.factor && syms == o.syms; }
  bool operator!=(const Dim &o) const { return !(*this == o); }
  /// The value with the symbolic dims bound to `dimValues` (indexed like dimNames).
  int64_t eval(const std::vector<int64_t> &dimValues) const;
};

using Shape = std::vector<Dim>;
constexpr int kMaxRank = 8;

/// Prints a dim or shape with the function's dim names: `B`, `8*B`, `[B,64]`.
std::string formatDim(const Dim &d, const std::vector<std::string> &dimNames);
std::string formatShape(const Shape &s, const std::vector<std::string> &dimNames);
/// The same as messages to the user write it: `[B, 64]`.
std::string formatShapeForUser(const Shape &s, const std::vector<std::string> &dimNames);
/// Number of elements, with the symbolic dims bound.
int64_t numElements(const Shape &s, const std::vector<int64_t> &dimValues);

using ValueId = int32_t;
constexpr ValueId kNoValue = -1;

/// sigmoid(x) is 0 for x < -sigmoidZeroBelow(f64), as in PyTorch: its 1 / (1 + exp(-x)) divides
/// by inf once exp(-x) overflows (x below -log of the largest float or double), where
/// exp(x) / (1 + exp(x)) would still give a subnormal (and bce's log of it another loss than
/// PyTorch's clamp to -100). The bound is the largest value whose exp is finite.
constexpr double sigmoidZeroBelow(bool f64) { return f64 ? 0x1.62e42fefa39efp+9 : 0x1.62e42ep+6; }

struct Node {
  Op op = Op::Const;
  DType dtype = DType::F32;
  Shape shape;
  std::vector<ValueId> operands;

  // Attributes; each op uses the few that apply to it (the printer shows only those).
  std::string name;      // Input, Param, State, Hyper: the argument's name
  double value = 0;      // Const: the value; LeakyRelu: the slope; Pow: added to the exponent
                         // in the step's float type (a^(b + value); the gradient's b - 1)
  uint32_t axes = 0;     // Reduce, Row, ArgMax: bit set of axes of the operand
  bool keepdims = false; // Reduce
  bool transA = false;   // MatMul: use the transpose of operand 0
  bool transB = false;   // MatMul: use the transpose of operand 1
  int64_t classes = 0;   // OneHot
  Dim dim;               // DimSize

  // Where the value came from: the model place and the name it was bound to (if any).
  // Inlined defs keep the place of the expression inside the def, and in callLoc that of
  // the outermost call (the line that binds the value; invalid outside defs). Gradient
  // values keep the places of the forward value they belong to, and a name such as `d.h`.
  Loc loc;
  Loc callLoc;
  std::string srcName;
};

enum class ResultKind : uint8_t {
  Loss,      // the scalar being minimised
  Metric,    // a reported scalar
  Output,    // what predict writes
  Grad,      // d loss / d param  (name = the param's name)
  NewParam,  // the updated param (name = the param's name); written back in place
  NewState,  // the updated optimiser state (name = the state's name); written back in place
};
const char *resultKindName(ResultKind k);

struct Result {
  std::string name;
  ValueId value;
  ResultKind kind;
};

struct Function {
  std::string name;
  std::vector<std::string> dimNames;  // symbolic dims, e.g. {"B"}
  std::vector<Node> nodes;            // topological order; ValueId = index
  std::vector<Result> results;

  const Node &node(ValueId v) const { return nodes.at(static_cast<size_t>(v)); }
  Node &node(ValueId v) { return nodes.at(static_cast<size_t>(v)); }
  int size() const { return static_cast<int>(nodes.size()); }

  /// The arguments: leaf nodes of kind Input, Param, State, Hyper in order of appearance.
  std::vector<ValueId> arguments() const;
  /// The value of the result with this kind and name, or kNoValue.
  ValueId findResult(ResultKind kind, const std::string &name = "") const;
  /// The argument node with this op and name, or kNoValue.
  ValueId findArgument(Op op, const std::string &name) const;
};

/// Checks the invariants of a function: operands precede their users, arities match the
/// op table, every node's shape and dtype are what the shape rules give, results exist.
/// Throws InternalError naming the first broken invariant. Run after every pass in debug
/// builds (and always in tests).
void verify(const Function &f);

}  // namespace gradc::ir
