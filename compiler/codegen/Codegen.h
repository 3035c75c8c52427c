// The code generator's public face: one ir::Function in, native code out, two ways.
//
//   jitCompile   -> an rt::Kernel running JIT-compiled code in this process (LLJIT / ORC)
//   emitObject   -> an object file for any supported target (x86-64, AArch64), the same code
//   emitLLVM/Asm -> the optimised LLVM IR or assembly, for `gradc inspect --stage llvm|asm`
//   printLoopPlan -> the loops the module will have, for `gradc inspect --stage loops`
//
// Every path builds the same LLVM module: `void SYM(void *const *args, const int64_t *dims,
// void *work)` (the calling convention of runtime/Kernel.h, slots as ir::signatureOf gives
// them) and `size_t SYM_work_size(const int64_t *dims)`, the scratch size the first needs.
// In check mode (checkNumerics) the same entry point also sets a NaN flag at the start of
// `work` when any value it computes is not finite.
// This header does not expose LLVM, so the driver and tests include it cheaply.
#pragma once

#include <string>

#include "ir/IR.h"
#include "runtime/Kernel.h"

namespace gradc::codegen {

struct CodegenOptions {
  bool f64 = false;     // float buffers and arithmetic in double
  int threads = 1;      // large matmuls split over this many threads (runtime/Parallel.h)
  std::string triple;   // empty: the host
  std::string cpu;      // empty: the host CPU (or "generic" for another triple)
  std::string symbol;   // the entry point's name; empty: "gradc_" + the function's name
  /// Check mode: every value the step computes (element-wise results, reductions, matrix
  /// products) is tested for NaN and Inf; the answer is a flag in `work` (rt::Kernel::numericsFlag).
  bool checkNumerics = false;
  /// Allow glibc's vector math library where the target has it (TargetDesc::vectorMath).
  bool vectorMath = true;
  /// A weight of at least this many bytes has its update run inside the loops of the
  /// product that reads it (MemoryPlan.h, Step::interleaved): one that, with its optimiser
  /// state, does not stay in the caches between the two. -1: never (the same numbers; for
  /// tests, as is 0: every weight that can). Only with one thread, unless interleaveThreads:
  /// split over two threads, the medium bench step was 6% slower interleaved (each thread
  /// packs all of the update's B, and both stream their rows' state at once).
  int64_t interleaveMinBytes = int64_t{1} << 20;
  bool interleaveThreads = false;
  /// For tests: a step that reuses an earlier step's function (the same key, LowerToLLVM.cpp)
  /// is lowered too and compared with it; a difference is an internal error.
  bool verifyStepReuse = false;
};

/// The interleaving limit planMemory takes under `o`.
inline int64_t interleaveLimit(const CodegenOptions &o) {
  return o.threads > 1 && !o.interleaveThreads ? -1 : o.interleaveMinBytes;
}

/// The flag's byte offset in `work` in check mode: the first 64 bytes, before the regions.
constexpr int64_t kNumericsFlagOffset = 0;
constexpr int64_t kNumericsFlagBytes = 64;

struct CompileStats {
  double compileMs = 0;   // lowering + O3 + machine code, wall clock
};

/// The entry point's symbol for `f` under `o` (the work-size function adds `_work_size`).
std::string entrySymbol(const ir::Function &f, const CodegenOptions &o);

/// JIT-compiles `f` for the host. The returned Kernel keeps the JIT alive.
rt::Kernel jitCompile(const ir::Function &f, const CodegenOptions &o, CompileStats *stats = nullptr);

/// The module after the O3 pipeline, as text.
std::string emitLLVM(const ir::Function &f, const CodegenOptions &o);
/// The target's assembly for the optimised module.
std::string emitAsm(const ir::Function &f, const CodegenOptions &o);
/// The loop plan (`gradc inspect --stage loops`): each loop nest of the step in order, what
/// it computes and where it stores it, and the work regions. `sm` (may be null) adds places.
std::string printLoopPlan(const ir::Function &f, const CodegenOptions &o, const SourceManager *sm);
/// Writes an object file (ELF for Linux triples). Throws UserError when it cannot.
void emitObject(const ir::Function &f, const CodegenOptions &o, const std::string &path);

}  // namespace gradc::codegen
