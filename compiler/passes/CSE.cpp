// Common-subexpression elimination: two nodes with the same op, operands and attributes
// are one value. Operands are renumbered first, so one walk in topological order finds
// every duplicate; the first node (in the forward part, when it is there) survives with its
// place and source name.
#include <map>
#include <cstring>

#include "ir/Builder.h"
#include "passes/Simplify.h"

namespace gradc::passes {

using namespace ir;

namespace {

std::string keyOf(const Function &f, const Node &n) {
  uint64_t bits;
  std::memcpy(&bits, &n.value, sizeof bits);
  std::string key = fmt::format("{} {} {} {}|{}|{}|{}|{}{}{}|{}|{},{}|", static_cast<int>(n.op),
                                static_cast<int>(n.dtype), formatShape(n.shape, f.dimNames),
                                n.name.size(), n.name, bits, n.axes, n.keepdims ? 1 : 0,
                                n.transA ? 1 : 0, n.transB ? 1 : 0, n.classes, n.dim.factor,
                                n.dim.syms);
  for (ValueId o : n.operands) key += fmt::format("{},", o);
  return key;
}

}  // namespace

Function eliminateCommonSubexpressions(const Function &f, bool *changed) {
  Function out;
  out.name = f.name;
  out.dimNames = f.dimNames;
  Builder b(out);
  std::vector<ValueId> map(static_cast<size_t>(f.size()), kNoValue);
  std::map<std::string, ValueId> seen;
  for (ValueId v = 0; v < f.size(); ++v) {
    Node n = f.node(v);
    for (ValueId &o : n.operands) o = map[static_cast<size_t>(o)];
    std::string key = keyOf(out, n);
    auto it = seen.find(key);
    if (it != seen.end()) {
      map[static_cast<size_t>(v)] = it->second;
      if (changed) *changed = true;
      continue;
    }
    ValueId nv = b.addUnchecked(std::move(n));
    seen.emplace(std::move(key), nv);
    map[static_cast<size_t>(v)] = nv;
  }
  for (Result r : f.results) {
    r.value = map[static_cast<size_t>(r.value)];
    out.results.push_back(r);
  }
  return out;
}

}  // namespace gradc::passes
