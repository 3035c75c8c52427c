// Lowering to LLVM IR (see LowerToLLVM.h for the shape of the module).
//
// A value is produced, index by index, by `at(v, idx)`: a materialised value (argument,
// kernel, alias) is a load at its row-major offset; an inlined value is its op applied to
// its operands' `at`, with NumPy broadcasting done by index arithmetic (a size-1 axis of an
// operand reads index 0). So one loop nest over a kernel's shape evaluates the whole fused
// expression tree below it. Each op's semantics are those of compiler/interp exactly:
// stable sigmoid and softplus, relu/abs/sign at 0 and NaN, NaN-propagating maximum/max,
// comparisons giving 1.0/0.0, the row's max subtracted in logsumexp, softmax, log_softmax.
//
// Check mode (CodegenOptions::checkNumerics): each step function keeps an accumulator and
// ors into it the bits of `v - v` for every float value v it computes (+0.0, all bits zero,
// when v is finite; a NaN when v is NaN or infinite, and an or of NaNs is a NaN): each
// element-wise result in a fused loop, each reduction and row result, each element of a
// matrix product (read from the tile in a fused epilogue; a stored product where its readers
// load it, or in a pass over it when some reader does not). An integer or is associative, so
// the vectoriser keeps the accumulator in a vector register (a reduction), and a loop it
// leaves scalar waits one cycle per value, not the four of a floating-point add. In a matmul
// epilogue the accumulator is a small array, one word per tile element, and the kernel's own
// value is checked in a second loop over the tile's stored rows. Two rules leave out
// checks that cannot change the answer: an inlined operand whose NaN or Inf always reaches
// its user's value (an operand of +, -, *, the numerator of /, neg, log...) is covered by its
// user's check; an op that makes no NaN or Inf from finite operands (relu, where, maximum,
// tanh...) is not checked when its operands are. At its end the step ors its accumulator
// into the flag at the start of `work`, which the entry point sets to 0 first.
#include "codegen/LowerToLLVM.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <map>
#include <set>

#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/Verifier.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Transforms/Utils/FunctionComparator.h>

#include "codegen/Fusion.h"
#include "codegen/MemoryPlan.h"

namespace gradc::codegen {

using namespace ir;
using llvm::Value;

void setTargetAttributes(llvm::Function &fn, const TargetDesc &t) {
  if (!t.cpu.empty()) fn.addFnAttr("target-cpu", t.cpu);
  if (!t.features.empty()) fn.addFnAttr("target-features", t.features);
  if (t.avx512) fn.addFnAttr("prefer-vector-width", "512");
  fn.addFnAttr(llvm::Attribute::NoUnwind);
}

void emitFor(llvm::IRBuilder<> &b, Value *n, const std::function<void(Value *)> &body) {
  llvm::LLVMContext &ctx = b.getContext();
  llvm::BasicBlock *pre = b.GetInsertBlock();
  llvm::Function *fn = pre->getParent();
  auto *header = llvm::BasicBlock::Create(ctx, "loop", fn);
  auto *bodyBB = llvm::BasicBlock::Create(ctx, "body", fn);
  auto *exit = llvm::BasicBlock::Create(ctx, "done", fn);
  b.CreateBr(header);
  b.SetInsertPoint(header);
  llvm::PHINode *i = b.CreatePHI(b.getInt64Ty(), 2, "i");
  i->addIncoming(b.getInt64(0), pre);
  b.CreateCondBr(b.CreateICmpSLT(i, n), bodyBB, exit);
  b.SetInsertPoint(bodyBB);
  body(i);
  Value *next = b.CreateAdd(i, b.getInt64(1), "", /*HasNUW=*/true, /*HasNSW=*/true);
  i->addIncoming(next, b.GetInsertBlock());
  b.CreateBr(header);
  b.SetInsertPoint(exit);
}

void emitIf(llvm::IRBuilder<> &b, Value *cond, const std::function<void()> &then) {
  llvm::Function *fn = b.GetInsertBlock()->getParent();
  auto *thenBB = llvm::BasicBlock::Create(b.getContext(), "then", fn);
  auto *join = llvm::BasicBlock::Create(b.getContext(), "endif", fn);
  b.CreateCondBr(cond, thenBB, join);
  b.SetInsertPoint(thenBB);
  then();
  b.CreateBr(join);
  b.SetInsertPoint(join);
}

namespace {

using Index = std::vector<Value *>;

// The most step calls in one function (the entry, or each of the functions it calls).
constexpr size_t kEntryChunkSteps = 128;
// About how many elements a sum of everything adds in one partial, and how many rows a sum
// over axes that keep the last adds into one (emitReduce).
constexpr int64_t kSumBlock = 1024;
// The columns such a sum adds at a time (emitBlockedSum, getSumRows).
constexpr int64_t kSumStrip = 256;

// The columns [0, cols) of a blocked sum in strips of kSumStrip: strip(c0, width) for each
// (one strip of the static width when cols is a constant of at most kSumStrip).
void emitStrips(llvm::IRBuilder<> &b, Value *cols, const std::function<void(Value *, Value *)> &strip) {
  auto *staticCols = llvm::dyn_cast<llvm::ConstantInt>(cols);
  if (staticCols && staticCols->getSExtValue() <= kSumStrip) return strip(b.getInt64(0), cols);
  emitFor(b, b.CreateUDiv(b.CreateAdd(cols, b.getInt64(kSumStrip - 1)), b.getInt64(kSumStrip)), [&](Value *i) {
    Value *c0 = b.CreateMul(i, b.getInt64(kSumStrip));
    Value *left = b.CreateSub(cols, c0);
    strip(c0, b.CreateSelect(b.CreateICmpULT(left, b.getInt64(kSumStrip)), left, b.getInt64(kSumStrip)));
  });
}

// out[j] for j < width (at most kSumStrip): the sum over `rows` rows of element(row, j), in
// blocks of kSumBlock rows, each block into part[j] (a stack array of kSumStrip) from zero,
// the partials added into out in order.
void emitRowBlocks(llvm::IRBuilder<> &b, llvm::Type *ft, Value *part, Value *out, Value *rows, Value *width,
                   const std::function<Value *(Value *row, Value *j)> &element) {
  llvm::Align align(ft->getPrimitiveSizeInBits() / 8);
  Value *bytes = b.CreateMul(width, b.getInt64(ft->getPrimitiveSizeInBits() / 8));
  b.CreateMemSet(out, b.getInt8(0), bytes, align);
  emitFor(b, b.CreateUDiv(b.CreateAdd(rows, b.getInt64(kSumBlock - 1)), b.getInt64(kSumBlock)), [&](Value *blk) {
    Value *first = b.CreateMul(blk, b.getInt64(kSumBlock));
    Value *left = b.CreateSub(rows, first);
    b.CreateMemSet(part, b.getInt8(0), bytes, align);
    emitFor(b, b.CreateSelect(b.CreateICmpULT(left, b.getInt64(kSumBlock)), left, b.getInt64(kSumBlock)), [&](Value *i) {
      Value *row = b.CreateAdd(first, i);
      emitFor(b, width, [&](Value *j) {
        Value *p = b.CreateInBoundsGEP(ft, part, j);
        b.CreateStore(b.CreateFAdd(b.CreateLoad(ft, p), element(row, j)), p);
      });
    });
    emitFor(b, width, [&](Value *j) {
      Value *o = b.CreateInBoundsGEP(ft, out, j);
      b.CreateStore(b.CreateFAdd(b.CreateLoad(ft, o), b.CreateLoad(ft, b.CreateInBoundsGEP(ft, part, j))), o);
    });
  });
}

// A sum over the rows of a stored [rows, cols] buffer of more than kSumBlock rows, into
// out[cols], by emitRowBlocks a strip at a time. Out of line and shared by every such sum of
// the module (emitReduce: a bias's gradient over a whole data file); its arguments are x,
// out, rows, cols.
llvm::Function *getSumRows(llvm::Module &mod, llvm::Type *ft, const TargetDesc &t) {
  std::string name = fmt::format("gradc_sum_rows_{}", ft->isDoubleTy() ? "f64" : "f32");
  if (llvm::Function *fn = mod.getFunction(name)) return fn;
  llvm::LLVMContext &ctx = mod.getContext();
  llvm::IRBuilder<> b(ctx);
  llvm::Type *ptr = b.getPtrTy(), *i64 = b.getInt64Ty();
  auto *fn = llvm::Function::Create(llvm::FunctionType::get(b.getVoidTy(), {ptr, ptr, i64, i64}, false),
                                    llvm::GlobalValue::InternalLinkage, name, mod);
  setTargetAttributes(*fn, t);
  // Compiled small: it runs once per step of a big batch only.
  for (auto a : {llvm::Attribute::NoInline, llvm::Attribute::Cold, llvm::Attribute::OptimizeForSize, llvm::Attribute::MinSize})
    fn->addFnAttr(a);
  for (unsigned i : {0u, 1u}) fn->addParamAttr(i, llvm::Attribute::NoAlias);
  b.SetInsertPoint(llvm::BasicBlock::Create(ctx, "entry", fn));
  Value *x = fn->getArg(0), *out = fn->getArg(1), *rows = fn->getArg(2), *cols = fn->getArg(3);
  Value *part = b.CreateAlloca(llvm::ArrayType::get(ft, kSumStrip));
  emitStrips(b, cols, [&](Value *c0, Value *width) {
    emitRowBlocks(b, ft, part, b.CreateInBoundsGEP(ft, out, c0), rows, width, [&](Value *row, Value *j) {
      return b.CreateLoad(ft, b.CreateInBoundsGEP(ft, x, b.CreateAdd(b.CreateMul(row, cols), b.CreateAdd(c0, j))));
    });
  });
  b.CreateRetVoid();
  return fn;
}

// The same body and signature, up to the names of values (what MergeFunctions compares).
bool sameFunction(const llvm::Function &a, const llvm::Function &b) {
  llvm::GlobalNumberState numbers;
  return llvm::FunctionComparator(&a, &b, &numbers).compare() == 0;
}

class Lowering {
public:
  Lowering(const Function &f, const CodegenOptions &o, const TargetDesc &t, llvm::LLVMContext &ctx,
           llvm::Module &mod)
      : f_(f), o_(o), t_(t), ctx_(ctx), mod_(mod), b_(ctx), fp_(planFusion(f)),
        mp_(planMemory(f, fp_, o.f64 ? 8 : 4, std::max(o.threads, 1), interleaveLimit(o))), threads_(std::max(o.threads, 1)),
        check_(o.checkNumerics) {
    ft_ = o.f64 ? b_.getDoubleTy() : b_.getFloatTy();
    if (check_) {
      planMatMulChecks();
      planSkips();
    }
  }

