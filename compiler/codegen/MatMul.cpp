// Matrix products: `gradc_matmul_<flags>_<m>x<k>x<n>`, one internal function per shape and
// transpose flags, with C = op(A) @ op(B) and row-major A, B, C.
//
// The loops run over column panels of C, NR vectors wide. Each panel's slice of op(B) (k rows
// of NR vectors, zero past N) is first packed contiguously into scratch memory planned by
// the memory plan, for either orientation of B; then every row tile of the panel reads it:
//   for each column panel j0:  P[p, 0..W) = op(B)[p, j0..j0+W)          (k*W moves; for
//                              B^T, VL x VL blocks transposed in registers)
//     for each row tile i0:    for p:  b_c = P[p, c*VL ..]               (NR vector loads)
//                                      acc[r][c] += A(i0 + r, p) * b_c  (MR broadcasts, MR*NR FMAs)
// A tile of MR = 6 rows by NR = 4 vectors (24 independent FMA chains in 24 of the 32 vector
// registers; per p, 4 panel loads and 6 broadcasts feed 24 FMAs) stays in registers over all
// of p and is stored once. Measured against 6 x 2 and 8 x 3 (docs/performance.md). The panel order keeps the
// panel in L2 across all row tiles and reads it with unit stride (reading B's rows directly
// strides by N and re-reads all of B from memory for every row tile: 6 GFLOP/s on the large
// bench step). Columns past N are masked. A product narrower than one panel (a 10-wide
// output layer) computes, packs and stores only the vectors that hold its columns (one of
// the four with AVX-512): the others were 3/4 of its multiply-adds, all of them wasted.
// The M mod MR leftover rows, when there are 3 or more of them (and M >= MR), are done by
// one more full tile starting at row M - MR, overlapping the one before it: the rows
// computed twice are the same sums (stored twice without an epilogue; an epilogue runs only
// on the rows that are new, as it may update a weight in place). One or two leftover rows,
// and all rows when M < MR, use tiles of two rows (and one for an odd row): per p, a
// one-row tile waits for its 4 FMA chains (about twice the time per row of the full tile),
// a two-row tile has 8 chains, enough to cover the FMA latency, and takes about as long, so
// two rows cost half of two one-row tiles (tiny bench step, 32 = 5*6 + 2 rows: 68 -> 65
// us/step) and less than a whole extra tile (the overlapping tile made tiny 2-3% slower).
// With A^T (a weight's gradient), a small tile reads a new line of A for every p, as many as
// a full tile does, so any leftover rows take the overlapping tile (large bench step, weights of 2048 = 341*6 + 2 rows: about 1% faster).
// A matmul whose only reader is an element-wise loop at the same index (bias + activation,
// an optimiser update) is computed inside that loop: each finished tile goes to a small
// stack buffer and the element-wise expression runs over it right away (LowerToLLVM.cpp),
// so the product is never stored whole. Each C element is the sum over p in ascending
// order, with FMA, in all four transpose cases, in blocks of kMatMulSumBlock values of p:
// each block is a chain of FMAs from zero, and the blocks' sums are added in order. One
// chain of 100,000 roundings (the weight gradient of `grad` over a whole data file) lost
// 1e-5 of PyTorch's gradient. A product of k <= 1,024 is one chain, bit for bit as before;
// the blocks after a tile's first run out of line (getLaterBlocks), so the tile loops every
// product runs stay as they were but for one test per tile.
//
// A B (not transposed) whose rows are at most kMatMulDirectRowBytes long and a whole number
// of panels wide (a layer of 128 or 256 floats) is not packed: the tiles read each panel row
// straight from B. Its rows are close enough that the hardware prefetchers follow them and
// they do not crowd a few cache sets (rows 4 KiB apart all map to the same L1 set, which is
// what packing avoids), and the copy it saves cost as much as a tenth of the tiny bench step
// (x @ W1 with W1 784 x 128: 71-76 -> 66-69 us/step, small 398-421 -> 379-387).
//
// While the last row tiles of a panel run, they also fetch the lines of B that the next
// panel packs (B's rows lie a page or more apart, where the hardware prefetchers do not look).
//
// With several threads, part p of `parts` takes the column panels [p*T/parts, (p+1)*T/parts)
// of the T panels and packs them into its own slice of the scratch: the same sums in the
// same order, so the result does not depend on the thread count.
//
// A product can also run over a range of its rows only (MatMulRows), every column panel of
// op(B) packed beforehand (emitMatMulPackAll): a weight's update interleaved with the product
// that reads the weight, which calls it after each of its column panels (PanelDone) and
// fetches the rows the update will touch while its own tiles run (FetchAhead; MemoryPlan.cpp,
// interleaveUpdates). The tiles are the same, tile t at row begin + 6t: the same sums.
#include <llvm/IR/IRBuilder.h>
#include <llvm/TargetParser/Triple.h>

