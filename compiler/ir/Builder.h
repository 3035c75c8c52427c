// Builder: the one way to add nodes to a Function.
//
// Each helper fills in the node, computes its dtype and shape from the shape rules
// (inferType) and appends it. A shape error is a UserError at the builder's current
// location, so the front end gets its compile-time shape checking from the same rules the
// verifier uses. Passes use the same builder to make new functions.
#pragma once

#include "ir/IR.h"

namespace gradc::ir {

/// Sets n.dtype and n.shape from the operands (already in f) and the attributes.
/// Throws UserError at n.loc when the operands do not fit the op.
void inferType(const Function &f, Node &n);

/// NumPy broadcasting of two shapes; throws UserError at loc when they do not broadcast.
Shape broadcastShapes(const Shape &a, const Shape &b, Loc loc,
                      const std::vector<std::string> &dimNames);

class Builder {
public:
  explicit Builder(Function &f) : f_(f) {}
  Function &function() { return f_; }

  /// The place, call place (Node::callLoc) and source name given to the nodes created next.
  Loc loc;
  Loc callLoc;
  std::string srcName;

  ValueId input(const std::string &name, DType t, Shape s) { return leaf(Op::Input, name, t, s); }
  ValueId param(const std::string &name, Shape s) { return leaf(Op::Param, name, DType::F32, s); }
  ValueId state(const std::string &name, Shape s) { return leaf(Op::State, name, DType::F32, s); }
  ValueId hyper(const std::string &name) { return leaf(Op::Hyper, name, DType::F32, {}); }
  ValueId constant(double v, Shape s = {});
  ValueId dimSize(Dim d);

  ValueId unary(Op op, ValueId x, double attr = 0);  // attr: LeakyRelu slope
  ValueId binary(Op op, ValueId a, ValueId b, double attr = 0);  // attr: Pow's exponent offset
  ValueId where(ValueId c, ValueId a, ValueId b);
  ValueId reduce(Op op, ValueId x, uint32_t axes, bool keepdims);
  ValueId row(Op op, ValueId x, int axis);
  ValueId matmul(ValueId a, ValueId b, bool transA = false, bool transB = false);
  ValueId transpose(ValueId x);
  ValueId reshape(ValueId x, Shape s);
  ValueId broadcast(ValueId x, Shape s);
  ValueId onehot(ValueId labels, int64_t classes);
  ValueId argmax(ValueId x, int axis);

  /// Appends a node whose op, operands and attributes are set; computes dtype and shape.
  ValueId add(Node n);
  /// Appends a node exactly as given (dtype and shape already set), e.g. a copy.
  ValueId addUnchecked(Node n);

  // Short forms for rules that read like math.
  ValueId add(ValueId a, ValueId b) { return binary(Op::Add, a, b); }
  ValueId sub(ValueId a, ValueId b) { return binary(Op::Sub, a, b); }
  ValueId mul(ValueId a, ValueId b) { return binary(Op::Mul, a, b); }
  ValueId div(ValueId a, ValueId b) { return binary(Op::Div, a, b); }
  ValueId neg(ValueId x) { return unary(Op::Neg, x); }

private:
  ValueId leaf(Op op, const std::string &name, DType t, Shape s);
  ValueId unaryLayout(Op op, ValueId x, Shape s);
  Function &f_;
};

}  // namespace gradc::ir
