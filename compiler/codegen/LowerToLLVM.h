// Lowering of one ir::Function, with its fusion and memory plans, to an LLVM module.
//
// The entry function loads the slot pointers from `args`, computes each work region's
// offset from `dims`, and calls one internal function per step of the memory plan (a fused
// element-wise loop, a reduction, a row normalisation, a matrix product, a copy); steps that
// compute the same on the same shapes from buffers in the same places (the hidden layers of
// a deep MLP) call one function, lowered once; a step of more than 128 of them calls them
// from functions of 128 calls each. Each step
// function takes the buffers it touches as `noalias` pointers, which is true (distinct slots
// and live regions never overlap; an in-place update passes one pointer for both), so that
// after inlining the vectoriser needs no run-time alias checks. Matrix products call
// `gradc_matmul_*`, one internal function per shape and transpose flags (MatMul.cpp): the
// seam where a tuned kernel goes. A matmul fused into its element-wise reader runs its tiles
// inside that reader's step instead, with the reader's expression applied to each tile; and
// a big weight's update (such a step) can run inside the step of the product that reads the
// weight, after each of its column panels (Step::interleaved).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>

#include "codegen/Codegen.h"

namespace gradc::codegen {

/// What a function is compiled for: the attributes set on every generated function.
struct TargetDesc {
  std::string triple, cpu, features;
  bool avx512 = false;
  /// Loops may call glibc's vector math library (libmvec) for float exp, log, log1p, tanh,
  /// sin, cos and pow (Target.cpp): x86-64 Linux with glibc (for the host, one whose libmvec
  /// has them: hostLibmvec), unless turned off.
  bool vectorMath = false;
};

std::unique_ptr<llvm::Module> lowerToLLVM(const ir::Function &f, const CodegenOptions &o,
                                          const TargetDesc &t, llvm::LLVMContext &ctx,
                                          const llvm::DataLayout &dl);

/// Sets target-cpu, target-features, prefer-vector-width and nounwind on a function.
void setTargetAttributes(llvm::Function &fn, const TargetDesc &t);

/// `for (i = 0; i < n; ++i) body(i)` at the builder's insertion point (top-tested).
void emitFor(llvm::IRBuilder<> &b, llvm::Value *n, const std::function<void(llvm::Value *)> &body);
/// `then` under `if (cond)`, at the builder's insertion point; continues after it.
void emitIf(llvm::IRBuilder<> &b, llvm::Value *cond, const std::function<void()> &then);

struct MatMulShape {
  bool transA = false, transB = false;  // A is [k,m] / B is [n,k] in memory
  ir::Dim m, k, n;
};

/// The tile of C the matmul kernel keeps in registers: rows x vectors of the target's width.
constexpr int kMatMulTileRows = 6, kMatMulTileVectors = 4;
/// The bytes of one tile at the widest vectors (the buffer a fused epilogue reads).
constexpr int64_t kMatMulTileBytes = kMatMulTileRows * kMatMulTileVectors * 64;
/// The bytes of one row of a packed B panel (k rows of one tile's width): every matmul gets
/// a scratch region of k times this.
constexpr int64_t kMatMulPanelRowBytes = kMatMulTileVectors * 64;
inline unsigned matmulVectorBytes(const TargetDesc &t) { return t.avx512 ? 64 : 32; }
/// The longest rows (in bytes) of a B that the tiles read in place instead of packing it.
constexpr int64_t kMatMulDirectRowBytes = 1024;
/// The sum over p of a product runs in blocks of this many p (MatMul.cpp), as BLAS
/// libraries block k: each block's FMA chains start from zero and are added to the running
/// sums at its end, so a long sum (the weight gradient over a batch of 100,000 rows) is not
/// one chain of rounding. A product with k <= kMatMulSumBlock is one block: one chain.
constexpr int64_t kMatMulSumBlock = 1024;
// While the last full tiles of a column panel run, one line of the B the next panel packs
// is fetched every 2^kPanelPrefetchShift iterations over p (MatMul.cpp).
constexpr int kPanelPrefetchShift = 1;

/// Called after each tile of C is finished: rows i0 .. i0+rows-1, columns j0 .. j0 +
/// min(cols, tile width) - 1, stored in the tile buffer as [rows][tile width] (buffer row r
/// is row i0 + r of C). Only rows first .. rows-1 of the tile are new (first < rows): the
/// last tile of a column panel can overlap the one before, whose epilogue already ran on the
/// rows before `first`, and must not run twice (it may update a weight in place).
using TileEpilogue = std::function<void(llvm::Value *i0, llvm::Value *first, int rows, llvm::Value *j0,
                                        llvm::Value *cols)>;

/// A product's tiles over a range of its rows only, [begin, end) with end - begin >= the
/// tile's rows, for every column panel, op(B) packed beforehand (emitMatMulPackAll): tiles
/// t0 .. t1-1 of the range, tile t at row begin + t * kMatMulTileRows, the last moved up to
/// end at `end` (its rows before the range's last tile's are not new). The weight update
/// run inside the loops of the product that read the weight (MemoryPlan.h, Step::interleaved).
struct MatMulRows {
  llvm::Value *begin, *end, *t0, *t1;
};
/// Called after the last tile of each column panel, with the panel's index.
using PanelDone = std::function<void(llvm::Value *panel)>;
/// Buffers of `rows` rows of `cols` elements whose rows [j0, j0 + panel width) the full tiles
/// of the column panel at column j0 fetch into the cache, spread over their iterations: what
/// runs after the panel (the interleaved update) then finds them there.
struct FetchAhead {
  std::vector<llvm::Value *> bases;
  llvm::Value *rows, *cols;
};

/// The tiled loops of C = op(A) @ op(B) at the builder's insertion point in `fn`, for part
/// `part` of `parts` (a share of the column panels; 0 of 1 for all of them). P is scratch for
/// parts * k * kMatMulPanelRowBytes (each part packs its column panels of B into its slice);
/// with `rows`, P is this part's copy of every panel of op(B), packed beforehand, and the
/// loops run over every column panel. Without an epilogue C is the [m,n] result; with one,
/// C is the tile buffer.
void emitMatMulTiles(llvm::IRBuilder<> &b, llvm::Function *fn, bool transA, bool transB,
                     llvm::Value *A, llvm::Value *B, llvm::Value *C, llvm::Value *P, llvm::Value *M,
                     llvm::Value *K, llvm::Value *N, llvm::Type *ft, unsigned vectorBytes,
                     const TileEpilogue *epilogue, llvm::Value *part, llvm::Value *parts,
                     const std::vector<llvm::Value *> &tileOperands, const MatMulRows *rows = nullptr,
                     const PanelDone *afterPanel = nullptr, const FetchAhead *ahead = nullptr);

/// Packs every column panel of op(B) ([k, n]) into P, panel t at P + t * k * panel width, for
/// emitMatMulTiles with `rows`.
void emitMatMulPackAll(llvm::IRBuilder<> &b, bool transB, llvm::Value *B, llvm::Value *P, llvm::Value *K,
                       llvm::Value *N, llvm::Type *ft, unsigned vectorBytes);

/// The column panels of an n-column product (the tile width is `panelWidth` elements) and
/// part `part` of `parts`'s share of them, [first, end): the one definition of the split,
/// used by the kernel, the check mode and the decision to split.
struct PanelShare {
  llvm::Value *panels, *first, *end;
};
PanelShare panelShare(llvm::IRBuilder<> &b, llvm::Value *n, uint64_t panelWidth, llvm::Value *part,
                      llvm::Value *parts);

/// A matmul is split over threads when it has this many multiply-adds (below it, waking the
/// other threads costs more than it saves) and at least this many column panels per thread.
/// With fewer, the parts' columns interleave finely in every row (a 128-wide layer split in
/// two: 256 bytes each), and the two cores' writes and prefetches of each other's lines made
/// every part run 2.2x slower than alone (tiny: 94 us/step with 2 threads, 71 with one).
constexpr int64_t kParallelMinFmas = int64_t{1} << 20;
constexpr int64_t kParallelMinPanelsPerPart = 4;

/// The width in elements of a matmul's column panel (and of its register tile).
inline int64_t matmulPanelWidth(const TargetDesc &t, bool f64) {
  return kMatMulTileVectors * static_cast<int64_t>(matmulVectorBytes(t)) / (f64 ? 8 : 4);
}

/// Whether a product `n` columns wide may be split over `threads` threads: not when its
/// width is static with fewer column panels than a split needs. Such a product is lowered as
/// with one thread: the same code, so the same results bit for bit.
inline bool maySplitOverThreads(const ir::Dim &n, int64_t panelWidth, int threads) {
  return threads > 1 && (!n.isStatic() || (n.factor + panelWidth - 1) / panelWidth >= kParallelMinPanelsPerPart * threads);
}

/// `void gradc_matmul_*(ptr A, ptr B, ptr C, ptr S, i64 m, i64 k, i64 n, i64 part, i64 parts)`:
/// C[m,n] = op(A) @ op(B) (this part's column panels), specialised for the static dims of
/// `s`. S is the panel scratch (parts * k * kMatMulPanelRowBytes).
llvm::Function *getMatMul(llvm::Module &mod, const MatMulShape &s,
                          const std::vector<std::string> &dimNames, llvm::Type *floatTy,
                          const TargetDesc &t);

}  // namespace gradc::codegen
