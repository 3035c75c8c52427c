// The memory plan (see MemoryPlan.h): destinations, write-back, region reuse by liveness.
#include "codegen/MemoryPlan.h"

#include "codegen/LowerToLLVM.h"

#include <algorithm>
#include <bit>

namespace gradc::codegen {

using namespace ir;

RegionMember MemoryPlan::sizeOf(const Node &n, int floatBytes) {
  RegionMember m;
  m.bytes = n.dtype == DType::I32 ? 4 : floatBytes;
  for (const Dim &d : n.shape) {
    m.bytes *= d.factor;
    for (uint32_t s = d.syms; s; s &= s - 1) m.syms.push_back(std::countr_zero(s));
  }
  std::sort(m.syms.begin(), m.syms.end());
  return m;
}

namespace {

bool isWriteBack(ResultKind k) { return k == ResultKind::NewParam || k == ResultKind::NewState; }

}  // namespace

MemoryPlan planMemory(const Function &f, const FusionPlan &fp, int floatBytes, int threads) {
  MemoryPlan mp;
  size_t n = static_cast<size_t>(f.size());
  mp.argSlot.assign(n, -1);
  for (ValueId a : f.arguments()) mp.argSlot[static_cast<size_t>(a)] = mp.numSlots++;
  for (const Result &r : f.results)
    mp.resultSlot.push_back(isWriteBack(r.kind) ? -1 : mp.numSlots++);

  // Virtual regions: one per value that needs work memory, mapped to real regions below.
  std::vector<RegionMember> virt;
  auto newVirtual = [&](ValueId v) {
    virt.push_back(MemoryPlan::sizeOf(f.node(v), floatBytes));
    return Buffer{Buffer::Region, static_cast<int>(virt.size()) - 1};
  };
  auto slot = [](int s) { return Buffer{Buffer::Slot, s}; };

  std::vector<int> kernelIndex(n, -1);
  for (size_t k = 0; k < fp.kernels.size(); ++k)
    kernelIndex[static_cast<size_t>(fp.kernels[k])] = static_cast<int>(k);
  std::vector<Buffer> dest(n);
  auto hasDest = [&](ValueId v) { return dest[static_cast<size_t>(v)].index >= 0; };
  std::vector<Step> startCopies, endCopies;
  auto copy = [](ValueId v, Buffer to, Buffer from = {}) {
    Step s;
    s.kind = Step::Copy;
    s.value = v;
    s.dest = to;
    s.src = from;
    return s;
  };

  for (size_t r = 0; r < f.results.size(); ++r) {
    const Result &res = f.results[r];
    if (isWriteBack(res.kind)) continue;
    ValueId v = res.value;
    Role role = fp.role[static_cast<size_t>(v)];
    if (role == Role::Kernel && !hasDest(v)) dest[static_cast<size_t>(v)] = slot(mp.resultSlot[r]);
    else if (role == Role::Leaf) startCopies.push_back(copy(v, slot(mp.resultSlot[r])));
    else endCopies.push_back(copy(v, slot(mp.resultSlot[r])));
  }

  for (const Result &res : f.results) {
    if (!isWriteBack(res.kind)) continue;
    ValueId p = f.findArgument(res.kind == ResultKind::NewParam ? Op::Param : Op::State, res.name);
    if (p == kNoValue) internalError("result {} {} has no argument to update", resultKindName(res.kind), res.name);
    ValueId v = res.value;
    if (v == p) continue;
    Buffer pb = slot(mp.argSlot[static_cast<size_t>(p)]);
    Role role = fp.role[static_cast<size_t>(v)];
    if (role == Role::Kernel) {
      size_t k = static_cast<size_t>(kernelIndex[static_cast<size_t>(v)]);
      // Written in place only when no loop reads the old p after this one: a kernel runs in
      // its host's loop, and within one loop, before the kernels after it in the group, at
      // each index in turn (so an earlier one may read p only at the same index).
      bool laterRead = false;
      for (size_t j = 0; j < fp.kernels.size(); ++j) {
        if (j == k || std::find(fp.reads[j].begin(), fp.reads[j].end(), p) == fp.reads[j].end()) continue;
        if (fp.host[j] > fp.host[k] ||
            (fp.host[j] == fp.host[k] && (j > k || !readsOnlyAtSameIndex(f, fp, fp.kernels[j], p))))
          laterRead = true;
      }
      const auto &own = fp.reads[k];
      bool ownOk = std::find(own.begin(), own.end(), p) == own.end() ||
                   readsOnlyAtSameIndex(f, fp, v, p);
      if (!hasDest(v) && !laterRead && ownOk) {
        dest[static_cast<size_t>(v)] = pb;
        continue;
      }
      if (!hasDest(v)) dest[static_cast<size_t>(v)] = newVirtual(v);
      endCopies.push_back(copy(v, pb));
    } else {
      // A leaf (another argument): keep its old value in a temporary until the end.
      Buffer tmp = newVirtual(v);
      startCopies.push_back(copy(v, tmp));
      endCopies.push_back(copy(v, pb, tmp));
    }
  }

  // Homes: arguments in their slots, kernels at their destinations.
  mp.home.assign(n, -1);
  auto setHome = [&](ValueId v, Buffer b) {
    mp.home[static_cast<size_t>(v)] = static_cast<int>(mp.homes.size());
    mp.homes.push_back(b);
  };
  for (ValueId a : f.arguments())
    if (fp.role[static_cast<size_t>(a)] == Role::Leaf) setHome(a, slot(mp.argSlot[static_cast<size_t>(a)]));
  for (size_t k = 0; k < fp.kernels.size(); ++k) {
    ValueId v = fp.kernels[k];
    if (fp.inLoopOnly[k]) continue;
    if (!hasDest(v)) dest[static_cast<size_t>(v)] = newVirtual(v);
    setHome(v, dest[static_cast<size_t>(v)]);
  }

  for (Step &s : startCopies) mp.steps.push_back(s);
  for (size_t k = 0; k < fp.kernels.size(); ++k) {
    if (fp.host[k] != k) continue;
    Step s;
    s.value = fp.kernels[k];
    s.matmul = fp.epilogueOf[k];
    s.dest = dest[static_cast<size_t>(s.value)];
    for (size_t j = 0; j < k; ++j)
      if (fp.host[j] == k) {
        s.also.push_back(fp.kernels[j]);
        s.alsoDest.push_back(dest[static_cast<size_t>(fp.kernels[j])]);
      }
    mp.steps.push_back(s);
  }
  for (Step &s : endCopies) mp.steps.push_back(s);
  for (Step &s : mp.steps) {
    if (s.kind == Step::Compute) {
      auto addReads = [&](ValueId v) {
        for (ValueId r : fp.reads[static_cast<size_t>(kernelIndex[static_cast<size_t>(v)])]) {
          if (!mp.hasHome(r)) continue;  // a kernel of the group kept in a register
          Buffer b = mp.homeOf(r);
          if (std::find(s.reads.begin(), s.reads.end(), b) == s.reads.end()) s.reads.push_back(b);
        }
      };
      for (ValueId v : s.also) addReads(v);
      addReads(s.value);
    } else if (s.src.index >= 0) {
      s.reads.push_back(s.src);
    } else if (fp.role[static_cast<size_t>(s.value)] == Role::Kernel ||
               fp.role[static_cast<size_t>(s.value)] == Role::Leaf) {
      s.reads.push_back(mp.homeOf(s.value));
    }
  }

  // Every matmul (alone or computed in an element-wise loop) packs each column panel of B,
  // k rows of one tile's width, into a scratch region (MatMul.cpp), one per thread.
  for (Step &s : mp.steps) {
    if (s.kind != Step::Compute) continue;
    ValueId mv = s.matmul != kNoValue ? s.matmul : s.value;
    const Node &mm = f.node(mv);
    if (mm.op != Op::MatMul) continue;
    MatMulOperand a = matmulOperand(f, mm.operands[0]);
    const Dim &k = f.node(a.value).shape[mm.transA != a.flipped ? 0 : 1];
    RegionMember panel{k.factor * kMatMulPanelRowBytes * std::max(threads, 1), {}};
    for (uint32_t sy = k.syms; sy; sy &= sy - 1) panel.syms.push_back(std::countr_zero(sy));
    virt.push_back(panel);
    s.scratch = Buffer{Buffer::Region, static_cast<int>(virt.size()) - 1};
  }

  // Liveness of the virtual regions, then a greedy assignment to real regions.
  std::vector<int> lastRead(virt.size(), -1);
  for (size_t s = 0; s < mp.steps.size(); ++s)
    for (const Buffer &b : mp.steps[s].reads)
      if (b.kind == Buffer::Region) lastRead[static_cast<size_t>(b.index)] = static_cast<int>(s);
  std::vector<int> realOf(virt.size(), -1);
  std::vector<bool> regionFree;
  std::vector<std::pair<int, int>> active;  // (virtual, lastRead)
  for (size_t s = 0; s < mp.steps.size(); ++s) {
    for (auto it = active.begin(); it != active.end();) {
      if (it->second < static_cast<int>(s)) {
        regionFree[static_cast<size_t>(realOf[static_cast<size_t>(it->first)])] = true;
        it = active.erase(it);
      } else {
        ++it;
      }
    }
    std::vector<Buffer> written = mp.steps[s].alsoDest;
    written.push_back(mp.steps[s].dest);
    written.push_back(mp.steps[s].scratch);
    for (Buffer d : written) {
      if (d.kind != Buffer::Region || d.index < 0) continue;
      const RegionMember &m = virt[static_cast<size_t>(d.index)];
      int best = -1;
      int64_t bestBytes = 0;
      for (size_t r = 0; r < mp.regions.size(); ++r) {
        if (!regionFree[r] || mp.regions[r].front().syms != m.syms) continue;
        int64_t have = 0;
        for (const RegionMember &o : mp.regions[r]) have = std::max(have, o.bytes);
        // Prefer the smallest region that is large enough, else the largest one.
        bool better = best < 0 || (have >= m.bytes ? (bestBytes < m.bytes || have < bestBytes)
                                                   : (bestBytes < m.bytes && have > bestBytes));
        if (better) {
          best = static_cast<int>(r);
          bestBytes = have;
        }
      }
      if (best < 0) {
        best = static_cast<int>(mp.regions.size());
        mp.regions.emplace_back();
        regionFree.push_back(false);
      }
      auto &members = mp.regions[static_cast<size_t>(best)];
      if (std::find(members.begin(), members.end(), m) == members.end()) members.push_back(m);
      regionFree[static_cast<size_t>(best)] = false;
      realOf[static_cast<size_t>(d.index)] = best;
      active.push_back({d.index, std::max(lastRead[static_cast<size_t>(d.index)], static_cast<int>(s))});
    }
  }
  auto remap = [&](Buffer &b) {
    if (b.kind == Buffer::Region && b.index >= 0) b.index = realOf[static_cast<size_t>(b.index)];
  };
  for (Step &s : mp.steps) {
    remap(s.dest);
    for (Buffer &b : s.alsoDest) remap(b);
    remap(s.src);
    remap(s.scratch);
    for (Buffer &b : s.reads) remap(b);
  }
  for (Buffer &b : mp.homes) remap(b);
  return mp;
}

}  // namespace gradc::codegen