  void run(const std::string &symbol) {
    emitWorkSize(symbol + "_work_size");
    emitEntry(symbol);
  }

private:
  const Function &f_;
  const CodegenOptions &o_;
  const TargetDesc &t_;
  llvm::LLVMContext &ctx_;
  llvm::Module &mod_;
  llvm::IRBuilder<> b_;
  FusionPlan fp_;
  MemoryPlan mp_;
  int threads_;
  llvm::Type *ft_;
  bool check_;

  // Check mode, per step function: the accumulator of `v - v`, and a count of the passes
  // that recompute values already checked (the second and third pass over a row).
  Value *checkAcc_ = nullptr;
  int checkMuted_ = 0;
  Value *checkLane_ = nullptr;  // in a matmul epilogue: this element's word of the tile's flags
  bool covered_ = false;        // the next at() is an operand whose check its user's covers
  ValueId deferred_ = kNoValue;  // a matmul epilogue's value, checked after the tile's rows
  std::map<ValueId, Value *> inLoop_;  // a loop group's unstored kernels at the current index
  std::vector<bool> checkAtReads_;  // per node: a stored matmul checked where it is read
  std::vector<bool> skip_;          // per node: not checked, its operands' checks cover it
  std::map<llvm::Function *, llvm::Function *> tasks_;  // per step function split over threads:
                                                        // its task for the thread pool

  // An op that gives a finite value for finite operands (relu, neg, tanh, maximum, where...)
  // needs no check of its own when every operand is guarded: a NaN or Inf in it implies one
  // in a value that is checked. Guarded: a value checked where it is computed (or covered by
  // its user's check, or skipped by this rule), a finite constant, a comparison; not an
  // argument of the step (inputs are finite, but a param loaded from a file need not be).
  static bool createsNoNonFinite(const Node &n) {
    switch (n.op) {
    case Op::Neg: case Op::Abs: case Op::Sign: case Op::Relu: case Op::Tanh: case Op::Sigmoid:
    case Op::Sin: case Op::Cos: case Op::Maximum: case Op::Minimum: case Op::Where: return true;
    case Op::LeakyRelu: return std::fabs(n.value) <= 1;
    default: return false;
    }
  }

  void planSkips() {
    size_t count = static_cast<size_t>(f_.size());
    std::vector<bool> guarded(count, false);
    skip_.assign(count, false);
    for (ValueId v = 0; v < f_.size(); ++v) {
      const Node &n = node(v);
      size_t i = static_cast<size_t>(v);
      bool operandsGuarded = true;
      for (ValueId u : n.operands) operandsGuarded = operandsGuarded && guarded[static_cast<size_t>(u)];
      if (n.op == Op::Const) guarded[i] = std::isfinite(n.value);
      else if (isLeaf(n.op)) guarded[i] = false;
      else if (n.dtype == DType::I32 || opKind(n.op) == OpKind::Compare || n.op == Op::DimSize ||
               n.op == Op::OneHot || n.op == Op::Cast) guarded[i] = true;
      else if (!computesNew(n)) guarded[i] = operandsGuarded;  // layout ops
      else {
        skip_[i] = createsNoNonFinite(n) && operandsGuarded && !n.operands.empty();
        guarded[i] = true;
      }
    }
  }

  // True when v's value is checked where it is computed (unless covered by its user).
  bool ownCheck(ValueId v) const { return computesNew(node(v)) && !skip_[static_cast<size_t>(v)]; }

  // A stored (not fused) matmul is checked where its readers load it, element by element,
  // when every reader does so (element-wise ops, reductions, rows); otherwise, or when
  // nothing reads it (a result), in a pass over it after the product.
  void planMatMulChecks() {
    size_t count = static_cast<size_t>(f_.size());
    std::vector<int> readers(count, 0);
    std::vector<bool> other(count, false);
    for (ValueId u = 0; u < f_.size(); ++u) {
      if (role(u) == Role::Dead) continue;
      const Node &un = node(u);
      OpKind k = opKind(un.op);
      bool loads = k == OpKind::Unary || k == OpKind::Binary || k == OpKind::Compare || k == OpKind::Reduce ||
                   k == OpKind::Row || un.op == Op::Where || un.op == Op::ArgMax || un.op == Op::Broadcast;
      for (ValueId v : un.operands) {
        ++readers[static_cast<size_t>(v)];
        if (!loads) other[static_cast<size_t>(v)] = true;
      }
    }
    checkAtReads_.assign(count, false);
    for (ValueId v = 0; v < f_.size(); ++v)
      checkAtReads_[static_cast<size_t>(v)] = node(v).op == Op::MatMul && role(v) == Role::Kernel &&
                                              readers[static_cast<size_t>(v)] > 0 && !other[static_cast<size_t>(v)];
  }

  // Per generated function.
  Value *dims_ = nullptr;
  std::map<std::pair<int64_t, uint32_t>, Value *> dimCache_;
  std::map<std::pair<int, int>, Value *> bufPtr_;
  llvm::BasicBlock *entryBB_ = nullptr;
  Value *part_ = nullptr, *parts_ = nullptr;  // a matmul step's share of the work
  struct {
    ValueId value = kNoValue;
    Value *ptr = nullptr, *i0 = nullptr, *j0 = nullptr, *width = nullptr;
  } tile_;

  Role role(ValueId v) const { return fp_.role[static_cast<size_t>(v)]; }
  // The buffer that holds materialised value v (its root's home), in this step function.
  Value *homePtr(ValueId v) { return ptrOf(mp_.homeOf(fp_.root[static_cast<size_t>(v)])); }
  ValueId idOf(const Node &n) const { return static_cast<ValueId>(&n - f_.nodes.data()); }
  const Node &node(ValueId v) const { return f_.node(v); }
  llvm::Type *elemTy(const Node &n) const { return n.dtype == DType::I32 ? llvm::Type::getInt32Ty(ctx_) : ft_; }
  llvm::Type *ptrTy() { return b_.getPtrTy(); }
  Value *fconst(double v) { return llvm::ConstantFP::get(ft_, v); }
  Value *i64(int64_t v) { return b_.getInt64(static_cast<uint64_t>(v)); }

  void beginFunction(llvm::Function *fn, Value *dims) {
    entryBB_ = llvm::BasicBlock::Create(ctx_, "entry", fn);
    b_.SetInsertPoint(entryBB_);
    dims_ = dims;
    dimCache_.clear();
    bufPtr_.clear();
  }

  // The run-time value of one symbolic dim, loaded once in the entry block.
  Value *symValue(int s) {
    auto key = std::make_pair(int64_t{-1}, static_cast<uint32_t>(s));
    if (auto it = dimCache_.find(key); it != dimCache_.end()) return it->second;
    llvm::IRBuilder<> eb(entryBB_, entryBB_->begin());
    Value *p = eb.CreateInBoundsGEP(b_.getInt64Ty(), dims_, eb.getInt64(static_cast<uint64_t>(s)));
    Value *v = eb.CreateLoad(b_.getInt64Ty(), p, f_.dimNames.at(static_cast<size_t>(s)));
    dimCache_[key] = v;
    return v;
  }

  Value *dimValue(const Dim &d) {
    Value *v = i64(d.factor);
    for (uint32_t s = d.syms; s; s &= s - 1) v = b_.CreateMul(v, symValue(std::countr_zero(s)), "", true, true);
    return v;
  }

  Value *linear(const Shape &s, const Index &idx) {
    GRADC_ASSERT(idx.size() == s.size(), "index of rank {} for a shape of rank {}", idx.size(), s.size());
    Value *off = i64(0);
    for (size_t i = 0; i < s.size(); ++i)
      off = b_.CreateAdd(b_.CreateMul(off, dimValue(s[i]), "", true, true), idx[i], "", true, true);
    return off;
  }

  Value *ptrOf(Buffer buf) {
    auto it = bufPtr_.find({buf.kind, buf.index});
    GRADC_ASSERT(it != bufPtr_.end(), "buffer not passed to this step");
    return it->second;
  }

  Value *elemPtr(Buffer buf, llvm::Type *ty, const Shape &s, const Index &idx) {
    return b_.CreateInBoundsGEP(ty, ptrOf(buf), linear(s, idx));
  }

  // A scalar variable (promoted to a register by mem2reg).
  Value *scalarVar(llvm::Type *ty, Value *init) {
    llvm::IRBuilder<> eb(entryBB_, entryBB_->begin());
    Value *a = eb.CreateAlloca(ty);
    b_.CreateStore(init, a);
    return a;
  }

  void loopNest(const Shape &s, const std::function<void(const Index &)> &body) {
    Index idx(s.size());
    auto rec = [&](auto &self, size_t d) -> void {
      if (d == s.size()) {
        body(idx);
        return;
      }
      emitFor(b_, dimValue(s[d]), [&](Value *i) {
        idx[d] = i;
        self(self, d + 1);
      });
    };
    rec(rec, 0);
  }

  // The index into an operand of shape `os` for index `idx` of a broadcast result `rs`.
  Index broadcastIndex(const Shape &os, const Shape &rs, const Index &idx) {
    size_t off = rs.size() - os.size();
    Index out(os.size());
    for (size_t j = 0; j < os.size(); ++j)
      out[j] = os[j] == Dim::fixed(1) && rs[off + j] != Dim::fixed(1) ? i64(0) : idx[off + j];
    return out;
  }

  // ---- Evaluation of a value at an index

  Value *at(ValueId v, const Index &idx) {
    bool covered = covered_;
    covered_ = false;
    Role r = role(v);
    if (r == Role::Inline) return compute(v, idx, covered);
    if (auto it = inLoop_.find(v); it != inLoop_.end()) return it->second;
    if (v == tile_.value) {
      // A fused matmul's element, from the tile just computed: [row - i0][col - j0].
      Value *off = b_.CreateAdd(b_.CreateMul(b_.CreateSub(idx[0], tile_.i0), tile_.width),
                                b_.CreateSub(idx[1], tile_.j0));
      Value *tv = b_.CreateLoad(ft_, b_.CreateInBoundsGEP(ft_, tile_.ptr, off));
      return covered ? tv : checked(tv);
    }
    ValueId root = fp_.root[static_cast<size_t>(v)];
    const Node &n = node(v);
    Value *x = b_.CreateLoad(elemTy(n), elemPtr(mp_.homeOf(root), elemTy(n), n.shape, idx));
    return checkAcc_ && !covered && checkAtReads_[static_cast<size_t>(v)] ? checked(x) : x;
  }

  Value *operand(const Node &n, int i, const Index &idx) {
    ValueId u = n.operands[static_cast<size_t>(i)];
    // Check mode: an operand that n reads once per element and whose NaN or Inf always
    // makes n's value NaN or Inf is covered by n's check.
    covered_ = checkAcc_ && propagates(n.op, i) && node(u).shape == n.shape && ownCheck(idOf(n));
    return at(u, broadcastIndex(node(u).shape, n.shape, idx));
  }

