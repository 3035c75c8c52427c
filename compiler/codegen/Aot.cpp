// Ahead-of-time modules: several functions and an init function in one object (see Aot.h).
#include "codegen/Aot.h"

#include <llvm/ADT/SmallString.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/IR/Verifier.h>
#include <llvm/Linker/Linker.h>
#include <llvm/Support/raw_ostream.h>

#include "codegen/Target.h"

namespace gradc::codegen {

namespace {

// void INIT(ptr state, i64 seed): memset(state, 0, stateBytes), then per param
// gradc_init_param_f32/f64(state + offset, kind, args, nargs, shape, rank, seed, index).
void emitInit(llvm::Module &mod, const AotUnit &u, const TargetDesc &t, bool f64) {
  llvm::LLVMContext &ctx = mod.getContext();
  llvm::IRBuilder<> b(ctx);
  auto *ptr = b.getPtrTy();
  auto *i32 = b.getInt32Ty();
  auto *i64 = b.getInt64Ty();
  auto *fty = llvm::FunctionType::get(b.getVoidTy(), {ptr, i64}, false);
  auto *fn = llvm::Function::Create(fty, llvm::GlobalValue::ExternalLinkage, u.initSymbol, mod);
  setTargetAttributes(*fn, t);
  // (They return 0, or -1 for arguments this code never passes: the result is not read.)
  auto *initTy = llvm::FunctionType::get(i32, {ptr, i32, ptr, i32, ptr, i32, i64, i32}, false);
  llvm::FunctionCallee initParam =
      mod.getOrInsertFunction(f64 ? "gradc_init_param_f64" : "gradc_init_param_f32", initTy);
  b.SetInsertPoint(llvm::BasicBlock::Create(ctx, "entry", fn));
  llvm::Value *state = fn->getArg(0);
  llvm::Value *seed = fn->getArg(1);
  b.CreateMemSet(state, b.getInt8(0), b.getInt64(static_cast<uint64_t>(u.stateBytes)), llvm::MaybeAlign(64));
  auto constArray = [&](llvm::Constant *init, const std::string &name) -> llvm::Value * {
    return new llvm::GlobalVariable(mod, init->getType(), true, llvm::GlobalValue::PrivateLinkage,
                                    init, name);
  };
  for (const AotParamInit &p : u.inits) {
    std::vector<llvm::Constant *> args, shape;
    for (double a : p.args) args.push_back(llvm::ConstantFP::get(b.getDoubleTy(), a));
    for (int64_t d : p.shape) shape.push_back(b.getInt64(static_cast<uint64_t>(d)));
    llvm::Value *argsPtr = args.empty()
        ? static_cast<llvm::Value *>(llvm::ConstantPointerNull::get(ptr))
        : constArray(llvm::ConstantArray::get(llvm::ArrayType::get(b.getDoubleTy(), args.size()), args),
                     "init.args");
    llvm::Value *shapePtr = shape.empty()
        ? static_cast<llvm::Value *>(llvm::ConstantPointerNull::get(ptr))
        : constArray(llvm::ConstantArray::get(llvm::ArrayType::get(i64, shape.size()), shape),
                     "init.shape");
    llvm::Value *out = b.CreateGEP(b.getInt8Ty(), state, b.getInt64(static_cast<uint64_t>(p.offset)));
    b.CreateCall(initParam, {out, b.getInt32(static_cast<uint32_t>(p.kind)), argsPtr,
                             b.getInt32(static_cast<uint32_t>(args.size())), shapePtr,
                             b.getInt32(static_cast<uint32_t>(shape.size())), seed,
                             b.getInt32(static_cast<uint32_t>(p.index))});
  }
  b.CreateRetVoid();
}

}  // namespace

std::string emitAot(const AotUnit &u, const CodegenOptions &o, AotEmit kind) {
  TargetDesc t = resolveTarget(o);
  std::unique_ptr<llvm::TargetMachine> tm = createTargetMachine(t);
  // Each function and constant in its own section, so that a program that never calls init
  // can drop it, and with it init's reference to libgradc_runtime, by linking with
  // -Wl,--gc-sections (the program then needs only the object and libm).
  tm->Options.FunctionSections = true;
  tm->Options.DataSections = true;
  llvm::LLVMContext ctx;
  llvm::DataLayout dl = tm->createDataLayout();
  auto mod = std::make_unique<llvm::Module>(u.name, ctx);
  mod->setTargetTriple(t.triple);
  mod->setDataLayout(dl);
  llvm::Linker linker(*mod);
  for (const ir::Function *f : u.functions) {
    std::unique_ptr<llvm::Module> m = lowerToLLVM(*f, o, t, ctx, dl);
    optimizeModule(*m, *tm, t);
    if (linker.linkInModule(std::move(m)))
      internalError("cannot link the module of '{}' into '{}'", f->name, u.name);
  }
  if (!u.initSymbol.empty()) emitInit(*mod, u, t, o.f64);
  std::string verify;
  llvm::raw_string_ostream vs(verify);
  if (llvm::verifyModule(*mod, &vs)) internalError("invalid AOT module: {}", vs.str());

  llvm::SmallString<0> buf;
  llvm::raw_svector_ostream os(buf);
  if (kind == AotEmit::LLVM) {
    mod->print(os, nullptr);
  } else {
    llvm::legacy::PassManager pm;
    auto type = kind == AotEmit::Object ? llvm::CodeGenFileType::ObjectFile
                                        : llvm::CodeGenFileType::AssemblyFile;
    if (tm->addPassesToEmitFile(pm, os, nullptr, type))
      internalError("the target {} cannot emit this file type", t.triple);
    pm.run(*mod);
  }
  return std::string(buf.str());
}

}  // namespace gradc::codegen