#include "codegen/LowerToLLVM.h"

namespace gradc::codegen {

using llvm::Value;

PanelShare panelShare(llvm::IRBuilder<> &b, Value *n, uint64_t panelWidth, Value *part, Value *parts) {
  Value *panels = b.CreateUDiv(b.CreateAdd(n, b.getInt64(panelWidth - 1)), b.getInt64(panelWidth));
  return {panels, b.CreateUDiv(b.CreateMul(panels, part), parts),
          b.CreateUDiv(b.CreateMul(panels, b.CreateAdd(part, b.getInt64(1))), parts)};
}

namespace {

// The FMAs of one p of an mr-row tile: acc[r][c] += A(i0 + r, p) * P[p, c] (acc: allocas of
// the tile's vectors; P's rows `stride` elements apart).
void emitTileFMAs(llvm::IRBuilder<> &b, bool transA, Value *A, Value *P, Value *stride, Value *M, Value *K,
                  Value *i0, Value *p, int mr, int nr, Value *const (*acc)[kMatMulTileVectors], llvm::Type *ft,
                  llvm::FixedVectorType *vt) {
  unsigned vl = vt->getNumElements();
  llvm::Align align(ft->getPrimitiveSizeInBits() / 8);
  auto add = [&](Value *x, Value *y) { return b.CreateAdd(x, y, "", true, true); };
  auto mul = [&](Value *x, Value *y) { return b.CreateMul(x, y, "", true, true); };
  Value *bv[kMatMulTileVectors];
  for (int c = 0; c < nr; ++c)
    bv[c] = b.CreateAlignedLoad(vt, b.CreateInBoundsGEP(ft, P, add(mul(p, stride), b.getInt64(static_cast<uint64_t>(c) * vl))), align);
  for (int r = 0; r < mr; ++r) {
    Value *row = add(i0, b.getInt64(static_cast<uint64_t>(r)));
    Value *off = transA ? add(mul(p, M), row) : add(mul(row, K), p);
    Value *a = b.CreateVectorSplat(vl, b.CreateLoad(ft, b.CreateInBoundsGEP(ft, A, off)));
    for (int c = 0; c < nr; ++c)
      b.CreateStore(b.CreateIntrinsic(llvm::Intrinsic::fmuladd, {vt}, {a, bv[c], b.CreateLoad(vt, acc[r][c])}), acc[r][c]);
  }
}

// The blocks of p after the first of an mr-row tile, out of line (a product's k is longer
// than kMatMulSumBlock only for a big batch: `grad` or `eval` of a whole file): each block
// is summed from zero and added to sums[r * NR + c], which holds the blocks before it.
// Arguments: A, P, P's row stride, M, K, the tile's first row, sums. One function per
// orientation of A, row count and vector type, shared by every product of the module.
llvm::Function *getLaterBlocks(llvm::Function &caller, bool transA, int mr, int nr, llvm::Type *ft,
                               llvm::FixedVectorType *vt) {
  constexpr int NR = kMatMulTileVectors;
  llvm::Module &mod = *caller.getParent();
  std::string name = fmt::format("gradc_matmul_blocks_{}_{}x{}x{}_{}", transA ? 't' : 'n', mr, nr,
                                 vt->getNumElements(), ft->isDoubleTy() ? "f64" : "f32");
  if (llvm::Function *fn = mod.getFunction(name)) return fn;
  llvm::LLVMContext &ctx = mod.getContext();
  llvm::IRBuilder<> b(ctx);
  llvm::Type *ptr = b.getPtrTy(), *i64 = b.getInt64Ty();
  auto *fty = llvm::FunctionType::get(b.getVoidTy(), {ptr, ptr, i64, i64, i64, i64, ptr}, false);
  auto *fn = llvm::Function::Create(fty, llvm::GlobalValue::InternalLinkage, name, mod);
  for (const char *attr : {"target-cpu", "target-features", "prefer-vector-width"})
    if (caller.hasFnAttribute(attr)) fn->addFnAttr(caller.getFnAttribute(attr));
  // Compiled small: it runs only for a k of more than one block (a big batch). It saves
  // the registers it uses (preserve_all; on x86 the general ones and XMM/YMM 0-15, not the
  // AVX-512 ones), so the caller keeps its values in those registers across the call: with
  // the C convention, which lets a call clobber every vector register, the product's fused
  // epilogue lost its constants to the stack (an Adam update: the medium bench step 5%
  // slower).
  fn->setCallingConv(llvm::CallingConv::PreserveAll);
  // Without a vzeroupper before its return: on x86 LLVM ends a function that used 256-bit
  // registers with one, after the saved YMM registers are restored, so their upper halves
  // came back zero and the caller's vectors kept across the call were wrong (an AVX2 CPU:
  // the column masks of a fused epilogue's two-row tiles).
  if (llvm::Triple(mod.getTargetTriple()).isX86()) {
    std::string features = fn->getFnAttribute("target-features").getValueAsString().str();
    fn->addFnAttr("target-features", features.empty() ? "-vzeroupper" : features + ",-vzeroupper");
  }
  for (auto a : {llvm::Attribute::NoUnwind, llvm::Attribute::NoInline, llvm::Attribute::Cold,
                 llvm::Attribute::OptimizeForSize, llvm::Attribute::MinSize})
    fn->addFnAttr(a);
  for (unsigned i : {0u, 1u, 6u}) fn->addParamAttr(i, llvm::Attribute::NoAlias);
  b.SetInsertPoint(llvm::BasicBlock::Create(ctx, "entry", fn));
  Value *A = fn->getArg(0), *P = fn->getArg(1), *stride = fn->getArg(2), *M = fn->getArg(3), *K = fn->getArg(4);
  Value *i0 = fn->getArg(5), *sums = fn->getArg(6);
  Value *acc[kMatMulTileRows][NR];
  for (int r = 0; r < mr; ++r)
    for (int c = 0; c < nr; ++c) acc[r][c] = b.CreateAlloca(vt);
  Value *zero = llvm::ConstantFP::get(vt, 0.0);
  auto sumAt = [&](int r, int c) { return b.CreateInBoundsGEP(vt, sums, b.getInt64(static_cast<uint64_t>(r * NR + c))); };
  Value *blocks = b.CreateUDiv(b.CreateAdd(K, b.getInt64(kMatMulSumBlock - 1)), b.getInt64(kMatMulSumBlock));
  emitFor(b, b.CreateSub(blocks, b.getInt64(1)), [&](Value *kb) {
    Value *p0 = b.CreateMul(b.CreateAdd(kb, b.getInt64(1)), b.getInt64(kMatMulSumBlock));
    for (int r = 0; r < mr; ++r)
      for (int c = 0; c < nr; ++c) b.CreateStore(zero, acc[r][c]);
    Value *left = b.CreateSub(K, p0);
    Value *len = b.CreateSelect(b.CreateICmpULT(left, b.getInt64(kMatMulSumBlock)), left, b.getInt64(kMatMulSumBlock));
    emitFor(b, len, [&](Value *q) { emitTileFMAs(b, transA, A, P, stride, M, K, i0, b.CreateAdd(p0, q), mr, nr, acc, ft, vt); });
    for (int r = 0; r < mr; ++r)
      for (int c = 0; c < nr; ++c)
        b.CreateStore(b.CreateFAdd(b.CreateLoad(vt, sumAt(r, c)), b.CreateLoad(vt, acc[r][c])), sumAt(r, c));
  });
  b.CreateRetVoid();
  return fn;
}

// The vectors of a tile that hold columns below N: all of them but in a product narrower
// than one panel (a 10-wide output layer: one of the four), whose other vectors are never
// computed, packed or stored.
int liveVectors(Value *N, unsigned vl) {
  auto *staticN = llvm::dyn_cast<llvm::ConstantInt>(N);
  if (!staticN || staticN->getZExtValue() >= static_cast<uint64_t>(kMatMulTileVectors) * vl) return kMatMulTileVectors;
  return std::max(1, static_cast<int>((staticN->getZExtValue() + vl - 1) / vl));
}

// Packs the column panel of op(B) at column j0 into P: P[p, c] = op(B)[p, j0 + c] for the
// panel's first nr vectors, zero past N (mask[c]: the lanes of vector c that are below N).
void emitPackPanel(llvm::IRBuilder<> &b, bool transB, Value *B, Value *P, Value *K, Value *N, Value *j0,
                   Value *const (&mask)[kMatMulTileVectors], bool fullPanels, int nr, llvm::Type *ft,
                   llvm::FixedVectorType *vt) {
  constexpr int NR = kMatMulTileVectors;
  unsigned vl = vt->getNumElements();
  const uint64_t W = static_cast<uint64_t>(NR) * vl;
  llvm::Align align(ft->getPrimitiveSizeInBits() / 8);
  Value *zero = llvm::ConstantFP::get(vt, 0.0);
  Value *fzero = llvm::ConstantFP::get(ft, 0.0);
  auto add = [&](Value *x, Value *y) { return b.CreateAdd(x, y, "", true, true); };
  auto mul = [&](Value *x, Value *y) { return b.CreateMul(x, y, "", true, true); };
  auto c64 = [&](uint64_t v) { return b.getInt64(v); };
  auto below = [&](Value *col) -> Value * { return fullPanels ? b.getTrue() : b.CreateICmpULT(col, N); };
  if (!transB) {
    emitFor(b, K, [&](Value *p) {
      for (int c = 0; c < nr; ++c) {
        Value *src = b.CreateInBoundsGEP(ft, B, add(mul(p, N), add(j0, c64(static_cast<uint64_t>(c) * vl))));
        Value *v = b.CreateMaskedLoad(vt, src, align, mask[c], zero);
        b.CreateAlignedStore(v, b.CreateInBoundsGEP(ft, P, add(mul(p, c64(W)), c64(static_cast<uint64_t>(c) * vl))), align);
      }
    });
    return;
  }
  // op(B) = B^T. Blocks of VL rows of B (VL panel columns) by VL columns (values of p)
  // are loaded as VL vectors, transposed in registers and stored as VL panel rows; the
  // p past the last whole block are copied one by one.
  Value *fullK = mul(b.CreateUDiv(K, c64(vl)), c64(vl));
  for (int c = 0; c < nr; ++c) {
    Value *c0 = add(j0, c64(static_cast<uint64_t>(c) * vl));
    emitFor(b, b.CreateUDiv(K, c64(vl)), [&](Value *pb) {
      Value *p0 = mul(pb, c64(vl));
      std::vector<Value *> rows(vl);
      for (unsigned l = 0; l < vl; ++l) {
        Value *col = add(c0, c64(l));
        Value *valid = b.CreateVectorSplat(vl, below(col));
        Value *srcRow = b.CreateSelect(below(col), col, c64(0));
        rows[l] = b.CreateMaskedLoad(vt, b.CreateInBoundsGEP(ft, B, add(mul(srcRow, K), p0)), align, valid, zero);
      }
      for (unsigned d = vl / 2; d >= 1; d /= 2) {
        std::vector<int> lo(vl), hi(vl);
        for (unsigned j = 0; j < vl; ++j) {
          lo[j] = static_cast<int>((j & d) ? vl + j - d : j);
          hi[j] = static_cast<int>((j & d) ? vl + j : j + d);
        }
        for (unsigned r = 0; r < vl; ++r) {
          if (r & d) continue;
          Value *x = rows[r], *y = rows[r + d];
          rows[r] = b.CreateShuffleVector(x, y, lo);
          rows[r + d] = b.CreateShuffleVector(x, y, hi);
        }
      }
      for (unsigned q = 0; q < vl; ++q)
        b.CreateAlignedStore(rows[q], b.CreateInBoundsGEP(ft, P, add(mul(add(p0, c64(q)), c64(W)), c64(static_cast<uint64_t>(c) * vl))),
                             align);
    });
  }
  emitFor(b, c64(static_cast<uint64_t>(nr) * vl), [&](Value *c) {
    Value *col = add(j0, c);
    Value *valid = below(col);
    Value *srcRow = b.CreateSelect(valid, col, c64(0));
    emitFor(b, b.CreateSub(K, fullK), [&](Value *pr) {
      Value *p = add(fullK, pr);
      Value *v = b.CreateLoad(ft, b.CreateInBoundsGEP(ft, B, add(mul(srcRow, K), p)));
      b.CreateStore(b.CreateSelect(valid, v, fzero), b.CreateInBoundsGEP(ft, P, add(mul(p, c64(W)), c)));
    });
  });
}

// The column masks of the panel at column j0 (all lanes when every panel is whole).
void panelMasks(llvm::IRBuilder<> &b, Value *j0, Value *N, unsigned vl, bool fullPanels, Value *(&mask)[kMatMulTileVectors]) {
  std::vector<llvm::Constant *> iota;
  for (unsigned l = 0; l < vl; ++l) iota.push_back(b.getInt64(l));
  Value *lanes = llvm::ConstantVector::get(iota);
  for (int c = 0; c < kMatMulTileVectors; ++c) {
    Value *col = b.CreateAdd(j0, b.getInt64(static_cast<uint64_t>(c) * vl), "", true, true);
    mask[c] = fullPanels ? llvm::Constant::getAllOnesValue(llvm::FixedVectorType::get(b.getInt1Ty(), vl))
                         : b.CreateICmpULT(b.CreateAdd(b.CreateVectorSplat(vl, col), lanes), b.CreateVectorSplat(vl, N));
  }
}

}  // namespace

void emitMatMulPackAll(llvm::IRBuilder<> &b, bool transB, Value *B, Value *P, Value *K, Value *N, llvm::Type *ft,
                       unsigned vectorBytes) {
  unsigned vl = vectorBytes / static_cast<unsigned>(ft->getPrimitiveSizeInBits() / 8);
  auto *vt = llvm::FixedVectorType::get(ft, vl);
  const uint64_t W = static_cast<uint64_t>(kMatMulTileVectors) * vl;
  auto *staticN = llvm::dyn_cast<llvm::ConstantInt>(N);
  const bool fullPanels = staticN && staticN->getZExtValue() % W == 0;
  PanelShare all = panelShare(b, N, W, b.getInt64(0), b.getInt64(1));
  emitFor(b, all.panels, [&](Value *jr) {
    Value *j0 = b.CreateMul(jr, b.getInt64(W), "", true, true);
    Value *mask[kMatMulTileVectors];
    panelMasks(b, j0, N, vl, fullPanels, mask);
    Value *panel = b.CreateInBoundsGEP(ft, P, b.CreateMul(jr, b.CreateMul(K, b.getInt64(W), "", true, true), "", true, true));
    emitPackPanel(b, transB, B, panel, K, N, j0, mask, fullPanels, liveVectors(N, vl), ft, vt);
  });
}

void emitMatMulTiles(llvm::IRBuilder<> &b, llvm::Function *fn, bool transA, bool transB, Value *A,
                     Value *B, Value *C, Value *P, Value *M, Value *K, Value *N, llvm::Type *ft,
                     unsigned vectorBytes, const TileEpilogue *epilogue, Value *part, Value *parts,
                     const std::vector<Value *> &tileOperands, const MatMulRows *rows, const PanelDone *afterPanel,
                     const FetchAhead *ahead) {
  constexpr int MR = kMatMulTileRows, NR = kMatMulTileVectors;
  unsigned vl = vectorBytes / static_cast<unsigned>(ft->getPrimitiveSizeInBits() / 8);
  auto *vt = llvm::FixedVectorType::get(ft, vl);
  llvm::Align align(ft->getPrimitiveSizeInBits() / 8);
  Value *zero = llvm::ConstantFP::get(vt, 0.0);
  const uint64_t W = static_cast<uint64_t>(NR) * vl;
  Value *tileCols = b.getInt64(W);
  // This part's share of the column panels, and its own panel scratch (a range of rows:
  // every panel, packed beforehand into P).
  PanelShare share = panelShare(b, N, W, rows ? b.getInt64(0) : part, rows ? b.getInt64(1) : parts);
  Value *firstTile = share.first, *endTile = share.end;
  if (!rows) P = b.CreateInBoundsGEP(ft, P, b.CreateMul(part, b.CreateMul(K, b.getInt64(W))));

  llvm::IRBuilder<> eb(&fn->getEntryBlock(), fn->getEntryBlock().begin());
  Value *acc[MR][NR];
  for (auto &row : acc)
    for (auto &a : row) a = eb.CreateAlloca(vt);
  // The running sums of a tile whose k has more than one block (sumOverP).
  Value *sums = eb.CreateAlloca(vt, b.getInt32(MR * NR));
  auto add = [&](Value *x, Value *y) { return b.CreateAdd(x, y, "", true, true); };
  auto mul = [&](Value *x, Value *y) { return b.CreateMul(x, y, "", true, true); };
  auto c64 = [&](uint64_t v) { return b.getInt64(v); };
  auto umin = [&](Value *x, Value *y) { return b.CreateSelect(b.CreateICmpULT(x, y), x, y); };
  // The first row of the last full tile (meaningful when M >= MR; of the range's rows).
  Value *lastRow = b.CreateSub(rows ? rows->end : M, b.getInt64(MR));

  // B's rows are read in place, without packing, when they are short and whole panels wide
  // (see the top of the file).
  auto *staticN = llvm::dyn_cast<llvm::ConstantInt>(N);
  // A static N that is a whole number of panels has no column past N in any panel: no masks
  // or bounds checks are emitted. (LLVM proves as much by itself for one part of the
  // panels, but not for a part's share of them when the product is split over threads,
  // and kept every check: twice the code and compile time of the one-part step.)
  const bool fullPanels = staticN && staticN->getZExtValue() % W == 0;
  const int nr = liveVectors(N, vl);
  const bool direct = !rows && !transB && fullPanels &&
                      staticN->getZExtValue() * (ft->getPrimitiveSizeInBits() / 8) <=
                          static_cast<uint64_t>(kMatMulDirectRowBytes);
  emitFor(b, b.CreateSub(endTile, firstTile), [&](Value *jr) {
    Value *j0 = mul(add(firstTile, jr), tileCols);
    Value *mask[NR];
    panelMasks(b, j0, N, vl, fullPanels, mask);
    // P[p, c] = op(B)[p, j0 + c], zero past N (or, packed beforehand, panel jr of P).
    Value *panel = P, *panelStride = c64(W);
    if (rows) {
      panel = b.CreateInBoundsGEP(ft, P, mul(jr, mul(K, c64(W))));
    } else if (direct) {
      panel = b.CreateInBoundsGEP(ft, B, j0);
      panelStride = N;
    } else {
      emitPackPanel(b, transB, B, P, K, N, j0, mask, fullPanels, nr, ft, vt);
    }
    // The first MR * nr iterations of a tile's loop over p each fetch one cache line (one
    // vector) of the next tile's elements in the buffers its epilogue reads and writes (the
    // product itself, or a weight and its optimiser state being updated): their rows lie a page or more
    // apart, so the hardware prefetchers do not fetch them, and the epilogue would wait for
    // memory (large bench step: 2% faster).
    auto prefetchNextTile = [&](Value *i0, Value *p) {
      emitIf(b, b.CreateICmpULT(p, c64(static_cast<uint64_t>(MR * nr))), [&] {
        Value *ni = add(i0, c64(MR));
        Value *wrap = b.CreateICmpUGE(ni, rows ? umin(add(rows->begin, mul(rows->t1, c64(MR))), rows->end) : M);
        Value *ti = b.CreateSelect(wrap, rows ? umin(add(rows->begin, mul(rows->t0, c64(MR))), lastRow) : c64(0),
                                   umin(ni, lastRow));
        Value *tj = b.CreateSelect(wrap, b.CreateAdd(j0, tileCols), j0);
        Value *row = b.CreateAdd(ti, b.CreateUDiv(p, c64(static_cast<uint64_t>(nr))));
        Value *col = b.CreateAdd(tj, b.CreateMul(b.CreateURem(p, c64(static_cast<uint64_t>(nr))), c64(vl)));
        for (Value *base : tileOperands) {
          // Not inbounds: past the last tile the address lies outside the buffer (a
          // prefetch never faults).
          Value *at = b.CreateGEP(ft, base, b.CreateAdd(b.CreateMul(row, N), col));
          b.CreateIntrinsic(llvm::Intrinsic::prefetch, {at->getType()},
                            {at, b.getInt32(1), b.getInt32(2), b.getInt32(1)});
        }
      });
    };
    // The last full tiles of a panel also fetch, one line every pfEvery iterations over p
    // (in the first block of p), the lines of B that the next panel of this part packs:
    // B's rows lie N floats apart (a page or more for a wide layer), so the hardware
    // prefetchers do not fetch them, and the packing loop waited for memory line by line
    // (large bench step 3% faster, medium 1%; one line every iteration or every 4 measured
    // the same).
    Value *pfStart = nullptr, *pfLines = nullptr;
    // The first block of p, where the prefetches are made (all of p when k <= kMatMulSumBlock).
    Value *firstBlock = umin(K, c64(kMatMulSumBlock));
    const bool pfNext = !direct && !rows;
    const uint64_t pfEvery = uint64_t(1) << kPanelPrefetchShift;
    Value *hasNext = pfNext ? b.CreateICmpULT(add(add(firstTile, jr), c64(1)), endTile) : nullptr;
    auto prefetchNextPanel = [&](Value *it, Value *p) {
      // Wraps (no flags) before pfStart, where `go` is false.
      Value *g = b.CreateAdd(b.CreateMul(b.CreateSub(it, pfStart), firstBlock), p);
      Value *q = b.CreateLShr(g, c64(kPanelPrefetchShift));
      Value *go = b.CreateAnd(b.CreateAnd(hasNext, b.CreateICmpUGE(it, pfStart)),
                              b.CreateAnd(b.CreateICmpEQ(b.CreateAnd(g, c64(pfEvery - 1)), c64(0)), b.CreateICmpULT(q, pfLines)));
      emitIf(b, go, [&] {
        Value *at;
        if (!transB) {
          // Row q / NR of B, vector q % NR of the next panel.
          Value *row = b.CreateUDiv(q, c64(NR));
          Value *col = add(add(j0, tileCols), mul(b.CreateURem(q, c64(NR)), c64(vl)));
          at = b.CreateGEP(ft, B, add(mul(row, N), col));
        } else {
          // Row j0 + W + q % W of B (past N: a prefetch never faults), line q / W of it.
          Value *row = add(add(j0, tileCols), b.CreateURem(q, tileCols));
          at = b.CreateGEP(ft, B, add(mul(row, K), mul(b.CreateUDiv(q, tileCols), c64(vl))));
        }
        b.CreateIntrinsic(llvm::Intrinsic::prefetch, {at->getType()}, {at, b.getInt32(0), b.getInt32(2), b.getInt32(1)});
      });
    };
    // The rows [j0, j0 + W) of the `ahead` buffers, one line of each every second iteration
    // over p of the panel's full tiles (in the first block of p).
    Value *aheadLines = nullptr, *lineElems = c64(64 / (ft->getPrimitiveSizeInBits() / 8)), *lineCols = nullptr;
    if (ahead) {
      lineCols = b.CreateUDiv(add(ahead->cols, b.CreateSub(lineElems, c64(1))), lineElems);
      Value *aheadRows = b.CreateSub(umin(add(j0, tileCols), ahead->rows), umin(j0, ahead->rows));
      aheadLines = mul(aheadRows, lineCols);
    }
    auto fetchAhead = [&](Value *it, Value *p) {
      Value *g = add(mul(it, firstBlock), p);
      Value *q = b.CreateLShr(g, c64(1));
      Value *go = b.CreateAnd(b.CreateICmpEQ(b.CreateAnd(g, c64(1)), c64(0)), b.CreateICmpULT(q, aheadLines));
      emitIf(b, go, [&] {
        Value *row = add(j0, b.CreateUDiv(q, lineCols));
        Value *col = mul(b.CreateURem(q, lineCols), lineElems);
        for (Value *base : ahead->bases) {
          Value *at = b.CreateGEP(ft, base, add(mul(row, ahead->cols), col));
          b.CreateIntrinsic(llvm::Intrinsic::prefetch, {at->getType()}, {at, b.getInt32(1), b.getInt32(2), b.getInt32(1)});
        }
      });
    };
    // The loop over p of a tile, in blocks of kMatMulSumBlock (see the top of the file). The
    // first block is the loop every product has, with the prefetches (all of p when k <=
    // kMatMulSumBlock: a product whose k is the batch pays one test per tile for the blocks
    // it may have); when k is longer, the running sums take it and the later blocks are
    // added to them out of line (getLaterBlocks).
    auto sumOverP = [&](const std::function<void(Value *)> &body, Value *i0, int mr) {
      auto *staticK = llvm::dyn_cast<llvm::ConstantInt>(K);
      emitFor(b, firstBlock, body);
      if (staticK && staticK->getZExtValue() <= static_cast<uint64_t>(kMatMulSumBlock)) return;
      emitIf(b, b.CreateICmpUGT(K, c64(kMatMulSumBlock)), [&] {
        auto sumAt = [&](int r, int c) { return b.CreateInBoundsGEP(vt, sums, c64(static_cast<uint64_t>(r * NR + c))); };
        for (int r = 0; r < mr; ++r)
          for (int c = 0; c < nr; ++c) b.CreateStore(b.CreateLoad(vt, acc[r][c]), sumAt(r, c));
        llvm::Function *later = getLaterBlocks(*fn, transA, mr, nr, ft, vt);
        b.CreateCall(later, {A, panel, panelStride, M, K, i0, sums})->setCallingConv(later->getCallingConv());
        for (int r = 0; r < mr; ++r)
          for (int c = 0; c < nr; ++c) b.CreateStore(b.CreateLoad(vt, sumAt(r, c)), acc[r][c]);
      });
    };
    // Rows [first, mr) of the tile are new (the rows before were done by the previous tile).
    auto tile = [&](Value *i0, Value *first, int mr, Value *it = nullptr) {
      for (int r = 0; r < mr; ++r)
        for (int c = 0; c < nr; ++c) b.CreateStore(zero, acc[r][c]);
      sumOverP([&](Value *p) {
        if (mr == MR && !tileOperands.empty()) prefetchNextTile(i0, p);
        if (it && pfNext) prefetchNextPanel(it, p);
        if (it && ahead) fetchAhead(it, p);
        emitTileFMAs(b, transA, A, panel, panelStride, M, K, i0, p, mr, nr, acc, ft, vt);
      }, i0, mr);
      for (int r = 0; r < mr; ++r)
        for (int c = 0; c < nr; ++c) {
          Value *row = add(i0, c64(static_cast<uint64_t>(r)));
          Value *col = add(j0, c64(static_cast<uint64_t>(c) * vl));
          // With an epilogue, C is the tile buffer [MR, NR*vl].
          Value *off = epilogue ? c64(static_cast<uint64_t>(r * NR + c) * vl) : add(mul(row, N), col);
          b.CreateMaskedStore(b.CreateLoad(vt, acc[r][c]), b.CreateInBoundsGEP(ft, C, off), align, mask[c]);
        }
      if (epilogue) (*epilogue)(i0, first, mr, j0, fullPanels ? tileCols : b.CreateSub(N, j0));
    };
    // The M mod MR leftover rows (see the top of the file): with M >= MR and at least
    // minLeft of them, one more full tile, moved up to end at row M (it overlaps the one
    // before); else tiles of two rows and one (the last `ones` rows). A static M emits only
    // the loops it runs.
    if (rows) {
      // Tiles t0 .. t1-1 of the range, the last moved up to end at its end.
      emitFor(b, b.CreateSub(rows->t1, rows->t0), [&](Value *q) {
        Value *start = add(rows->begin, mul(add(rows->t0, q), c64(MR)));
        Value *i0 = umin(start, lastRow);
        tile(i0, b.CreateSub(start, i0), MR);
      });
      return;
    }
    const uint64_t minLeft = transA ? 1 : 3;
    Value *left = b.CreateURem(M, c64(MR));
    Value *overlap = b.CreateAnd(b.CreateICmpUGE(M, c64(MR)), b.CreateICmpUGE(left, c64(minLeft)));
    Value *ones = b.CreateSelect(overlap, c64(0), left);
    auto *staticM = llvm::dyn_cast<llvm::ConstantInt>(M);
    uint64_t m = staticM ? staticM->getZExtValue() : 0;
    if (!staticM || m >= MR) {
      Value *tiles = b.CreateAdd(b.CreateUDiv(M, c64(MR)), b.CreateZExt(overlap, b.getInt64Ty()));
      if (pfNext) {
        // The last ceil(lines * pfEvery / K) full tiles fetch one line every pfEvery iterations.
        pfLines = transB ? mul(tileCols, b.CreateUDiv(add(K, c64(vl - 1)), c64(vl))) : mul(K, c64(NR));
        Value *k1 = b.CreateSelect(b.CreateICmpEQ(K, c64(0)), c64(1), firstBlock);
        Value *span = b.CreateUDiv(add(mul(pfLines, c64(pfEvery)), b.CreateSub(k1, c64(1))), k1);
        pfStart = b.CreateSub(tiles, umin(tiles, span));
      }
      emitFor(b, tiles, [&](Value *it) {
        Value *start = mul(it, c64(MR));
        Value *i0 = umin(start, lastRow);
        tile(i0, b.CreateSub(start, i0), MR, it);
      });
    }
    if (!staticM || (m % MR != 0 && (m < MR || m % MR < minLeft))) {
      // Two rows at a time, then the odd one: a two-row tile has 8 FMA chains, enough to
      // fill the FMA latency, so it costs about what one one-row tile does.
      Value *firstOne = b.CreateSub(M, ones);
      uint64_t staticOnes = m < MR ? m : m % MR;
      if (!staticM || staticOnes >= 2)
        emitFor(b, b.CreateUDiv(ones, c64(2)), [&](Value *ip) { tile(add(firstOne, mul(ip, c64(2))), c64(0), 2); });
      if (!staticM) {
        emitIf(b, b.CreateTrunc(ones, b.getInt1Ty()), [&] { tile(b.CreateSub(M, c64(1)), c64(0), 1); });
      } else if (staticOnes % 2) {
        tile(b.CreateSub(M, c64(1)), c64(0), 1);
      }
    }
    if (afterPanel) (*afterPanel)(add(firstTile, jr));
  });
}

llvm::Function *getMatMul(llvm::Module &mod, const MatMulShape &s,
                          const std::vector<std::string> &dimNames, llvm::Type *ft,
                          const TargetDesc &t) {
  auto dimName = [&](const ir::Dim &d) {
    std::string out = ir::formatDim(d, dimNames);
    for (char &c : out)
      if (c == '*') c = '_';
    return out;
  };
  std::string name = fmt::format("gradc_matmul_{}{}_{}x{}x{}_{}", s.transA ? 't' : 'n',
                                 s.transB ? 't' : 'n', dimName(s.m), dimName(s.k), dimName(s.n),
                                 ft->isDoubleTy() ? "f64" : "f32");
  if (llvm::Function *fn = mod.getFunction(name)) return fn;

  llvm::LLVMContext &ctx = mod.getContext();
  llvm::IRBuilder<> b(ctx);
  llvm::Type *ptr = b.getPtrTy(), *i64 = b.getInt64Ty();
  auto *fty = llvm::FunctionType::get(b.getVoidTy(), {ptr, ptr, ptr, ptr, i64, i64, i64, i64, i64}, false);
  auto *fn = llvm::Function::Create(fty, llvm::GlobalValue::InternalLinkage, name, mod);
  setTargetAttributes(*fn, t);
  for (unsigned i = 0; i < 4; ++i) {
    fn->addParamAttr(i, llvm::Attribute::NoAlias);
    fn->addParamAttr(i, llvm::Attribute::NoCapture);
  }
  fn->addParamAttr(0, llvm::Attribute::ReadOnly);
  fn->addParamAttr(1, llvm::Attribute::ReadOnly);
  b.SetInsertPoint(llvm::BasicBlock::Create(ctx, "entry", fn));
  Value *A = fn->getArg(0), *B = fn->getArg(1), *C = fn->getArg(2), *S = fn->getArg(3);
  // Static dims are constants, so the function is specialised to them.
  auto size = [&](const ir::Dim &d, unsigned arg) -> Value * {
    if (d.isStatic()) return b.getInt64(static_cast<uint64_t>(d.factor));
    return fn->getArg(arg);
  };
  Value *M = size(s.m, 4), *K = size(s.k, 5), *N = size(s.n, 6);

  emitMatMulTiles(b, fn, s.transA, s.transB, A, B, C, S, M, K, N, ft, matmulVectorBytes(t), nullptr,
                  fn->getArg(7), fn->getArg(8), {C});
  b.CreateRetVoid();
  return fn;
}

}  // namespace gradc::codegen