  // True when a NaN or Inf in operand i always gives a NaN or Inf (inf * 0 is NaN; not so
  // exp(-inf) = 0, x / inf = 0, tanh, sigmoid, relu, where, maximum).
  static bool propagates(Op op, int i) {
    switch (op) {
    case Op::Neg: case Op::Abs: case Op::Sqrt: case Op::Log: case Op::Sin: case Op::Cos: case Op::Square:
    case Op::Add: case Op::Sub: case Op::Mul: return true;
    case Op::Div: return i == 0;
    default: return false;
    }
  }

  Value *isNaN(Value *x) { return b_.CreateFCmpUNO(x, x); }
  Value *select(Value *c, Value *a, Value *b) { return b_.CreateSelect(c, a, b); }
  Value *unary(llvm::Intrinsic::ID id, Value *x) { return b_.CreateUnaryIntrinsic(id, x); }

  Value *libm(const char *name32, const char *name64, Value *x) {
    llvm::FunctionType *ty = llvm::FunctionType::get(ft_, {ft_}, false);
    llvm::FunctionCallee fn = mod_.getOrInsertFunction(o_.f64 ? name64 : name32, ty);
    if (auto *decl = llvm::dyn_cast<llvm::Function>(fn.getCallee())) {
      decl->setDoesNotAccessMemory();
      decl->setDoesNotThrow();
      decl->addFnAttr(llvm::Attribute::WillReturn);
    }
    auto *call = b_.CreateCall(fn, {x});
    call->setDoesNotAccessMemory();
    return call;
  }

  Value *cmpResult(Value *c) { return select(c, fconst(1), fconst(0)); }

  // Check mode: acc |= bits(v - v).
  llvm::Type *checkTy() { return o_.f64 ? b_.getInt64Ty() : b_.getInt32Ty(); }
  Value *checked(Value *v) {
    if (!checkAcc_ || checkMuted_ > 0 || !v->getType()->isFloatingPointTy()) return v;
    Value *bits = b_.CreateBitCast(b_.CreateFSub(v, v), checkTy());
    Value *acc = checkLane_ ? checkLane_ : checkAcc_;
    b_.CreateStore(b_.CreateOr(b_.CreateLoad(checkTy(), acc), bits), acc);
    return v;
  }

  // Values that are computed here and can be non-finite: not constants, dim sizes,
  // comparisons and casts, nor a value read from another (layout ops).
  static bool computesNew(const Node &n) {
    if (n.dtype == DType::I32 || opKind(n.op) == OpKind::Compare) return false;
    switch (n.op) {
    case Op::Const: case Op::DimSize: case Op::Transpose: case Op::Broadcast: case Op::StopGradient:
    case Op::Reshape: case Op::OneHot: case Op::Cast: return false;
    default: return true;
    }
  }

  Value *compute(ValueId v, const Index &idx, bool covered = false) {
    Value *r = computeValue(v, idx);
    return checkAcc_ && !covered && ownCheck(v) && v != deferred_ ? checked(r) : r;
  }

  Value *computeValue(ValueId v, const Index &idx) {
    const Node &n = node(v);
    switch (n.op) {
    case Op::Const: return fconst(n.value);
    case Op::DimSize: return b_.CreateSIToFP(dimValue(n.dim), ft_);
    case Op::Transpose: return at(n.operands[0], {idx[1], idx[0]});
    case Op::Broadcast:
    case Op::StopGradient: return operand(n, 0, idx);
    case Op::Reshape: {
      // Materialised operand, same row-major data: read at the flat offset.
      ValueId u = n.operands[0];
      const Node &un = node(u);
      Value *p = b_.CreateInBoundsGEP(elemTy(un), ptrOf(mp_.homeOf(fp_.root[static_cast<size_t>(u)])),
                                      linear(n.shape, idx));
      return b_.CreateLoad(elemTy(un), p);
    }
    case Op::OneHot: {
      Index inner(idx.begin(), idx.end() - 1);
      Value *label = b_.CreateSExt(at(n.operands[0], inner), b_.getInt64Ty());
      return cmpResult(b_.CreateICmpEQ(label, idx.back()));
    }
    case Op::Cast: return b_.CreateSIToFP(operand(n, 0, idx), ft_);
    default: break;
    }
    if (opKind(n.op) == OpKind::Unary) return computeUnary(n, operand(n, 0, idx));
    if (opKind(n.op) == OpKind::Binary) {
      Value *b = operand(n, 1, idx);
      // Pow's exponent offset, added in the float type (a constant sum is folded by LLVM).
      if (n.op == Op::Pow && n.value != 0) b = b_.CreateFAdd(b, fconst(n.value));
      return computeBinary(n.op, operand(n, 0, idx), b);
    }
    if (opKind(n.op) == OpKind::Compare) return computeCompare(n, operand(n, 0, idx), operand(n, 1, idx));
    if (n.op == Op::Where) {
      Value *c = operand(n, 0, idx);
      Value *nz = c->getType()->isIntegerTy() ? b_.CreateICmpNE(c, b_.getInt32(0))
                                              : b_.CreateFCmpUNE(c, fconst(0));
      return select(nz, operand(n, 1, idx), operand(n, 2, idx));
    }
    internalError("codegen: {} cannot be evaluated element by element", opName(n.op));
  }

  Value *computeUnary(const Node &n, Value *x) {
    switch (n.op) {
    case Op::Neg: return b_.CreateFNeg(x);
    case Op::Exp: return unary(llvm::Intrinsic::exp, x);
    case Op::Log: return unary(llvm::Intrinsic::log, x);
    case Op::Sqrt: return unary(llvm::Intrinsic::sqrt, x);
    case Op::Abs: return unary(llvm::Intrinsic::fabs, x);
    case Op::Sign:
      // 1, -1, 0 (also for -0), NaN stays NaN
      return select(b_.CreateFCmpOGT(x, fconst(0)), fconst(1),
                    select(b_.CreateFCmpOLT(x, fconst(0)), fconst(-1),
                           select(b_.CreateFCmpOEQ(x, fconst(0)), fconst(0), x)));
    case Op::Tanh: return libm("tanhf", "tanh", x);
    case Op::Sigmoid: {
      // x >= 0: 1 / (1 + exp(-x)); else exp(x) / (1 + exp(x)); and 0 below -sigmoidZeroBelow,
      // where PyTorch's 1 / (1 + exp(-x)) is 1 / inf (see ir::sigmoidZeroBelow).
      Value *ge = b_.CreateFCmpOGE(x, fconst(0));
      Value *z = unary(llvm::Intrinsic::exp, select(ge, b_.CreateFNeg(x), x));
      Value *den = b_.CreateFAdd(fconst(1), z);
      Value *s = b_.CreateFDiv(select(ge, fconst(1), z), den);
      return select(b_.CreateFCmpOLT(x, fconst(-ir::sigmoidZeroBelow(o_.f64))), fconst(0), s);
    }
    case Op::Relu:  // x > 0 or NaN: x, else 0
      return select(b_.CreateFCmpUGT(x, fconst(0)), x, fconst(0));
    case Op::Softplus: {
      // x > 0: x + log1p(exp(-x)); else log1p(exp(x))
      Value *gt = b_.CreateFCmpOGT(x, fconst(0));
      Value *l = libm("log1pf", "log1p", unary(llvm::Intrinsic::exp, select(gt, b_.CreateFNeg(x), x)));
      return select(gt, b_.CreateFAdd(x, l), l);
    }
    case Op::Sin: return unary(llvm::Intrinsic::sin, x);
    case Op::Cos: return unary(llvm::Intrinsic::cos, x);
    case Op::Square: return b_.CreateFMul(x, x);
    case Op::LeakyRelu:
      // x > 0 or NaN: x; x < 0: slope * x; 0 (also -0): 0
      return select(b_.CreateFCmpOLT(x, fconst(0)), b_.CreateFMul(fconst(n.value), x),
                    select(b_.CreateFCmpOEQ(x, fconst(0)), fconst(0), x));
    case Op::StopGradient: return x;
    default: internalError("codegen: no rule for unary op {}", opName(n.op));
    }
  }

  Value *computeBinary(Op op, Value *a, Value *b) {
    switch (op) {
    case Op::Add: return b_.CreateFAdd(a, b);
    case Op::Sub: return b_.CreateFSub(a, b);
    case Op::Mul: return b_.CreateFMul(a, b);
    case Op::Div: return b_.CreateFDiv(a, b);
    case Op::Pow: return b_.CreateBinaryIntrinsic(llvm::Intrinsic::pow, a, b);
    case Op::Maximum:  // NaN if either is NaN, else the larger
      return select(b_.CreateFCmpUNO(a, b), fconst(NAN), select(b_.CreateFCmpOLT(a, b), b, a));
    case Op::Minimum:
      return select(b_.CreateFCmpUNO(a, b), fconst(NAN), select(b_.CreateFCmpOLT(b, a), b, a));
    default: internalError("codegen: no rule for binary op {}", opName(op));
    }
  }

  Value *computeCompare(const Node &n, Value *a, Value *b) {
    bool isInt = a->getType()->isIntegerTy();
    using P = llvm::CmpInst::Predicate;
    P p;
    switch (n.op) {
    case Op::Lt: p = isInt ? P::ICMP_SLT : P::FCMP_OLT; break;
    case Op::Le: p = isInt ? P::ICMP_SLE : P::FCMP_OLE; break;
    case Op::Gt: p = isInt ? P::ICMP_SGT : P::FCMP_OGT; break;
    case Op::Ge: p = isInt ? P::ICMP_SGE : P::FCMP_OGE; break;
    case Op::Eq: p = isInt ? P::ICMP_EQ : P::FCMP_OEQ; break;
    case Op::Ne: p = isInt ? P::ICMP_NE : P::FCMP_UNE; break;
    default: internalError("codegen: no rule for comparison {}", opName(n.op));
    }
    return cmpResult(isInt ? b_.CreateICmp(p, a, b) : b_.CreateFCmp(p, a, b));
  }

  // ---- Steps

  void storeAt(Buffer dest, const Node &n, const Index &idx, Value *v) {
    b_.CreateStore(v, elemPtr(dest, elemTy(n), n.shape, idx));
  }

  // A value of a loop group at idx: stored when it has a buffer, else kept for the later
  // values of the loop to read at this index. `deferCheck`: a stored value is checked in a
  // later pass over what was stored (matmul epilogues).
  void storeOut(ValueId v, Buffer dest, const Index &idx, bool deferCheck) {
    bool stored = dest.index >= 0;
    deferred_ = stored && deferCheck ? v : kNoValue;
    Value *x = compute(v, idx);
    deferred_ = kNoValue;
    if (stored) storeAt(dest, node(v), idx, x);
    else inLoop_[v] = x;
  }

