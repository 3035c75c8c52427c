// The memory plan: where every materialised value lives, and the order of the loops.
//
// Each kernel of the fusion plan writes its value to one buffer:
//  - a result that has its own slot (loss, metrics, outputs, gradients) is written straight
//    into the caller's buffer;
//  - an updated param or optimiser state is written into its argument's buffer in place when
//    that is safe: no later loop reads the old value, and the loop that computes the new
//    value reads the old one only at the index it writes. Otherwise it goes to a temporary
//    and is copied back after everything else;
//  - anything else gets a region of `work`.
// Regions are reused by liveness: a region whose value's last reader has run is free for a
// later value. A region's size is the largest of its values' sizes (each 64-byte aligned);
// sizes depend on the symbolic dims, so the offsets are computed from `dims` at run time
// (in the function's prologue and in the separate work-size function). Values are matched to
// free regions of the same symbolic size (e.g. 128*B with 128*B) so that the sum stays close
// to the peak of what is live. A step may also get a scratch region that is live only while
// it runs: a matrix product packs the column panels of its B operand there. With one thread,
// a big weight's update runs inside the loops of the product that reads the weight
// (interleaveUpdates, Step::interleaved), the steps between reordered where that is safe.
#pragma once

#include <vector>

#include "codegen/Fusion.h"
#include "ir/IR.h"

namespace gradc::codegen {

struct Buffer {
  enum Kind : uint8_t { Slot, Region } kind = Slot;
  int index = -1;  // the slot of the calling convention, or the region
  bool operator==(const Buffer &o) const { return kind == o.kind && index == o.index; }
};

struct Step {
  enum Kind : uint8_t {
    Compute,  // run the kernel of `value`, store into `dest`
    Copy,     // store `value` into `dest`: read from `src` when it is set, else evaluate it
  } kind = Compute;
  ir::ValueId value = ir::kNoValue;
  ir::ValueId matmul = ir::kNoValue;  // Compute: a Fused matmul computed in this loop
  Buffer dest;
  std::vector<ir::ValueId> also;  // Compute: kernels of the loop's group computed before `value`
  std::vector<Buffer> alsoDest;   // and where each is stored
  Buffer src;                 // Copy only; index -1 when unset
  Buffer scratch;             // memory the step needs only while it runs (a matmul's packed
                              // B panel), or index -1
  std::vector<Buffer> reads;  // the buffers the step reads
  /// Compute: the next step, a weight's update fused into its gradient's product, runs inside
  /// this one's loops: this step's product reads the weight as B^T, one column panel (that
  /// many rows of the weight) at a time, and after each panel the update's tiles run over
  /// the rows of the weight that panel has read. See interleaveUpdates in MemoryPlan.cpp.
  bool interleaved = false;
};

/// The size in bytes of one value: bytes * the product of the symbolic dims in `syms`
/// (a sym may repeat, e.g. [B,B]).
struct RegionMember {
  int64_t bytes = 0;
  std::vector<int> syms;
  bool operator==(const RegionMember &o) const { return bytes == o.bytes && syms == o.syms; }
};

struct MemoryPlan {
  std::vector<Step> steps;
  std::vector<std::vector<RegionMember>> regions;
  std::vector<int> home;      // per root value: index into homes, or -1
  std::vector<Buffer> homes;
  int numSlots = 0;
  std::vector<int> argSlot;   // per node: its slot when it is an argument, else -1
  std::vector<int> resultSlot;  // per result: its slot, or -1 for results written in place
  Buffer homeOf(ir::ValueId root) const { return homes.at(static_cast<size_t>(home.at(static_cast<size_t>(root)))); }
  bool hasHome(ir::ValueId root) const { return home.at(static_cast<size_t>(root)) >= 0; }
  /// The size of one buffer of this value's type and shape.
  static RegionMember sizeOf(const ir::Node &n, int floatBytes);
};

/// `threads`: a matmul's panel scratch is planned once per thread. A weight of at least
/// `interleaveMinBytes` (-1: none) may have its update run inside the loops of the product
/// that reads it (Step::interleaved).
MemoryPlan planMemory(const ir::Function &f, const FusionPlan &fp, int floatBytes, int threads = 1,
                      int64_t interleaveMinBytes = -1);

}  // namespace gradc::codegen
