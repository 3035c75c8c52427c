// Dead-code elimination: only the values the results need survive. Arguments (inputs,
// params, states, hypers) always stay, so the function's signature does not change.
#include "ir/Builder.h"
#include "passes/Simplify.h"

namespace gradc::passes {

using namespace ir;

Function eliminateDeadCode(const Function &f, bool *changed) {
  std::vector<bool> live(static_cast<size_t>(f.size()), false);
  for (const Result &r : f.results) live[static_cast<size_t>(r.value)] = true;
  for (ValueId v = f.size() - 1; v >= 0; --v) {
    const Node &n = f.node(v);
    if (n.op == Op::Input || n.op == Op::Param || n.op == Op::State || n.op == Op::Hyper)
      live[static_cast<size_t>(v)] = true;
    if (!live[static_cast<size_t>(v)]) continue;
    for (ValueId o : n.operands) live[static_cast<size_t>(o)] = true;
  }
  Function out;
  out.name = f.name;
  out.dimNames = f.dimNames;
  Builder b(out);
  std::vector<ValueId> map(static_cast<size_t>(f.size()), kNoValue);
  for (ValueId v = 0; v < f.size(); ++v) {
    if (!live[static_cast<size_t>(v)]) {
      if (changed) *changed = true;
      continue;
    }
    Node n = f.node(v);
    for (ValueId &o : n.operands) o = map[static_cast<size_t>(o)];
    map[static_cast<size_t>(v)] = b.addUnchecked(std::move(n));
  }
  for (Result r : f.results) {
    r.value = map[static_cast<size_t>(r.value)];
    out.results.push_back(r);
  }
  return out;
}

}  // namespace gradc::passes