  // One addition of a sum: marked reassociable, so that the loop vectoriser may keep one
  // partial sum per lane and add them up at the end of the row, as PyTorch's vectorised sums
  // do (a 1000-class log_softmax: 1.6x faster step). The order then differs from the
  // interpreter's left-to-right one by rounding, but is fixed by the compiled code: every
  // row of a given length is summed the same way, for any batch size and thread count.
  Value *sumStep(Value *acc, Value *x) {
    llvm::IRBuilderBase::FastMathFlagGuard guard(b_);
    llvm::FastMathFlags fmf;
    fmf.setAllowReassoc();
    b_.setFastMathFlags(fmf);
    return b_.CreateFAdd(acc, x);
  }

  // max/min that propagate NaN, like the interpreter: take x when it is NaN or better.
  Value *maxStep(Value *acc, Value *x, bool isMax) {
    Value *better = isMax ? b_.CreateFCmpOGT(x, acc) : b_.CreateFCmpOLT(x, acc);
    return select(b_.CreateOr(isNaN(x), better), x, acc);
  }

  void emitElementwise(const Step &s) {
    const Node &n = node(s.value);
    loopNest(n.shape, [&](const Index &idx) {
      Value *v;
      if (s.kind == Step::Copy && s.src.index >= 0)
        v = b_.CreateLoad(elemTy(n), elemPtr(s.src, elemTy(n), n.shape, idx));
      else if (s.kind == Step::Copy)
        v = at(s.value, idx);
      else {
        // The kernels of the loop's group first: the host reads them back at this index.
        for (size_t k = 0; k < s.also.size(); ++k) storeOut(s.also[k], s.alsoDest[k], idx, false);
        v = compute(s.value, idx);
        inLoop_.clear();
      }
      storeAt(s.dest, n, idx, v);
    });
  }

  // The result index of a reduction for operand index idx.
  Index reducedIndex(const Node &n, const Index &idx) {
    Index out;
    for (size_t i = 0; i < idx.size(); ++i) {
      if (!(n.axes & (1u << i))) out.push_back(idx[i]);
      else if (n.keepdims) out.push_back(i64(0));
    }
    return out;
  }

  // sum, mean, max, min: the result is initialised, then the operand is walked in its own
  // row-major order, accumulating into the result (the interpreter's order of addition,
  // except where consecutive additions go to one result, as along the inner axis: those may
  // be regrouped by lane, sumStep).
  void emitReduce(const Step &s) {
    const Node &n = node(s.value);
    ValueId x = n.operands[0];
    const Node &xn = node(x);
    double init = n.op == Op::Max ? -INFINITY : n.op == Op::Min ? INFINITY : 0.0;
    size_t rank = xn.shape.size(), tail = trailingAxes(n.axes, rank);
    auto reducedCount = [&] {  // the elements added into each result
      Value *count = i64(1);
      for (size_t d = 0; d < rank; ++d)
        if (n.axes & (1u << d)) count = b_.CreateMul(count, dimValue(xn.shape[d]), "", true, true);
      return count;
    };
    if (n.op != Op::Max && n.op != Op::Min && rank > 0 && (tail == 0 || (tail < rank && rank - tail >= 2))) {
      emitTrailingSum(n, xn, tail, s.dest);
    } else {
      auto walk = [&] {
        loopNest(n.shape, [&](const Index &idx) { storeAt(s.dest, n, idx, fconst(init)); });
        loopNest(xn.shape, [&](const Index &idx) {
          Value *xv = at(x, idx);
          Value *p = elemPtr(s.dest, ft_, n.shape, reducedIndex(n, idx));
          Value *acc = b_.CreateLoad(ft_, p);
          Value *next = n.op == Op::Max ? maxStep(acc, xv, true)
                        : n.op == Op::Min ? maxStep(acc, xv, false)
                                          : sumStep(acc, xv);
          b_.CreateStore(next, p);
        });
      };
      // A sum over axes that keep the last (a bias's gradient over the batch, `mean(x,
      // axis=0)`, a sum over middle axes) of more than kSumBlock rows adds blocks of rows
      // (emitBlockedSum); one over the last axis and others, not all the trailing ones (the
      // gradient of a param [1, N, 1] broadcast over [B, N, K]), of more than kSumBlock
      // elements per result adds blocks of elements (emitTrailingSum); up to kSumBlock, the
      // walk above is that one block.
      bool lastAxis = n.axes & (1u << (rank - 1));
      if (n.op == Op::Max || n.op == Op::Min || n.axes == 0 || (lastAxis && std::popcount(n.axes) < 2)) {
        walk();
      } else {
        Value *rows = reducedCount();
        auto blocked = [&] {
          if (lastAxis) emitTrailingSum(n, xn, static_cast<size_t>(std::countr_zero(n.axes)), s.dest);
          else emitBlockedSum(n, xn, s.dest, rows);
        };
        Value *oneBlock = b_.CreateICmpULE(rows, i64(kSumBlock));
        if (auto *c = llvm::dyn_cast<llvm::ConstantInt>(oneBlock)) {
          if (c->isOne()) walk();
          else blocked();
        } else {
          emitIf(b_, oneBlock, walk);
          emitIf(b_, b_.CreateNot(oneBlock), blocked);
        }
      }
    }
    if (n.op == Op::Mean) {
      Value *cf = b_.CreateSIToFP(reducedCount(), ft_);
      loopNest(n.shape, [&](const Index &idx) {
        Value *p = elemPtr(s.dest, ft_, n.shape, idx);
        b_.CreateStore(b_.CreateFDiv(b_.CreateLoad(ft_, p), cf), p);
      });
    }
    checkStored(s.dest, n);
  }

  // The first of the axes a reduction over `axes` reduces when those are the last ones of a
  // rank-`rank` operand (0: all of them), else rank.
  static size_t trailingAxes(uint32_t axes, size_t rank) {
    uint32_t all = (uint32_t(1) << rank) - 1;
    for (size_t j = 0; j < rank; ++j)
      if (axes == (all & ~((uint32_t(1) << j) - 1))) return j;
    return rank;
  }

  // A sum over the axes from `first` on: of everything (first = 0), or of several trailing
  // axes for each index of the kept ones before them (the gradient of a param [A, 1, 1]
  // broadcast over [A, N, K]); or over axes from `first` on that are not all of them but
  // take the last (of a param [1, N, 1] broadcast over [B, N, K]), for each index of the
  // kept ones. Per result, blocks of about kSumBlock elements each are added
  // into a float partial of their own, and the partials in double: one float chain of B·k
  // additions lost 1.7e-5 of a 600,000-element mean ([300000, 2]), where PyTorch's cascade
  // sum is exact to float32 rounding. The block axis is the first reduced one whose
  // following reduced axes are static and hold at most kSumBlock elements: a block is a run of
  // indices along it, for each index of the axes before it. So a row longer than kSumBlock
  // is cut into blocks too (one chain per row of [2, 200000, 3] lost 1.2e-5 of its sum, of
  // `transpose(x)` for x: [B, 2] with B = 1,000,000, 4.4e-6, of axes 1 and 2 of
  // [2, 300000, 2] 7e-6); for a sum of everything over rows of at most kSumBlock ([B, k]
  // with k <= kSumBlock) the block axis is the first.
  void emitTrailingSum(const Node &n, const Node &xn, size_t first, Buffer dest) {
    ValueId x = n.operands[0];
    size_t rank = xn.shape.size();
    auto elemsAfter = [&](size_t a) {
      int64_t e = 1;
      for (size_t d = a + 1; d < rank; ++d) {
        if (!(n.axes & (1u << d))) continue;
        if (!xn.shape[d].isStatic()) return kSumBlock + 1;  // the batch: may be long
        e = std::min(kSumBlock + 1, e * std::max<int64_t>(1, xn.shape[d].factor));
      }
      return e;
    };
    size_t axis = first;
    while (!(n.axes & (1u << axis)) || elemsAfter(axis) > kSumBlock) ++axis;
    int64_t blockLen = std::max<int64_t>(1, kSumBlock / elemsAfter(axis));
    uint32_t innerAxes = n.axes & ~((2u << axis) - 1);
    uint32_t outerAxes = n.axes & ((1u << axis) - 1);
    Value *partial = scalarVar(ft_, fconst(0));
    llvm::Type *dt = b_.getDoubleTy();
    Value *total = scalarVar(dt, llvm::ConstantFP::get(dt, 0.0));
    auto blocksAlong = [&](const Index &o) {
      Value *len = dimValue(xn.shape[axis]);
      Value *blocks = b_.CreateUDiv(b_.CreateAdd(len, i64(blockLen - 1)), i64(blockLen));
      emitFor(b_, blocks, [&](Value *blk) {
        b_.CreateStore(fconst(0), partial);
        Value *start = b_.CreateMul(blk, i64(blockLen));
        Value *left = b_.CreateSub(len, start);
        Value *count = b_.CreateSelect(b_.CreateICmpULT(left, i64(blockLen)), left, i64(blockLen));
        emitFor(b_, count, [&](Value *r) {
          Index idx = o;
          idx[axis] = b_.CreateAdd(start, r);
          rowInner(xn.shape, innerAxes, idx, [&](const Index &full) {
            b_.CreateStore(sumStep(b_.CreateLoad(ft_, partial), at(x, full)), partial);
          });
        });
        b_.CreateStore(b_.CreateFAdd(b_.CreateLoad(dt, total), b_.CreateFPCast(b_.CreateLoad(ft_, partial), dt)), total);
      });
    };
    const bool everything = n.axes == (uint32_t(1) << rank) - 1;
    auto result = [&](const Index &k) {
      // The entry block starts the total of a sum of everything at zero.
      if (!everything) b_.CreateStore(llvm::ConstantFP::get(dt, 0.0), total);
      if (axis == 0)
        blocksAlong(k);
      else
        rowInner(xn.shape, outerAxes, k, blocksAlong);
      Value *v = b_.CreateFPCast(b_.CreateLoad(dt, total), ft_);
      if (n.shape.empty())
        storeAt(dest, n, {}, v);
      else
        storeAt(dest, n, reducedIndex(n, k), v);
    };
    if (everything) {
      result(Index(rank));
    } else {
      Shape kept = xn.shape;
      for (size_t d = first; d < rank; ++d)
        if (n.axes & (1u << d)) kept[d] = Dim::fixed(1);
      loopNest(kept, result);
    }
  }

