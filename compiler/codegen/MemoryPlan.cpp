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

std::vector<Buffer> writesOf(const Step &s) {
  std::vector<Buffer> w = s.alsoDest;
  w.push_back(s.dest);
  w.push_back(s.scratch);
  return w;
}

bool touches(const std::vector<Buffer> &set, const Buffer &b) {
  return b.index >= 0 && std::find(set.begin(), set.end(), b) != set.end();
}

// Whether two steps may run in either order: neither writes a buffer the other reads or
// writes. The buffers are the virtual ones (one per value), so this is exact.
bool commute(const Step &a, const Step &b) {
  std::vector<Buffer> wa = writesOf(a), wb = writesOf(b);
  for (const Buffer &x : wa)
    if (touches(b.reads, x) || touches(wb, x)) return false;
  for (const Buffer &x : wb)
    if (touches(a.reads, x)) return false;
  return true;
}

// The fused product of a step's loop (the step must have one): its effective transpose flags
// and the values it reads, looked through transposes.
struct ProductOf {
  bool transA, transB;
  ValueId a, b;
};
ProductOf productOf(const Function &f, const Step &s) {
  const Node &mm = f.node(s.matmul);
  MatMulOperand a = matmulOperand(f, mm.operands[0]), b = matmulOperand(f, mm.operands[1]);
  return {mm.transA != a.flipped, mm.transB != b.flipped, a.value, b.value};
}

// Whether the loop of step s reads the param w only as the B operand of its product: the
// interleaved update rewrites w's rows after each column panel of the product, so any other
// read of w in that loop (w as the product's A, whose every row each panel reads, or an
// element-wise read such as `P @ W^T + W`) would see rows already updated.
bool readsParamOnlyAsProductB(const Function &f, const FusionPlan &fp, const Step &s, ValueId w) {
  bool ok = true;
  auto visit = [&](auto &self, ValueId u) -> void {
    if (!ok) return;
    Role r = fp.role[static_cast<size_t>(u)];
    if (r == Role::Inline) {
      for (ValueId o : f.node(u).operands) self(self, o);
      return;
    }
    if (r == Role::Fused) {
      const Node &mm = f.node(u);
      ValueId a = matmulOperand(f, mm.operands[0]).value, b = matmulOperand(f, mm.operands[1]).value;
      self(self, a);
      if (!(u == s.matmul && b == w)) self(self, b);
      return;
    }
    if (u == w || fp.root[static_cast<size_t>(u)] == w) ok = false;
  };
  auto kernel = [&](ValueId v) {
    for (ValueId o : f.node(v).operands) visit(visit, o);
  };
  kernel(s.value);
  for (ValueId v : s.also) kernel(v);
  return ok;
}

