// Fusion decisions (see Fusion.h for the rule).
#include "codegen/Fusion.h"

#include <algorithm>

namespace gradc::codegen {

using namespace ir;

MatMulOperand matmulOperand(const Function &f, ValueId operand) {
  const Node &n = f.node(operand);
  if (n.op == Op::Transpose) return {n.operands[0], true};
  return {operand, false};
}

namespace {

// An Inline value is evaluated by recursion at each index (the lowering and the loop plan's
// printer descend through its operands), so a chain of them is cut at this depth: the value
// at the limit becomes a kernel, which the next loop may still host.
constexpr int kMaxInlineDepth = 128;

bool isTrivial(const Function &f, ValueId v) {
  const Node &n = f.node(v);
  if (n.op == Op::Const || n.op == Op::DimSize) return true;
  if (n.op == Op::Broadcast || n.op == Op::StopGradient) return isTrivial(f, n.operands[0]);
  return false;
}

// The operands a node's loop uses, with matmul transposes looked through.
std::vector<ValueId> usedOperands(const Function &f, const Node &n) {
  if (n.op != Op::MatMul) return n.operands;
  return {matmulOperand(f, n.operands[0]).value, matmulOperand(f, n.operands[1]).value};
}

}  // namespace

std::vector<ValueId> kernelReads(const Function &f, const FusionPlan &p, ValueId v) {
  std::vector<ValueId> out;
  auto visit = [&](auto &self, ValueId u) -> void {
    Role r = p.role[static_cast<size_t>(u)];
    if (r == Role::Inline) {
      for (ValueId w : f.node(u).operands) self(self, w);
      return;
    }
    if (r == Role::Fused) {
      for (ValueId w : usedOperands(f, f.node(u))) self(self, w);
      return;
    }
    // A constant that is a kernel (a result, or a reshape's operand) has a buffer like any other.
    ValueId root = p.root[static_cast<size_t>(u)];
    if (std::find(out.begin(), out.end(), root) == out.end()) out.push_back(root);
  };
  for (ValueId u : usedOperands(f, f.node(v))) visit(visit, u);
  return out;
}

bool readsOnlyAtSameIndex(const Function &f, const FusionPlan &fp, ValueId v, ValueId target) {
  const Shape &shape = f.node(v).shape;
  bool ok = true;
  auto walk = [&](auto &self, ValueId u, bool good) -> void {
    for (ValueId w : f.node(u).operands) {
      const Node &wn = f.node(w);
      Role r = fp.role[static_cast<size_t>(w)];
      if (r == Role::Inline) {
        self(self, w, good && isElementwise(wn.op) && wn.shape == shape);
      } else if (r == Role::Fused) {
        std::vector<ValueId> inner = kernelReads(f, fp, w);
        if (std::find(inner.begin(), inner.end(), target) != inner.end()) ok = false;
      } else if (fp.root[static_cast<size_t>(w)] == target && !(good && w == target && wn.shape == shape)) {
        ok = false;
      }
    }
  };
  walk(walk, v, isElementwise(f.node(v).op));
  return ok;
}

FusionPlan planFusion(const Function &f) {
  size_t n = static_cast<size_t>(f.size());
  FusionPlan p;
  p.role.assign(n, Role::Dead);
  p.root.resize(n);
  for (size_t i = 0; i < n; ++i) p.root[i] = static_cast<ValueId>(i);

  std::vector<bool> live(n, false), isResult(n, false), needsBuffer(n, false);
  std::vector<int> uses(n, 0);
  std::vector<ValueId> user(n, kNoValue);
  std::vector<int> inlineDepth(n, 0);
  for (const Result &r : f.results) {
    live[static_cast<size_t>(r.value)] = true;
    isResult[static_cast<size_t>(r.value)] = true;
  }
  for (ValueId v = f.size() - 1; v >= 0; --v) {
    const Node &node = f.node(v);
    if (!live[static_cast<size_t>(v)]) continue;
    for (ValueId u : usedOperands(f, node)) {
      live[static_cast<size_t>(u)] = true;
      uses[static_cast<size_t>(u)]++;
      user[static_cast<size_t>(u)] = v;
      if (node.op == Op::MatMul || node.op == Op::Reshape) needsBuffer[static_cast<size_t>(u)] = true;
    }
  }

  for (ValueId v = 0; v < f.size(); ++v) {
    size_t i = static_cast<size_t>(v);
    const Node &node = f.node(v);
    if (!live[i]) continue;
    Role &role = p.role[i];
    if (node.op == Op::Input || node.op == Op::Param || node.op == Op::State ||
        node.op == Op::Hyper) {
      role = Role::Leaf;
    } else if (isResult[i]) {
      role = Role::Kernel;
    } else if (node.op == Op::Reshape) {
      role = Role::Alias;
      p.root[i] = p.root[static_cast<size_t>(node.operands[0])];
    } else if (needsBuffer[i]) {
      role = Role::Kernel;
    } else if (isTrivial(f, v)) {
      role = Role::Inline;
    } else {
      OpKind k = opKind(node.op);
      bool fusible = isElementwise(node.op) || k == OpKind::Layout || node.op == Op::OneHot;
      ValueId w = user[i];
      // The single user walks the same elements when it has the same shape, or when it
      // reduces over this value (reductions, rows and argmax loop over their operand).
      bool sameWalk = w != kNoValue &&
                      (f.node(w).shape == node.shape || opKind(f.node(w).op) == OpKind::Reduce ||
                       opKind(f.node(w).op) == OpKind::Row || f.node(w).op == Op::ArgMax ||
                       f.node(w).op == Op::Transpose);
      role = fusible && uses[i] == 1 && sameWalk ? Role::Inline : Role::Kernel;
    }
    if (role == Role::Inline) {
      int depth = 0;
      for (ValueId u : node.operands) depth = std::max(depth, inlineDepth[static_cast<size_t>(u)]);
      if (depth < kMaxInlineDepth || isTrivial(f, v))
        inlineDepth[i] = depth + 1;
      else
        role = Role::Kernel;
    }
  }
  std::vector<int> readers(n, 0);
  for (ValueId v = 0; v < f.size(); ++v) {
    if (p.role[static_cast<size_t>(v)] != Role::Kernel) continue;
    for (ValueId r : kernelReads(f, p, v)) readers[static_cast<size_t>(r)]++;
  }
  auto elementwiseKernel = [&](ValueId v) {
    return p.role[static_cast<size_t>(v)] == Role::Kernel && isElementwise(f.node(v).op);
  };
  // Loop groups, in node order: u joins v (with the kernels that joined u) when v is u's
  // only reader and reads it at the same index.
  std::vector<ValueId> hostOf(n);
  for (size_t i = 0; i < n; ++i) hostOf[i] = static_cast<ValueId>(i);
  for (ValueId v = 0; v < f.size(); ++v) {
    if (!elementwiseKernel(v)) continue;
    for (ValueId u : kernelReads(f, p, v)) {
      if (!elementwiseKernel(u) || hostOf[static_cast<size_t>(u)] != u || readers[static_cast<size_t>(u)] != 1 ||
          f.node(u).shape != f.node(v).shape || !readsOnlyAtSameIndex(f, p, v, u))
        continue;
      for (ValueId w = 0; w <= u; ++w)
        if (hostOf[static_cast<size_t>(w)] == u) hostOf[static_cast<size_t>(w)] = v;
    }
  }
  // Matmul epilogues: decided in node order, so a group's reads are final when its host is seen.
  std::vector<ValueId> fusedInto(n, kNoValue);
  for (ValueId v = 0; v < f.size(); ++v) {
    const Node &e = f.node(v);
    if (!elementwiseKernel(v) || hostOf[static_cast<size_t>(v)] != v) continue;
    std::vector<ValueId> group;
    for (ValueId w = 0; w <= v; ++w)
      if (p.role[static_cast<size_t>(w)] == Role::Kernel && hostOf[static_cast<size_t>(w)] == v) group.push_back(w);
    std::vector<ValueId> candidates;
    for (ValueId w : group)
      for (ValueId m : kernelReads(f, p, w))
        if (std::find(candidates.begin(), candidates.end(), m) == candidates.end()) candidates.push_back(m);
    for (ValueId m : candidates) {
      const Node &mn = f.node(m);
      if (mn.op != Op::MatMul || p.role[static_cast<size_t>(m)] != Role::Kernel || isResult[static_cast<size_t>(m)] ||
          mn.shape != e.shape)
        continue;
      int groupReaders = 0;
      bool sameIndex = true;
      for (ValueId w : group) {
        std::vector<ValueId> r = kernelReads(f, p, w);
        if (std::find(r.begin(), r.end(), m) == r.end()) continue;
        ++groupReaders;
        sameIndex = sameIndex && readsOnlyAtSameIndex(f, p, w, m);
      }
      if (groupReaders != readers[static_cast<size_t>(m)] || !sameIndex) continue;
      p.role[static_cast<size_t>(m)] = Role::Fused;
      fusedInto[static_cast<size_t>(v)] = m;
      break;
    }
  }
  std::vector<size_t> kernelIndex(n);
  for (ValueId v = 0; v < f.size(); ++v) {
    if (p.role[static_cast<size_t>(v)] != Role::Kernel) continue;
    kernelIndex[static_cast<size_t>(v)] = p.kernels.size();
    p.kernels.push_back(v);
    p.reads.push_back(kernelReads(f, p, v));
    p.epilogueOf.push_back(fusedInto[static_cast<size_t>(v)]);
  }
  for (ValueId v : p.kernels) p.host.push_back(kernelIndex[static_cast<size_t>(hostOf[static_cast<size_t>(v)])]);
  for (size_t k = 0; k < p.kernels.size(); ++k)
    p.inLoopOnly.push_back(p.host[k] != k && !isResult[static_cast<size_t>(p.kernels[k])]);
  return p;
}

}  // namespace gradc::codegen