  // A sum over axes that keep the last one (a bias's gradient over the batch, `mean(x,
  // axis=0)`, `sum(x, axis=1)` of [A, N, K]) of more than kSumBlock rows (fewer are one
  // block: emitReduce's walk). For each index of the kept axes but the last, the rows (the
  // reduced axes, flattened) are added in blocks of kSumBlock rows, each block into a
  // partial per column from zero, and the partials into the result in order; the columns
  // (the last axis) run in strips of kSumStrip, the partials on the stack. One chain per
  // column over a whole data file (`grad` of 100,000 rows) lost 1e-4 of PyTorch's bias
  // gradient, and 1e-5 of `sum(x, axis=1)` of [2, 100000, 10], where PyTorch's cascade sum is
  // exact to float32 rounding. A stored operand summed over its leading axes is summed by
  // the module's shared function (getSumRows).
  void emitBlockedSum(const Node &n, const Node &xn, Buffer dest, Value *rows) {
    ValueId x = n.operands[0];
    size_t rank = xn.shape.size();
    size_t lead = static_cast<size_t>(std::countr_one(n.axes));
    bool leading = n.axes == (uint32_t(1) << lead) - 1;
    if (leading && role(x) != Role::Inline && !inLoop_.count(x) && x != tile_.value && !checkAcc_) {
      Value *cols = i64(1);
      for (size_t d = lead; d < rank; ++d) cols = b_.CreateMul(cols, dimValue(xn.shape[d]), "", true, true);
      Index zeros(rank, i64(0));
      Value *xp = elemPtr(mp_.homeOf(fp_.root[static_cast<size_t>(x)]), ft_, xn.shape, zeros);
      Value *op = elemPtr(dest, ft_, n.shape, reducedIndex(n, zeros));
      b_.CreateCall(getSumRows(mod_, ft_, t_), {xp, op, rows, cols});
      return;
    }
    std::vector<size_t> reduced;
    Shape outer = xn.shape;
    for (size_t d = 0; d < rank; ++d)
      if (n.axes & (1u << d)) {
        reduced.push_back(d);
        outer[d] = Dim::fixed(1);
      }
    outer[rank - 1] = Dim::fixed(1);
    llvm::IRBuilder<> eb(entryBB_, entryBB_->begin());
    Value *part = eb.CreateAlloca(llvm::ArrayType::get(ft_, kSumStrip));
    loopNest(outer, [&](const Index &o) {
      Index full = o;
      emitStrips(b_, dimValue(xn.shape[rank - 1]), [&](Value *c0, Value *width) {
        // The strip's results are consecutive.
        full[rank - 1] = c0;
        for (size_t d : reduced) full[d] = i64(0);
        Value *out = elemPtr(dest, ft_, n.shape, reducedIndex(n, full));
        emitRowBlocks(b_, ft_, part, out, rows, width, [&](Value *row, Value *j) {
          // The row's index along each reduced axis, the last one fastest.
          for (size_t k = reduced.size(); k-- > 0;) {
            Value *len = dimValue(xn.shape[reduced[k]]);
            full[reduced[k]] = k == 0 ? row : b_.CreateURem(row, len);
            if (k) row = b_.CreateUDiv(row, len);
          }
          full[rank - 1] = b_.CreateAdd(c0, j);
          return at(x, full);
        });
      });
    });
  }

  // Check mode: a pass over a stored result.
  void checkStored(Buffer dest, const Node &n) {
    if (!checkAcc_) return;
    loopNest(n.shape, [&](const Index &idx) { checked(b_.CreateLoad(ft_, elemPtr(dest, ft_, n.shape, idx))); });
  }

  // checkStored for a matmul result [m, n], over the columns of this part's panels only
  // (all of them for part 0 of 1): the other parts may still be writing theirs.
  void checkStoredColumns(Buffer dest, const Node &n) {
    Value *M = dimValue(n.shape[0]), *N = dimValue(n.shape[1]);
    PanelShare share = panelShare(b_, N, static_cast<uint64_t>(panelWidth()), part_, parts_);
    Value *first = b_.CreateMul(share.first, i64(panelWidth()));
    Value *end = b_.CreateMul(share.end, i64(panelWidth()));
    end = b_.CreateSelect(b_.CreateICmpULT(end, N), end, N);
    emitFor(b_, M, [&](Value *row) {
      emitFor(b_, b_.CreateSub(end, first), [&](Value *c) {
        Index idx = {row, b_.CreateAdd(first, c)};
        checked(b_.CreateLoad(ft_, elemPtr(dest, ft_, n.shape, idx)));
      });
    });
  }

  // Loops over the kept axes of `xs` outside, calling outer(idx) with the reduced axes
  // unset; inner(idx) walks the reduced axes of a full index.
  void rowLoops(const Shape &xs, uint32_t axes, const std::function<void(Index &)> &outer) {
    Shape kept;
    for (size_t i = 0; i < xs.size(); ++i) kept.push_back(axes & (1u << i) ? Dim::fixed(1) : xs[i]);
    loopNest(kept, [&](const Index &k) {
      Index idx = k;
      outer(idx);
    });
  }

  void rowInner(const Shape &xs, uint32_t axes, Index idx, const std::function<void(const Index &)> &body) {
    auto rec = [&](auto &self, size_t d) -> void {
      if (d == xs.size()) {
        body(idx);
        return;
      }
      if (!(axes & (1u << d))) {
        self(self, d + 1);
        return;
      }
      emitFor(b_, dimValue(xs[d]), [&](Value *i) {
        idx[d] = i;
        self(self, d + 1);
      });
    };
    rec(rec, 0);
  }

  // logsumexp, softmax, log_softmax: per row, m = max (NaN-propagating, llvm.maximum, which
  // the vectoriser reduces lane-wise) and
  // s = sum(exp(x - m)); logsumexp = m + log(s) (m itself when m is infinite),
  // softmax = exp(x - m) / s, log_softmax = x - m - log(s).
  // log(s) is computed as log1p(s - 1) with s - 1 = (c - 1) + sum_{x < m} exp(x - m), where
  // c counts the elements equal to m: each contributes exactly 1. In float32, log(s) of a
  // confident row (s = 1.0017) would otherwise lose four digits to the rounding of s, and the
  // loss -log_softmax of the true class is that small number.
  void emitRow(const Step &s) {
    const Node &n = node(s.value);
    ValueId x = n.operands[0];
    const Node &xn = node(x);
    rowLoops(xn.shape, n.axes, [&](Index &idx) {
      Value *m = scalarVar(ft_, fconst(-INFINITY));
      rowInner(xn.shape, n.axes, idx, [&](const Index &i) {
        b_.CreateStore(b_.CreateBinaryIntrinsic(llvm::Intrinsic::maximum, b_.CreateLoad(ft_, m), at(x, i)), m);
      });
      Value *mv = b_.CreateLoad(ft_, m);
      Value *rest = scalarVar(ft_, fconst(0));
      Value *ties = scalarVar(ft_, fconst(0));
      ++checkMuted_;
      rowInner(xn.shape, n.axes, idx, [&](const Index &i) {
        Value *xv = at(x, i);
        Value *isMax = b_.CreateFCmpOEQ(xv, mv);
        Value *e = unary(llvm::Intrinsic::exp, b_.CreateFSub(xv, mv));
        b_.CreateStore(sumStep(b_.CreateLoad(ft_, rest), select(isMax, fconst(0), e)), rest);
        b_.CreateStore(sumStep(b_.CreateLoad(ft_, ties), select(isMax, fconst(1), fconst(0))), ties);
      });
      --checkMuted_;
      Value *rv = b_.CreateLoad(ft_, rest), *cv = b_.CreateLoad(ft_, ties);
      // A row whose max is +inf: exp(inf - inf) is NaN in the interpreter's (and PyTorch's)
      // sum of exponentials, which the count of ties leaves out, so its softmax and
      // log_softmax are NaN throughout (not 0 and -inf beside the NaN).
      rv = select(b_.CreateFCmpOEQ(mv, fconst(INFINITY)), fconst(NAN), rv);
      Value *logS = libm("log1pf", "log1p", b_.CreateFAdd(b_.CreateFSub(cv, fconst(1)), rv));
      if (n.op == Op::LogSumExp) {
        Value *finite = b_.CreateFCmpONE(unary(llvm::Intrinsic::fabs, mv), fconst(INFINITY));
        storeAt(s.dest, n, reducedIndex(n, idx), checked(select(finite, b_.CreateFAdd(mv, logS), mv)));
        return;
      }
      Value *sv = b_.CreateFAdd(cv, rv);
      rowInner(xn.shape, n.axes, idx, [&](const Index &i) {
        ++checkMuted_;
        Value *d = b_.CreateFSub(at(x, i), mv);
        --checkMuted_;
        Value *r = n.op == Op::Softmax ? b_.CreateFDiv(unary(llvm::Intrinsic::exp, d), sv)
                                       : b_.CreateFSub(d, logS);
        storeAt(s.dest, n, i, checked(r));
      });
    });
  }

  // argmax: the first index of the maximum; a NaN counts as the maximum.
  void emitArgMax(const Step &s) {
    const Node &n = node(s.value);
    ValueId x = n.operands[0];
    const Node &xn = node(x);
    rowLoops(xn.shape, n.axes, [&](Index &idx) {
      Value *best = scalarVar(ft_, fconst(0));
      Value *bestI = scalarVar(b_.getInt64Ty(), i64(-1));
      int axis = std::countr_zero(n.axes);
      rowInner(xn.shape, n.axes, idx, [&](const Index &i) {
        Value *v = at(x, i), *bv = b_.CreateLoad(ft_, best);
        Value *first = b_.CreateICmpSLT(b_.CreateLoad(b_.getInt64Ty(), bestI), i64(0));
        Value *better = b_.CreateOr(first, b_.CreateAnd(b_.CreateNot(isNaN(bv)),
                                                        b_.CreateOr(isNaN(v), b_.CreateFCmpOGT(v, bv))));
        b_.CreateStore(select(better, v, bv), best);
        b_.CreateStore(select(better, i[static_cast<size_t>(axis)], b_.CreateLoad(b_.getInt64Ty(), bestI)), bestI);
      });
      Value *r = b_.CreateTrunc(b_.CreateLoad(b_.getInt64Ty(), bestI), b_.getInt32Ty());
      storeAt(s.dest, n, reducedIndex(n, idx), r);
    });
  }

  // The buffers of a fused matmul step's shape that its epilogue stores or loads, each once
  // (its tiles fetch the next tile's lines of them).
  std::vector<Value *> epilogueBuffers(const Step &s) {
    std::vector<ValueId> outs = s.also;
    std::vector<Buffer> outDest = s.alsoDest;
    outs.push_back(s.value);
    outDest.push_back(s.dest);
    std::vector<Value *> ops;
    auto add = [&](Value *p) {
      if (std::find(ops.begin(), ops.end(), p) == ops.end()) ops.push_back(p);
    };
    for (size_t k = 0; k < outs.size(); ++k) {
      if (outDest[k].index >= 0) add(ptrOf(outDest[k]));
      for (ValueId r : kernelReads(f_, fp_, outs[k]))
        if (r != s.matmul && node(r).shape == node(s.value).shape && mp_.hasHome(r)) add(homePtr(r));
    }
    return ops;
  }

