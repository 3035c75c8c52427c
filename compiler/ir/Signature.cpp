// signatureOf: the slots of a Function under the calling convention of runtime/Kernel.h.
#include "ir/Signature.h"

#include <bit>

namespace gradc::ir {

namespace {

std::vector<int64_t> slotShape(const Function &f, const Shape &s, const std::string &what) {
  std::vector<int64_t> out;
  for (const Dim &d : s) {
    if (d.isStatic()) out.push_back(d.factor);
    else if (d.factor == 1 && std::popcount(d.syms) == 1) out.push_back(-1 - std::countr_zero(d.syms));
    else
      internalError("{}: {} has the compound dim {}, which a slot cannot describe", f.name, what,
                    formatDim(d, f.dimNames));
  }
  return out;
}

rt::SlotKind argumentKind(Op op) {
  switch (op) {
  case Op::Input: return rt::SlotKind::Input;
  case Op::Param: return rt::SlotKind::Param;
  case Op::State: return rt::SlotKind::State;
  default: return rt::SlotKind::Hyper;
  }
}

}  // namespace

ValueId writeBackArgument(const Function &f, const Result &r) {
  if (r.kind == ResultKind::NewParam) return f.findArgument(Op::Param, r.name);
  if (r.kind == ResultKind::NewState) return f.findArgument(Op::State, r.name);
  return kNoValue;
}

rt::Signature signatureOf(const Function &f) {
  rt::Signature sig;
  sig.dimNames = f.dimNames;
  for (ValueId v : f.arguments()) {
    const Node &n = f.node(v);
    sig.slots.push_back({n.name, argumentKind(n.op), n.dtype == DType::I32,
                         slotShape(f, n.shape, n.name)});
  }
  for (const Result &r : f.results) {
    const Node &n = f.node(r.value);
    rt::SlotKind kind = rt::SlotKind::Loss;
    switch (r.kind) {
    case ResultKind::Loss: kind = rt::SlotKind::Loss; break;
    case ResultKind::Metric: kind = rt::SlotKind::Metric; break;
    case ResultKind::Output: kind = rt::SlotKind::Output; break;
    case ResultKind::Grad: kind = rt::SlotKind::Grad; break;
    case ResultKind::NewParam:
    case ResultKind::NewState: {
      ValueId arg = writeBackArgument(f, r);
      if (arg == kNoValue)
        internalError("{}: result {} {} has no argument to be written back into", f.name,
                      resultKindName(r.kind), r.name);
      if (f.node(arg).shape != n.shape)
        internalError("{}: result {} {} does not have its argument's shape", f.name,
                      resultKindName(r.kind), r.name);
      continue;
    }
    }
    sig.slots.push_back({r.name, kind, n.dtype == DType::I32, slotShape(f, n.shape, r.name)});
  }
  return sig;
}

}  // namespace gradc::ir
