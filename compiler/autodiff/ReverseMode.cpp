// Reverse mode: the driver around the gradient rules.
//
// The gradient function starts as a copy of the forward nodes (same ids). Walking the nodes
// from the loss backwards, each value's adjoint (dL/dvalue, its shape) is handed to its op's
// rule once all of its users have contributed, which the topological order guarantees. The
// driver, not the rules, sums a contribution back to the shape of a broadcast operand and
// adds up the contributions of values used more than once. Values that do not depend on a
// param through differentiable ops (inputs, constants, anything behind stop_gradient, a
// comparison, argmax, onehot or an int value) get no adjoint at all.
//
// Gradient nodes carry the place of the forward value whose gradient they compute and the
// source name `d.NAME` (`d.h`, `d.W1`), so the printed IR names the model line of each.
#include "autodiff/ReverseMode.h"

#include "autodiff/GradRules.h"
#include "ir/Builder.h"

namespace gradc::autodiff {

using namespace ir;

namespace {

// Sums (or broadcasts) a contribution to the shape of the operand it belongs to.
ValueId fitShape(Builder &b, ValueId v, const Shape &target) {
  Function &f = b.function();
  Shape s = f.node(v).shape;
  if (s == target) return v;
  if (broadcastShapes(target, s, b.loc, f.dimNames) == s) {
    size_t extra = s.size() - target.size();
    uint32_t axes = 0;
    for (size_t i = 0; i < s.size(); ++i)
      if (i < extra || (target[i - extra] == Dim::fixed(1) && s[i] != Dim::fixed(1)))
        axes |= 1u << i;
    if (axes) v = b.reduce(Op::Sum, v, axes, false);
    if (f.node(v).shape != target) v = b.reshape(v, target);
    return v;
  }
  if (broadcastShapes(s, target, b.loc, f.dimNames) == target) return b.broadcast(v, target);
  internalError("gradient of shape {} does not fit an operand of shape {}",
                formatShape(s, f.dimNames), formatShape(target, f.dimNames));
}

// `d.NAME` for the gradient of a value bound to NAME (of a param or input: its name). The
// gradient of an unnamed part of an expression has no name, only the expression's place.
void placeAt(Builder &b, const Node &n, const Node &user) {
  b.loc = n.loc.valid() ? n.loc : user.loc;
  b.callLoc = n.loc.valid() ? n.callLoc : user.callLoc;
  b.srcName.clear();
  if (!n.srcName.empty()) b.srcName = "d." + n.srcName;
  else if (n.op == Op::Param || n.op == Op::Input) b.srcName = "d." + n.name;
}

}  // namespace

Function differentiate(const Function &fwd) {
  ValueId loss = fwd.findResult(ResultKind::Loss);
  if (loss == kNoValue) internalError("differentiate {}: the function has no loss", fwd.name);

  Function g;
  g.name = fwd.name + "_grad";
  g.dimNames = fwd.dimNames;
  Builder b(g);
  for (const Node &n : fwd.nodes) b.addUnchecked(n);

  // active: depends on a param through ops that pass gradients on.
  size_t count = static_cast<size_t>(fwd.size());
  std::vector<bool> active(count, false);
  for (ValueId v = 0; v < fwd.size(); ++v) {
    const Node &n = fwd.node(v);
    GradKind kind = gradKind(n.op);
    if (n.op == Op::Param) active[static_cast<size_t>(v)] = true;
    if (n.dtype != DType::F32 || kind == GradKind::Leaf || kind == GradKind::NoGradient) continue;
    for (ValueId o : n.operands)
      if (active[static_cast<size_t>(o)]) active[static_cast<size_t>(v)] = true;
  }

  std::vector<ValueId> adj(count, kNoValue);
  placeAt(b, fwd.node(loss), fwd.node(loss));
  adj[static_cast<size_t>(loss)] = b.constant(1.0, fwd.node(loss).shape);

  for (ValueId v = loss; v >= 0; --v) {
    ValueId gv = adj[static_cast<size_t>(v)];
    const Node &n = fwd.node(v);
    if (gv == kNoValue || !active[static_cast<size_t>(v)] || isLeaf(n.op)) continue;
    GradRule rule = gradRule(n.op);
    if (!rule) {
      if (gradKind(n.op) == GradKind::Missing)
        internalError("no gradient rule for op {}", opName(n.op));
      continue;
    }
    RuleArgs args{b, fwd, n, v, gv};
    for (size_t i = 0; i < n.operands.size(); ++i) {
      ValueId o = n.operands[i];
      if (!active[static_cast<size_t>(o)]) continue;
      placeAt(b, fwd.node(o), n);
      ValueId c = rule(args, static_cast<int>(i));
      if (c == kNoValue) continue;
      c = fitShape(b, c, fwd.node(o).shape);
      // A rule that passes its adjoint on unchanged (add, sub, broadcast) makes no node; an
      // unnamed adjoint then takes the name, and the place, of the value it is also the gradient of.
      if (c >= fwd.size() && g.node(c).srcName.empty() && !b.srcName.empty()) {
        g.node(c).srcName = b.srcName;
        g.node(c).loc = b.loc;
        g.node(c).callLoc = b.callLoc;
      }
      ValueId &a = adj[static_cast<size_t>(o)];
      a = a == kNoValue ? c : b.add(a, c);
    }
  }

  for (const Result &r : fwd.results)
    if (r.kind == ResultKind::Loss || r.kind == ResultKind::Metric) g.results.push_back(r);
  for (ValueId v = 0; v < fwd.size(); ++v) {
    const Node &n = fwd.node(v);
    if (n.op != Op::Param) continue;
    ValueId d = adj[static_cast<size_t>(v)];
    if (d == kNoValue) {
      placeAt(b, n, n);
      d = b.constant(0.0, n.shape);
    }
    g.results.push_back({n.name, d, ResultKind::Grad});
  }
  verify(g);
  return g;
}

}  // namespace gradc::autodiff