  // An element-wise kernel with a matmul computed inside it: after each tile of the product,
  // the kernel's expression runs over the tile's elements. `rider`: the next step, run
  // inside this one's loops (Step::interleaved): after each column panel of this product,
  // the rider's tiles over the rows of the weight that panel has read. `rows` and `packed`:
  // this is the rider, for those rows only, its B packed into `packed` beforehand.
  void emitFusedMatMul(const Step &s, llvm::Function *fn, const Step *rider = nullptr,
                       const MatMulRows *rows = nullptr, Value *packed = nullptr) {
    const Node &n = node(s.value);
    const Node &mn = node(s.matmul);
    MatMulOperand a = matmulOperand(f_, mn.operands[0]), bb = matmulOperand(f_, mn.operands[1]);
    bool transA = mn.transA != a.flipped, transB = mn.transB != bb.flipped;
    auto [M, K, N] = matmulDims(s.matmul);
    unsigned vectorBytes = matmulVectorBytes(t_);
    int64_t width = panelWidth();
    llvm::IRBuilder<> eb(&fn->getEntryBlock(), fn->getEntryBlock().begin());
    auto *tileAlloca = eb.CreateAlloca(llvm::ArrayType::get(b_.getInt8Ty(), kMatMulTileBytes));
    tileAlloca->setAlignment(llvm::Align(64));
    Value *tilePtr = tileAlloca;
    // Check mode: one flag word per element of the tile, or-ed in memory, not a scalar
    // carried through the matmul's loops (which slowed the product by a third), nor one per
    // column (each row of a tile waited for the previous row's store). The kernel's own
    // value is checked in a second loop over the rows just stored: the first then compiles as
    // without checks (when its operands need none), straight from the tile's registers.
    Value *lanes = nullptr;
    int64_t laneCount = width * kMatMulTileRows;
    if (checkAcc_) {
      auto *a = eb.CreateAlloca(llvm::ArrayType::get(checkTy(), static_cast<uint64_t>(laneCount)));
      a->setAlignment(llvm::Align(64));
      b_.CreateMemSet(a, b_.getInt8(0), i64(laneCount * (o_.f64 ? 8 : 4)), llvm::MaybeAlign(64));
      lanes = a;
    }
    // The values the loop stores: its group's kernels, then its own.
    std::vector<ValueId> outs = s.also;
    std::vector<Buffer> outDest = s.alsoDest;
    outs.push_back(s.value);
    outDest.push_back(s.dest);
    // Rows [first, rows) of the tile: the ones the tile before has not done (the last row
    // always is new).
    auto newRows = [&](Value *first, int rows, const std::function<void(int)> &row) {
      auto *known = llvm::dyn_cast<llvm::ConstantInt>(first);
      for (int r = 0; r < rows; ++r) {
        if (r == rows - 1 || (known && known->getZExtValue() <= static_cast<uint64_t>(r)))
          row(r);
        else if (!known)
          emitIf(b_, b_.CreateICmpULE(first, i64(r)), [&] { row(r); });
      }
    };
    TileEpilogue epilogue = [&](Value *i0, Value *first, int rows, Value *j0, Value *cols) {
      Value *w = i64(width);
      Value *ncols = b_.CreateSelect(b_.CreateICmpSLT(cols, w), cols, w);
      tile_ = {s.matmul, tilePtr, i0, j0, w};
      newRows(first, rows, [&](int r) {
        emitFor(b_, ncols, [&](Value *jj) {
          if (lanes) checkLane_ = b_.CreateInBoundsGEP(checkTy(), lanes, b_.CreateAdd(jj, i64(r * width)));
          Index idx = {b_.CreateAdd(i0, i64(r)), b_.CreateAdd(j0, jj)};
          for (size_t k = 0; k < outs.size(); ++k) storeOut(outs[k], outDest[k], idx, lanes != nullptr);
          inLoop_.clear();
          checkLane_ = nullptr;
        });
      });
      tile_ = {};
      for (size_t k = 0; k < outs.size(); ++k)
        if (lanes && ownCheck(outs[k]) && outDest[k].index >= 0)
          newRows(first, rows, [&](int r) {
            emitFor(b_, ncols, [&](Value *jj) {
              checkLane_ = b_.CreateInBoundsGEP(checkTy(), lanes, b_.CreateAdd(jj, i64(r * width)));
              Index idx = {b_.CreateAdd(i0, i64(r)), b_.CreateAdd(j0, jj)};
              checked(b_.CreateLoad(ft_, elemPtr(outDest[k], ft_, n.shape, idx)));
              checkLane_ = nullptr;
            });
          });
    };
    std::vector<Value *> tileOperands = epilogueBuffers(s);
    PanelDone afterPanel;
    FetchAhead ahead;
    if (rider) {
      // The rider packs its B once, into this part's slice of its scratch; its rows are
      // those of this part's column panels (the weight's rows this part reads).
      const Node &rm = node(rider->matmul);
      MatMulOperand rb = matmulOperand(f_, rm.operands[1]);
      bool rTransB = rm.transB != rb.flipped;
      auto [rM, rK, rN] = matmulDims(rider->matmul);
      Value *rPanels = panelShare(b_, rN, static_cast<uint64_t>(width), i64(0), i64(1)).panels;
      Value *rPacked = b_.CreateInBoundsGEP(ft_, ptrOf(rider->scratch),
                                            b_.CreateMul(part_, b_.CreateMul(rK, b_.CreateMul(rPanels, i64(width)))));
      emitMatMulPackAll(b_, rTransB, homePtr(rb.value), rPacked, rK, rN, ft_, vectorBytes);
      PanelShare share = panelShare(b_, N, static_cast<uint64_t>(width), part_, parts_);
      auto umin = [&](Value *x, Value *y) { return b_.CreateSelect(b_.CreateICmpULT(x, y), x, y); };
      Value *begin = umin(b_.CreateMul(share.first, i64(width)), rM);
      Value *end = umin(b_.CreateMul(share.end, i64(width)), rM);
      Value *done = scalarVar(b_.getInt64Ty(), i64(0));
      afterPanel = [this, fn, rider, width, umin, begin, end, done, rPacked, share](Value *panel) {
        // Whole tiles whose rows this part's panels have read; after its last panel, the rest
        // (the last tile moved up to end at `end`).
        Value *next = b_.CreateAdd(panel, i64(1));
        Value *read = umin(b_.CreateMul(next, i64(width)), end);
        Value *tr = i64(kMatMulTileRows);
        Value *t1 = b_.CreateSelect(b_.CreateICmpEQ(next, share.end),
                                    b_.CreateUDiv(b_.CreateAdd(b_.CreateSub(end, begin), i64(kMatMulTileRows - 1)), tr),
                                    b_.CreateUDiv(b_.CreateSub(read, begin), tr));
        MatMulRows r{begin, end, b_.CreateLoad(b_.getInt64Ty(), done), t1};
        emitFusedMatMul(*rider, fn, nullptr, &r, rPacked);
        b_.CreateStore(t1, done);
      };
      // Each panel fetches the rows of the rider's buffers (the weight and its optimiser
      // state) that the rider's tiles after it update.
      ahead = {epilogueBuffers(*rider), rM, rN};
    }
    emitMatMulTiles(b_, fn, transA, transB, homePtr(a.value), homePtr(bb.value), tilePtr,
                    packed ? packed : ptrOf(s.scratch), M, K, N, ft_, vectorBytes, &epilogue, part_, parts_,
                    tileOperands, rows, rider ? &afterPanel : nullptr, rider ? &ahead : nullptr);
    if (lanes)
      emitFor(b_, i64(laneCount), [&](Value *j) {
        Value *lane = b_.CreateLoad(checkTy(), b_.CreateInBoundsGEP(checkTy(), lanes, j));
        b_.CreateStore(b_.CreateOr(b_.CreateLoad(checkTy(), checkAcc_), lane), checkAcc_);
      });
  }

  void emitMatMul(const Step &s) {
    const Node &n = node(s.value);
    MatMulOperand a = matmulOperand(f_, n.operands[0]), bb = matmulOperand(f_, n.operands[1]);
    MatMulShape ms;
    ms.transA = n.transA != a.flipped;
    ms.transB = n.transB != bb.flipped;
    const Shape &as = node(a.value).shape;
    ms.m = n.shape[0];
    ms.n = n.shape[1];
    ms.k = ms.transA ? as[0] : as[1];
    llvm::Function *mm = getMatMul(mod_, ms, f_.dimNames, ft_, t_);
    b_.CreateCall(mm, {homePtr(a.value), homePtr(bb.value), ptrOf(s.dest), ptrOf(s.scratch), dimValue(ms.m), dimValue(ms.k),
                       dimValue(ms.n), part_, parts_});
    if (checkAcc_ && !checkAtReads_[static_cast<size_t>(s.value)]) checkStoredColumns(s.dest, n);
  }

  // The matrix product a step computes (alone or inside its element-wise loop), if any.
  ValueId matmulOf(const Step &s) const {
    if (s.kind != Step::Compute) return kNoValue;
    if (s.matmul != kNoValue) return s.matmul;
    return node(s.value).op == Op::MatMul ? s.value : kNoValue;
  }

  // The width in elements of a matmul's column panel (and of its register tile).
  int64_t panelWidth() const { return matmulPanelWidth(t_, o_.f64); }

  // A matmul step's m, k, n in the current function.
  std::array<Value *, 3> matmulDims(ValueId mv) {
    const Node &mn = node(mv);
    MatMulOperand a = matmulOperand(f_, mn.operands[0]);
    const Shape &as = node(a.value).shape;
    return {dimValue(mn.shape[0]), dimValue(mn.transA != a.flipped ? as[0] : as[1]), dimValue(mn.shape[1])};
  }

  // Whether a matmul step is lowered as one part of a split over threads (taking its part and
  // the number of parts). One too narrow ever to be split is lowered as with one thread (the
  // part-generic code vectorised a narrow tile's tanh epilogue differently, libm against
  // libmvec, an ulp apart from the one-thread result).
  bool splitOverThreads(const Step &s) const {
    ValueId mm = matmulOf(s);
    return mm != kNoValue && maySplitOverThreads(node(mm).shape[1], panelWidth(), threads_);
  }

  // The buffers a step function takes, in order: where it stores, then what it reads, then
  // its scratch, each once.
  static std::vector<Buffer> stepParams(const Step &s) {
    std::vector<Buffer> params;
    auto addParam = [&](Buffer b) {
      for (const Buffer &p : params)
        if (p == b) return;
      params.push_back(b);
    };
    addParam(s.dest);
    for (const Buffer &b : s.alsoDest)
      if (b.index >= 0) addParam(b);
    for (const Buffer &b : s.reads) addParam(b);
    if (s.scratch.index >= 0) addParam(s.scratch);
    return params;
  }