// Interleaving a weight's update with the product that reads it. The backward pass of
// `h @ W` computes `d.h = d @ W^T`, which packs W one column panel of d.h (that many rows of
// W) at a time, and later `W.new = update(W, h^T @ d)`, whose tiles read and write W and its
// optimiser state in place (medium bench step: W2, m and v, 25 MB, streamed from memory
// behind 1.2 ms of multiply-adds, which cannot hide them). Step X (d.h, a fused product
// reading a param W as B^T) takes step Y (the fused product whose loop writes W in place,
// with A^T: its rows are W's rows) into its loops: after each column panel of X, the tiles
// of Y whose rows that panel has read run (MatMulRows), so W's rows are still in the cache
// and the update's traffic has X's multiply-adds beside it. Every element is the same sum
// as before: only the order of the tiles changes.
//
// The steps between X and Y are reordered: the ones Y needs (Adam's step size, say) move
// before X, the others after Y. Each move is checked on the virtual buffers (one per value):
// a step passes another only when they commute, and X and Y share nothing but W, which X
// reads a panel before Y writes those rows. Anything else leaves the steps as they were.
void interleaveUpdates(const Function &f, const FusionPlan &fp, MemoryPlan &mp, std::vector<RegionMember> &virt,
                       int floatBytes, int threads, int64_t minBytes) {
  auto &steps = mp.steps;
  for (size_t i = 0; i < steps.size(); ++i) {
    if (steps[i].kind != Step::Compute || steps[i].matmul == kNoValue) continue;
    ProductOf xp = productOf(f, steps[i]);
    const Node &w = f.node(xp.b);
    if (!xp.transB || w.op != Op::Param || w.shape.size() != 2 || !w.shape[0].isStatic() || !w.shape[1].isStatic())
      continue;
    // Big enough to miss the caches, with at least a tile's rows (each part of a split has
    // four column panels of X, so as many).
    if (w.shape[0].factor * w.shape[1].factor * floatBytes < minBytes || w.shape[0].factor < kMatMulTileRows)
      continue;
    if (!(f.node(steps[i].matmul).shape[1] == w.shape[0])) continue;
    if (!readsParamOnlyAsProductB(f, fp, steps[i], xp.b)) continue;
    Buffer wb{Buffer::Slot, mp.argSlot[static_cast<size_t>(xp.b)]};
    // Y: the first later step that writes W, if it is W's update fused into a product of W's shape with A^T.
    size_t j = i + 1;
    while (j < steps.size() && !touches(writesOf(steps[j]), wb)) ++j;
    if (j == steps.size()) continue;
    const Step &y = steps[j];
    if (y.kind != Step::Compute || y.matmul == kNoValue || y.scratch.index < 0) continue;
    ProductOf yp = productOf(f, y);
    if (!yp.transA || !(f.node(y.matmul).shape == w.shape)) continue;
    // X and Y share only W.
    bool ok = true;
    for (const Buffer &b : writesOf(y))
      if ((touches(steps[i].reads, b) && !(b == wb)) || touches(writesOf(steps[i]), b)) ok = false;
    for (const Buffer &b : writesOf(steps[i]))
      if (touches(y.reads, b)) ok = false;
    if (!ok) continue;
    // H: the steps between that Y needs (directly or through another of them).
    std::vector<bool> inH(j, false);
    for (size_t k = j - 1; k > i; --k) {
      inH[k] = !commute(steps[k], y);
      for (size_t h = k + 1; h < j && !inH[k]; ++h)
        if (inH[h] && !commute(steps[k], steps[h])) inH[k] = true;
    }
    // Each moves before X: past X and past the steps between that stay.
    for (size_t h = i + 1; h < j && ok; ++h) {
      if (!inH[h]) continue;
      if (!commute(steps[h], steps[i])) ok = false;
      for (size_t k = i + 1; k < h && ok; ++k)
        if (!inH[k] && !commute(steps[k], steps[h])) ok = false;
    }
    if (!ok) continue;
    std::vector<Step> order;
    for (size_t k = i + 1; k < j; ++k)
      if (inH[k]) order.push_back(steps[k]);
    size_t x = i + order.size();
    order.push_back(steps[i]);
    order.push_back(steps[j]);
    for (size_t k = i + 1; k < j; ++k)
      if (!inH[k]) order.push_back(steps[k]);
    std::copy(order.begin(), order.end(), steps.begin() + static_cast<std::ptrdiff_t>(i));
    steps[x].interleaved = true;
    // Y packs every column panel of its B once (each range of rows reads them all): k rows of
    // N elements, rounded up to whole panels, per thread.
    Step &ys = steps[x + 1];
    const Node &yb = f.node(yp.b);
    const Dim &k = yb.shape[yp.transB ? 1 : 0];
    int64_t rowBytes = (w.shape[1].factor * floatBytes + kMatMulPanelRowBytes - 1) / kMatMulPanelRowBytes * kMatMulPanelRowBytes;
    RegionMember all{k.factor * rowBytes * std::max(threads, 1), {}};
    for (uint32_t sy = k.syms; sy; sy &= sy - 1) all.syms.push_back(std::countr_zero(sy));
    virt[static_cast<size_t>(ys.scratch.index)] = all;
    i = x + 1;
  }
}

}  // namespace

MemoryPlan planMemory(const Function &f, const FusionPlan &fp, int floatBytes, int threads,
                      int64_t interleaveMinBytes) {
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

  if (interleaveMinBytes >= 0) interleaveUpdates(f, fp, mp, virt, floatBytes, threads, interleaveMinBytes);

  // Liveness of the virtual regions, then a greedy assignment to real regions. An
  // interleaved pair of steps runs as one: what the first touches lives through the second,
  // and the second's buffers are taken with the first's.
  std::vector<int> lastRead(virt.size(), -1);
  for (size_t s = 0; s < mp.steps.size(); ++s) {
    for (const Buffer &b : mp.steps[s].reads)
      if (b.kind == Buffer::Region) lastRead[static_cast<size_t>(b.index)] = static_cast<int>(s);
    if (!mp.steps[s].interleaved) continue;
    std::vector<Buffer> touched = writesOf(mp.steps[s]);
    touched.insert(touched.end(), mp.steps[s].reads.begin(), mp.steps[s].reads.end());
    for (const Buffer &b : touched)
      if (b.kind == Buffer::Region && b.index >= 0)
        lastRead[static_cast<size_t>(b.index)] = std::max(lastRead[static_cast<size_t>(b.index)], static_cast<int>(s) + 1);
  }
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
    std::vector<Buffer> written = writesOf(mp.steps[s]);
    if (mp.steps[s].interleaved) {
      std::vector<Buffer> next = writesOf(mp.steps[s + 1]);
      written.insert(written.end(), next.begin(), next.end());
    }
    for (Buffer d : written) {
      if (d.kind != Buffer::Region || d.index < 0 || realOf[static_cast<size_t>(d.index)] >= 0) continue;
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
