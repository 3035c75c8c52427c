// Matrix products: `gradc_matmul_<flags>_<m>x<k>x<n>`, one internal function per shape and
// transpose flags, with C = op(A) @ op(B) and row-major A, B, C.
//
// The loop order keeps the innermost loop contiguous so that it vectorises:
//   nn  C[i,:] += A[i,p] * B[p,:]        for i, p        (i-k-j)
//   tn  C[i,:] += A[p,i] * B[p,:]        for p, i        (k-i-j)
//   nt  C[i,j]  = sum_p A[i,p] * B[j,p]  dot products along p (both rows contiguous)
//   tt  C[i,j]  = sum_p A[p,i] * B[j,p]
// Products and sums may contract to FMA, and the dot products may be reassociated (so they
// vectorise); everything else keeps the interpreter's order. This is the seam where a
// register-blocked kernel will go: callers only see the function's name and arguments.
#include <llvm/IR/IRBuilder.h>

#include "codegen/LowerToLLVM.h"

namespace gradc::codegen {

using llvm::Value;

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
  auto *fty = llvm::FunctionType::get(b.getVoidTy(), {ptr, ptr, ptr, i64, i64, i64}, false);
  auto *fn = llvm::Function::Create(fty, llvm::GlobalValue::InternalLinkage, name, mod);
  setTargetAttributes(*fn, t);
  for (unsigned i = 0; i < 3; ++i) {
    fn->addParamAttr(i, llvm::Attribute::NoAlias);
    fn->addParamAttr(i, llvm::Attribute::NoCapture);
  }
  fn->addParamAttr(0, llvm::Attribute::ReadOnly);
  fn->addParamAttr(1, llvm::Attribute::ReadOnly);
  b.SetInsertPoint(llvm::BasicBlock::Create(ctx, "entry", fn));
  Value *A = fn->getArg(0), *B = fn->getArg(1), *C = fn->getArg(2);
  // Static dims are constants, so the function is specialised to them.
  auto size = [&](const ir::Dim &d, unsigned arg) -> Value * {
    if (d.isStatic()) return b.getInt64(static_cast<uint64_t>(d.factor));
    return fn->getArg(arg);
  };
  Value *M = size(s.m, 3), *K = size(s.k, 4), *N = size(s.n, 5);

  llvm::FastMathFlags fmf;
  fmf.setAllowContract();
  b.setFastMathFlags(fmf);
  // &base[row * ld + col] and its value
  auto elem = [&](Value *base, Value *row, Value *ld, Value *col) {
    return b.CreateInBoundsGEP(ft, base, b.CreateAdd(b.CreateMul(row, ld, "", true, true), col, "", true, true));
  };
  auto load = [&](Value *base, Value *row, Value *ld, Value *col) {
    return b.CreateLoad(ft, elem(base, row, ld, col));
  };
  auto zero = llvm::ConstantFP::get(ft, 0.0);

  if (!s.transB) {
    // Zero C, then rank-1 updates along contiguous rows of B and C.
    emitFor(b, M, [&](Value *i) {
      emitFor(b, N, [&](Value *j) { b.CreateStore(zero, elem(C, i, N, j)); });
    });
    auto update = [&](Value *i, Value *p) {
      Value *a = s.transA ? load(A, p, M, i) : load(A, i, K, p);
      emitFor(b, N, [&](Value *j) {
        Value *cp = elem(C, i, N, j);
        Value *bv = load(B, p, N, j);
        b.CreateStore(b.CreateFAdd(b.CreateLoad(ft, cp), b.CreateFMul(a, bv)), cp);
      });
    };
    if (s.transA)
      emitFor(b, K, [&](Value *p) { emitFor(b, M, [&](Value *i) { update(i, p); }); });
    else
      emitFor(b, M, [&](Value *i) { emitFor(b, K, [&](Value *p) { update(i, p); }); });
  } else {
    llvm::FastMathFlags dot = fmf;
    dot.setAllowReassoc();
    emitFor(b, M, [&](Value *i) {
      emitFor(b, N, [&](Value *j) {
        llvm::IRBuilder<> eb(&fn->getEntryBlock(), fn->getEntryBlock().begin());
        Value *acc = eb.CreateAlloca(ft);
        b.CreateStore(zero, acc);
        emitFor(b, K, [&](Value *p) {
          Value *a = s.transA ? load(A, p, M, i) : load(A, i, K, p);
          Value *bv = load(B, j, K, p);
          b.setFastMathFlags(dot);
          b.CreateStore(b.CreateFAdd(b.CreateLoad(ft, acc), b.CreateFMul(a, bv)), acc);
          b.setFastMathFlags(fmf);
        });
        b.CreateStore(b.CreateLoad(ft, acc), elem(C, i, N, j));
      });
    });
  }
  b.CreateRetVoid();
  return fn;
}

}  // namespace gradc::codegen