  // Everything the lowering of step s reads, with its buffers named by their place among
  // the step's parameters and its values numbered in the order they are met (names and
  // source places left out): steps with the same key lower to the same function, up to the
  // names of its values. The walk goes where the lowering goes: from the step's own values
  // through the values it computes in its loop (inlined ones, a fused matmul) and through
  // transposes (a matmul operand looks through one), and stops at each value it loads from a
  // buffer, recording which parameter that buffer is and the value's type and shape.
  std::string stepKey(const Step &s, const std::vector<Buffer> &params) const {
    std::string key;
    auto param = [&](Buffer b) -> int64_t {
      if (b.index < 0) return -1;
      for (size_t i = 0; i < params.size(); ++i)
        if (params[i] == b) return static_cast<int64_t>(i);
      return -2;
    };
    auto shape = [&](const Shape &sh) {
      key += '[';
      for (const Dim &d : sh) key += fmt::format("{}*{:x},", d.factor, d.syms);
      key += ']';
    };
    std::map<ValueId, size_t> seen;
    std::set<ValueId> walked;
    // `top`: one of the step's own values, whose operands the step computes. A value of the
    // loop's group reached as an operand is read from a register (its operands were walked
    // where it is computed), so the walk nests no deeper than the lowering does (an inlined
    // chain is cut 128 deep, a group may hold dozens of them one after the other).
    auto visit = [&](auto &self, ValueId v, bool top) -> size_t {
      const Node &n = node(v);
      auto [it, added] = seen.emplace(v, seen.size());
      size_t id = it->second;
      if (added) {
        ValueId root = fp_.root[static_cast<size_t>(v)];
        key += fmt::format("\n{}:{} {} {:a} {:x} {:d} {:d} {:d} {} {}*{:x} role {} root {:d} home {}", id,
                           static_cast<int>(n.op), static_cast<int>(n.dtype), n.value, n.axes, n.keepdims,
                           n.transA, n.transB, n.classes, n.dim.factor, n.dim.syms, static_cast<int>(role(v)),
                           root == v, mp_.hasHome(root) ? param(mp_.homeOf(root)) : -3);
        shape(n.shape);
        if (check_)
          key += fmt::format(" check {:d}{:d}", static_cast<bool>(skip_[static_cast<size_t>(v)]),
                             static_cast<bool>(checkAtReads_[static_cast<size_t>(v)]));
      }
      bool walk = top || role(v) == Role::Inline || role(v) == Role::Fused || n.op == Op::Transpose;
      if (walk && walked.insert(v).second) {
        std::vector<size_t> ops;
        for (ValueId u : n.operands) ops.push_back(self(self, u, false));
        key += fmt::format("\n{} ({})", id, fmt::join(ops, " "));
      }
      return id;
    };
    key += fmt::format("kind {} threads {:d} params {} src {} dest {} scratch {}", static_cast<int>(s.kind),
                       splitOverThreads(s), params.size(), param(s.src), param(s.dest), param(s.scratch));
    // In the order the step computes them: its group, its own value, the fused matmul.
    for (size_t k = 0; k < s.also.size(); ++k)
      key += fmt::format(" also {} dest {}", visit(visit, s.also[k], true), param(s.alsoDest[k]));
    key += fmt::format(" value {}", visit(visit, s.value, true));
    if (s.matmul != kNoValue) {
      key += fmt::format(" matmul {}", visit(visit, s.matmul, true));
      // The values a fused epilogue's tiles fetch ahead, in order.
      std::vector<ValueId> outs = s.also;
      outs.push_back(s.value);
      for (ValueId o : outs)
        for (ValueId r : kernelReads(f_, fp_, o))
          key += fmt::format(" reads {}", visit(visit, r, false));
    }
    return key;
  }

  // One internal function per step; its buffers are noalias pointers. A step that may be
  // split over threads also takes (i64 part, i64 parts) after `dims`. The steps stay out of
  // line (noinline): inlined into the entry, they made one function whose optimisation and
  // code generation grew faster than its size (loop strength reduction above all), while a
  // call per step costs nothing next to its loops. JIT compile time of the bench configs,
  // median of 3 alternating runs: tiny 311 -> 209 ms, small 596 -> 383, medium 602 -> 444,
  // large 853 -> 536; a 20-layer MLP of width 64, 5.0 s -> 3.1 s. Step times unchanged
  // (within the noise, small and medium 4% faster).
  llvm::Function *emitStep(const Step &s, size_t index, const std::vector<Buffer> &params, const Step *rider = nullptr) {
    // The buffers, the flag (check mode), dims, and (part, parts) for a step split over threads.
    unsigned flagArg = static_cast<unsigned>(params.size());
    unsigned dimsArg = flagArg + (check_ ? 1 : 0);
    std::vector<llvm::Type *> types(dimsArg + 1, ptrTy());
    if (splitOverThreads(s)) types.insert(types.end(), 2, b_.getInt64Ty());
    auto *fty = llvm::FunctionType::get(b_.getVoidTy(), types, false);
    const Node &n = node(s.value);
    std::string name = fmt::format("gradc_{}_{}_{}", index, s.kind == Step::Copy ? "copy" : opName(n.op),
                                   n.srcName.empty() ? std::string("v") : n.srcName);
    for (char &c : name)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') c = '_';
    auto *fn = llvm::Function::Create(fty, llvm::GlobalValue::InternalLinkage, name, mod_);
    setTargetAttributes(*fn, t_);
    fn->addFnAttr(llvm::Attribute::NoInline);
    for (size_t i = 0; i < params.size(); ++i) {
      fn->addParamAttr(static_cast<unsigned>(i), llvm::Attribute::NoAlias);
      fn->addParamAttr(static_cast<unsigned>(i), llvm::Attribute::NoCapture);
    }
    if (check_) {
      fn->addParamAttr(flagArg, llvm::Attribute::NoAlias);
      fn->addParamAttr(flagArg, llvm::Attribute::NoCapture);
    }
    fn->addParamAttr(dimsArg, llvm::Attribute::ReadOnly);
    beginFunction(fn, fn->getArg(dimsArg));
    for (size_t i = 0; i < params.size(); ++i)
      bufPtr_[{params[i].kind, params[i].index}] = fn->getArg(static_cast<unsigned>(i));
    part_ = i64(0);
    parts_ = i64(1);
    if (splitOverThreads(s)) {
      part_ = fn->getArg(dimsArg + 1);
      parts_ = fn->getArg(dimsArg + 2);
    }
    checkAcc_ = check_ ? scalarVar(checkTy(), llvm::ConstantInt::get(checkTy(), 0)) : nullptr;
    checkMuted_ = 0;

    if (s.kind == Step::Copy) {
      emitElementwise(s);
    } else if (s.matmul != kNoValue) {
      emitFusedMatMul(s, fn, rider);
    } else {
      switch (opKind(n.op)) {
      case OpKind::Reduce:
        if (n.op == Op::LogSumExp) emitRow(s);
        else emitReduce(s);
        break;
      case OpKind::Row: emitRow(s); break;
      default:
        if (n.op == Op::MatMul) emitMatMul(s);
        else if (n.op == Op::ArgMax) emitArgMax(s);
        else emitElementwise(s);
      }
    }
    if (check_) {
      // Atomic where the parts of a step split over threads or into the same flag.
      Value *flag = fn->getArg(flagArg), *acc = b_.CreateLoad(checkTy(), checkAcc_);
      if (splitOverThreads(s))
        b_.CreateAtomicRMW(llvm::AtomicRMWInst::Or, flag, acc, llvm::MaybeAlign(), llvm::AtomicOrdering::Monotonic);
      else
        b_.CreateStore(b_.CreateOr(b_.CreateLoad(checkTy(), flag), acc), flag);
      checkAcc_ = nullptr;
    }
    b_.CreateRetVoid();
    return fn;
  }

  // Each region's offset in `work`: regions follow each other, each as large as the
  // largest value it holds, rounded up to 64 bytes. Returns the offsets and the total.
  // The offset where the work region after region r starts, given where r starts: r's
  // size is its largest member's, rounded up to a cache line.
  Value *regionEnd(size_t r, Value *off) {
    Value *size = i64(0);
    for (const RegionMember &m : mp_.regions[r]) {
      Value *bytes = i64(m.bytes);
      for (int s : m.syms) bytes = b_.CreateMul(bytes, symValue(s), "", true, true);
      bytes = b_.CreateAnd(b_.CreateAdd(bytes, i64(63)), i64(~int64_t{63}));
      size = b_.CreateSelect(b_.CreateICmpUGT(bytes, size), bytes, size);
    }
    return b_.CreateAdd(off, size, "", true, true);
  }

  Value *firstRegionOffset() { return i64(check_ ? kNumericsFlagBytes : 0); }

  std::vector<Value *> regionOffsets(Value *&total) {
    std::vector<Value *> offs;
    Value *off = firstRegionOffset();
    for (size_t r = 0; r < mp_.regions.size(); ++r) {
      offs.push_back(off);
      off = regionEnd(r, off);
    }
    total = off;
    return offs;
  }

  // Fills `table` (in the current function, whose dims are `dims`) with every region's
  // offset, by functions of kEntryChunkSteps regions each: thousands of stores in one block
  // made LLVM's instruction scheduler quadratic in them (1,000 layers: most of the compile).
  void fillOffsetTable(const std::string &name, Value *dims, Value *table) {
    llvm::BasicBlock *caller = b_.GetInsertBlock();
    llvm::BasicBlock *callerEntry = entryBB_;
    Value *callerDims = dims_;
    auto *fty = llvm::FunctionType::get(b_.getInt64Ty(), {ptrTy(), ptrTy(), b_.getInt64Ty()}, false);
    std::vector<llvm::Function *> fills;
    for (size_t first = 0; first < mp_.regions.size(); first += kEntryChunkSteps) {
      auto *ffn = llvm::Function::Create(fty, llvm::GlobalValue::InternalLinkage,
                                         fmt::format("{}_offsets_{}", name, first), mod_);
      setTargetAttributes(*ffn, t_);
      ffn->addFnAttr(llvm::Attribute::NoInline);
      for (unsigned i = 0; i < 2; ++i) ffn->addParamAttr(i, llvm::Attribute::NoCapture);
      ffn->addParamAttr(0, llvm::Attribute::ReadOnly);
      ffn->addParamAttr(1, llvm::Attribute::WriteOnly);
      beginFunction(ffn, ffn->getArg(0));
      Value *off = ffn->getArg(2);
      for (size_t r = first; r < std::min(mp_.regions.size(), first + kEntryChunkSteps); ++r) {
        b_.CreateStore(off, b_.CreateInBoundsGEP(b_.getInt64Ty(), ffn->getArg(1), i64(static_cast<int64_t>(r))));
        off = regionEnd(r, off);
      }
      b_.CreateRet(off);
      fills.push_back(ffn);
    }
    b_.SetInsertPoint(caller);
    entryBB_ = callerEntry;
    dims_ = callerDims;
    dimCache_.clear();
    bufPtr_.clear();
    Value *off = firstRegionOffset();
    for (llvm::Function *ffn : fills) off = b_.CreateCall(ffn, {dims, table, off});
  }

  void emitWorkSize(const std::string &name) {
    auto *fty = llvm::FunctionType::get(b_.getInt64Ty(), {ptrTy()}, false);
    auto *fn = llvm::Function::Create(fty, llvm::GlobalValue::ExternalLinkage, name, mod_);
    setTargetAttributes(*fn, t_);
    beginFunction(fn, fn->getArg(0));
    Value *total = nullptr;
    regionOffsets(total);
    b_.CreateRet(total);
  }

  void emitEntry(const std::string &name) {
    auto *fty = llvm::FunctionType::get(b_.getVoidTy(), {ptrTy(), ptrTy(), ptrTy()}, false);
    auto *fn = llvm::Function::Create(fty, llvm::GlobalValue::ExternalLinkage, name, mod_);
    setTargetAttributes(*fn, t_);
    for (unsigned i = 0; i < 3; ++i) fn->addParamAttr(i, llvm::Attribute::NoCapture);
    fn->addParamAttr(0, llvm::Attribute::ReadOnly);
    fn->addParamAttr(1, llvm::Attribute::ReadOnly);
    fn->getArg(0)->setName("args");
    fn->getArg(1)->setName("dims");
    fn->getArg(2)->setName("work");

    // A step whose key an earlier step has calls that step's function: the hidden layers of
    // a deep MLP (forward, input gradient, weight update) are lowered once each.
    std::vector<std::vector<Buffer>> params(mp_.steps.size());
    std::vector<llvm::Function *> stepFns;
    std::map<std::string, llvm::Function *> byKey;
    for (size_t i = 0; i < mp_.steps.size(); ++i) {
      if (i > 0 && mp_.steps[i - 1].interleaved) {
        stepFns.push_back(nullptr);  // runs inside the step before
        continue;
      }
      params[i] = stepParams(mp_.steps[i]);
      // An interleaved pair is one function, which takes the buffers of both.
      const Step *rider = mp_.steps[i].interleaved ? &mp_.steps[i + 1] : nullptr;
      if (rider)
        for (const Buffer &b : stepParams(*rider))
          if (std::find(params[i].begin(), params[i].end(), b) == params[i].end()) params[i].push_back(b);
      std::string key = stepKey(mp_.steps[i], params[i]);
      if (rider) key += "\nrider " + stepKey(*rider, params[i]);
      auto it = byKey.find(key);
      if (it == byKey.end()) {
        llvm::Function *fn = emitStep(mp_.steps[i], i, params[i], rider);
        byKey.emplace(std::move(key), fn);
        stepFns.push_back(fn);
        continue;
      }
      stepFns.push_back(it->second);
      if (o_.verifyStepReuse) {
        llvm::Function *fn = emitStep(mp_.steps[i], i, params[i], rider);
        if (!sameFunction(*it->second, *fn))
          internalError("codegen: step {} ({}) has the key of {} but lowers differently", i, fn->getName().str(),
                        it->second->getName().str());
        fn->eraseFromParent();
      }
    }

    beginFunction(fn, fn->getArg(1));
    size_t count = mp_.steps.size();
    std::vector<Value *> offs;
    if (count <= kEntryChunkSteps) {
      Value *total = nullptr;
      offs = regionOffsets(total);
    }
    if (check_)
      b_.CreateStore(fconst(0), b_.CreateInBoundsGEP(b_.getInt8Ty(), fn->getArg(2), i64(kNumericsFlagOffset)));
    if (count <= kEntryChunkSteps) {
      emitCalls(0, count, params, stepFns, fn, [&](size_t r) { return offs[r]; });
      b_.CreateRetVoid();
      return;
    }
    // A long step (a deep model: thousands of steps) calls its steps from functions of
    // kEntryChunkSteps calls each, which read the regions' offsets from a table: LLVM's
    // register allocation and instruction scheduling grew faster than linearly in one
    // function with every offset live across every call (1,000 layers: 23 s of 28).
    Value *table = b_.CreateAlloca(b_.getInt64Ty(), i64(static_cast<int64_t>(mp_.regions.size())), "offsets");
    fillOffsetTable(name, fn->getArg(1), table);
    llvm::BasicBlock *entryEnd = b_.GetInsertBlock();
    std::vector<llvm::Function *> chunks;
    auto *cty = llvm::FunctionType::get(b_.getVoidTy(), {ptrTy(), ptrTy(), ptrTy(), ptrTy()}, false);
    for (size_t first = 0; first < count; first += kEntryChunkSteps) {
      auto *cfn = llvm::Function::Create(cty, llvm::GlobalValue::InternalLinkage,
                                         fmt::format("{}_steps_{}", name, first), mod_);
      setTargetAttributes(*cfn, t_);
      cfn->addFnAttr(llvm::Attribute::NoInline);
      for (unsigned i = 0; i < 4; ++i) cfn->addParamAttr(i, llvm::Attribute::NoCapture);
      for (unsigned i : {0u, 1u, 3u}) cfn->addParamAttr(i, llvm::Attribute::ReadOnly);
      cfn->addParamAttr(3, llvm::Attribute::NoAlias);
      beginFunction(cfn, cfn->getArg(1));
      emitCalls(first, std::min(count, first + kEntryChunkSteps), params, stepFns, cfn, [&](size_t r) -> Value * {
        return b_.CreateLoad(b_.getInt64Ty(),
                             b_.CreateInBoundsGEP(b_.getInt64Ty(), cfn->getArg(3), i64(static_cast<int64_t>(r))));
      });
      b_.CreateRetVoid();
      chunks.push_back(cfn);
    }
    b_.SetInsertPoint(entryEnd);
    for (llvm::Function *cfn : chunks) b_.CreateCall(cfn, {fn->getArg(0), fn->getArg(1), fn->getArg(2), table});
    b_.CreateRetVoid();
  }

  // The calls of steps [first, last) in `fn`, which takes (args, dims, work, ...); the
  // offset of region r in work is offset(r).
  void emitCalls(size_t first, size_t last, const std::vector<std::vector<Buffer>> &params,
                 const std::vector<llvm::Function *> &stepFns, llvm::Function *fn,
                 const std::function<Value *(size_t)> &offset) {
    auto pointer = [&](Buffer b) -> Value * {
      if (b.kind == Buffer::Region)
        return b_.CreateInBoundsGEP(b_.getInt8Ty(), fn->getArg(2), offset(static_cast<size_t>(b.index)));
      Value *slot = b_.CreateInBoundsGEP(ptrTy(), fn->getArg(0), i64(b.index));
      return b_.CreateLoad(ptrTy(), slot);
    };
    Value *flag = b_.CreateInBoundsGEP(b_.getInt8Ty(), fn->getArg(2), i64(kNumericsFlagOffset));
    for (size_t i = first; i < last; ++i) {
      if (!stepFns[i]) continue;  // runs inside the step before
      std::vector<Value *> args;
      for (const Buffer &b : params[i]) args.push_back(pointer(b));
      if (check_) args.push_back(flag);
      args.push_back(fn->getArg(1));
      if (splitOverThreads(mp_.steps[i])) emitParallelCall(mp_.steps[i], i, stepFns[i], args);
      else b_.CreateCall(stepFns[i], args);
    }
  }

  // A large matmul step runs as `gradc_parallel_run(task, ctx, threads)` (runtime/Parallel.h),
  // ctx holding the step's arguments; a small one runs on this thread as part 0 of 1.
  void emitParallelCall(const Step &s, size_t index, llvm::Function *stepFn, const std::vector<Value *> &args) {
    llvm::Type *i64t = b_.getInt64Ty();
    llvm::Function *&task = tasks_[stepFn];
    if (!task) {
      auto *taskTy = llvm::FunctionType::get(b_.getVoidTy(), {ptrTy(), i64t, i64t}, false);
      task = llvm::Function::Create(taskTy, llvm::GlobalValue::InternalLinkage, stepFn->getName() + "_task", mod_);
      setTargetAttributes(*task, t_);
      llvm::IRBuilder<> tb(llvm::BasicBlock::Create(ctx_, "entry", task));
      std::vector<Value *> targs;
      for (size_t a = 0; a < args.size(); ++a)
        targs.push_back(tb.CreateLoad(ptrTy(), tb.CreateInBoundsGEP(ptrTy(), task->getArg(0), tb.getInt64(a))));
      targs.push_back(task->getArg(1));
      targs.push_back(task->getArg(2));
      tb.CreateCall(stepFn, targs);
      tb.CreateRetVoid();
    }
    llvm::FunctionCallee run = mod_.getOrInsertFunction(
        "gradc_parallel_run", llvm::FunctionType::get(b_.getVoidTy(), {ptrTy(), ptrTy(), i64t}, false));

    auto [M, K, N] = matmulDims(matmulOf(s));
    Value *panels = panelShare(b_, N, static_cast<uint64_t>(panelWidth()), i64(0), i64(1)).panels;
    Value *fmas = b_.CreateMul(b_.CreateMul(M, K), N);
    Value *big = b_.CreateAnd(b_.CreateICmpUGE(panels, i64(kParallelMinPanelsPerPart * threads_)),
                              b_.CreateICmpUGE(fmas, i64(kParallelMinFmas)));
    llvm::Function *fn = b_.GetInsertBlock()->getParent();
    auto *par = llvm::BasicBlock::Create(ctx_, fmt::format("parallel{}", index), fn);
    auto *ser = llvm::BasicBlock::Create(ctx_, fmt::format("serial{}", index), fn);
    auto *join = llvm::BasicBlock::Create(ctx_, fmt::format("joined{}", index), fn);
    b_.CreateCondBr(big, par, ser);

    b_.SetInsertPoint(par);
    llvm::IRBuilder<> eb(entryBB_, entryBB_->begin());
    Value *ctxArr = eb.CreateAlloca(llvm::ArrayType::get(ptrTy(), args.size()));
    for (size_t a = 0; a < args.size(); ++a)
      b_.CreateStore(args[a], b_.CreateInBoundsGEP(ptrTy(), ctxArr, i64(static_cast<int64_t>(a))));
    b_.CreateCall(run, {task, ctxArr, i64(threads_)});
    b_.CreateBr(join);

    b_.SetInsertPoint(ser);
    std::vector<Value *> sargs = args;
    sargs.push_back(i64(0));
    sargs.push_back(i64(1));
    b_.CreateCall(stepFn, sargs);
    b_.CreateBr(join);
    b_.SetInsertPoint(join);
  }
};

}  // namespace

std::unique_ptr<llvm::Module> lowerToLLVM(const Function &f, const CodegenOptions &o,
                                          const TargetDesc &t, llvm::LLVMContext &ctx,
                                          const llvm::DataLayout &dl) {
  auto mod = std::make_unique<llvm::Module>(f.name.empty() ? "gradc" : f.name, ctx);
  mod->setTargetTriple(t.triple);
  mod->setDataLayout(dl);
  Lowering(f, o, t, ctx, *mod).run(entrySymbol(f, o));
  std::string err;
  llvm::raw_string_ostream os(err);
  if (llvm::verifyModule(*mod, &os)) internalError("codegen produced invalid LLVM IR: {}", os.str());
  return mod;
}

}  // namespace gradc::codegen
