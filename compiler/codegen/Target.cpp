// Targets, O3 and emission of assembly and object files (see Target.h).
#include "codegen/Target.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <llvm/Analysis/TargetLibraryInfo.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/MC/MCSubtargetInfo.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Support/DynamicLibrary.h>
#include <llvm/Support/FileSystem.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Transforms/IPO/MergeFunctions.h>
#include <llvm/TargetParser/Host.h>
#include <llvm/TargetParser/Triple.h>

namespace gradc::codegen {

void initTargets() {
  static std::once_flag once;
  std::call_once(once, [] {
    LLVMInitializeX86TargetInfo();
    LLVMInitializeX86Target();
    LLVMInitializeX86TargetMC();
    LLVMInitializeX86AsmPrinter();
    LLVMInitializeAArch64TargetInfo();
    LLVMInitializeAArch64Target();
    LLVMInitializeAArch64TargetMC();
    LLVMInitializeAArch64AsmPrinter();
  });
}

std::string entrySymbol(const ir::Function &f, const CodegenOptions &o) {
  if (!o.symbol.empty()) return o.symbol;
  std::string s = "gradc_" + (f.name.empty() ? std::string("fn") : f.name);
  for (char &c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') c = '_';
  return s;
}

namespace {

// The registered back end of `triple` (x86-64 or AArch64), or a UserError.
const llvm::Target *findTarget(const std::string &triple) {
  initTargets();
  std::string err;
  const llvm::Target *target = llvm::TargetRegistry::lookupTarget(triple, err);
  if (!target) throw UserError(std::string("gradc"), fmt::format("unsupported target `{}`: {}", triple, err));
  // The two back ends also take 32-bit and big-endian relatives (i686, x86_64 with the x32
  // ABI, AArch64 with the ILP32 ABI, aarch64_be, arm64_32), for which the runtime and the
  // headers are not made: their pointers or byte order differ from the 64-bit little-endian
  // code gradc is tested as.
  llvm::Triple t(triple);
  bool narrow = (t.getArch() == llvm::Triple::x86_64 && t.isX32()) ||
                (t.getArch() == llvm::Triple::aarch64 && t.getEnvironment() == llvm::Triple::GNUILP32);
  if ((t.getArch() != llvm::Triple::x86_64 && t.getArch() != llvm::Triple::aarch64) || narrow)
    throw UserError(std::string("gradc"),
                    fmt::format("unsupported target `{}`: gradc compiles for 64-bit little-endian x86-64 and "
                                "AArch64 (x86_64-linux-gnu, aarch64-linux-gnu)", triple));
  return target;
}

}  // namespace

TargetDesc resolveTarget(const CodegenOptions &o) {
  TargetDesc t;
  std::string host = llvm::sys::getProcessTriple();
  bool isHost = o.triple.empty() || llvm::Triple::normalize(o.triple) == llvm::Triple::normalize(host);
  t.triple = o.triple.empty() ? host : llvm::Triple::normalize(o.triple);
  if (isHost && (o.cpu.empty() || o.cpu == "native")) {
    t.cpu = llvm::sys::getHostCPUName().str();
    std::vector<std::string> feats;
    for (const auto &kv : llvm::sys::getHostCPUFeatures()) {
      feats.push_back((kv.second ? "+" : "-") + kv.first().str());
      if (kv.first() == "avx512f" && kv.second) t.avx512 = true;
    }
    std::sort(feats.begin(), feats.end());
    for (const std::string &f : feats) t.features += (t.features.empty() ? "" : ",") + f;
  } else {
    t.cpu = o.cpu.empty() ? "generic" : o.cpu;
    // A named CPU (`--cpu skylake-avx512`) gets the 512-bit kernels its features allow, as
    // the host does.
    const llvm::Target *target = findTarget(t.triple);
    std::unique_ptr<llvm::MCSubtargetInfo> generic(target->createMCSubtargetInfo(t.triple, "generic", ""));
    if (!generic || !generic->isCPUStringValid(t.cpu))
      throw UserError(std::string("gradc"),
                      fmt::format("unknown CPU `{}` for target `{}` (`llc-19 -mtriple={} -mcpu=help` lists them)",
                                  t.cpu, t.triple, t.triple));
    if (llvm::Triple(t.triple).getArch() == llvm::Triple::x86_64) {
      std::unique_ptr<llvm::MCSubtargetInfo> sti(target->createMCSubtargetInfo(t.triple, t.cpu, t.features));
      // A 32-bit CPU (i386, pentium4) for a 64-bit target aborts LLVM's code generator.
      if (sti && !sti->checkFeatures("+64bit"))
        throw UserError(std::string("gradc"),
                        fmt::format("CPU `{}` cannot run 64-bit code, which target `{}` needs", t.cpu, t.triple));
      t.avx512 = sti && sti->checkFeatures("+avx512f");
    }
  }
  llvm::Triple triple(t.triple);
  t.vectorMath = o.vectorMath && triple.getArch() == llvm::Triple::x86_64 && triple.isOSLinux() &&
                 triple.isGNUEnvironment() && (!isHost || hostLibmvec().isValid());
  return t;
}

llvm::sys::DynamicLibrary hostLibmvec() {
  static const llvm::sys::DynamicLibrary lib = [] {
    std::string err;
    llvm::sys::DynamicLibrary l = llvm::sys::DynamicLibrary::getPermanentLibrary("libmvec.so.1", &err);
    bool usable = l.isValid() && l.getAddressOfSymbol("_ZGVbN4v_tanhf") && l.getAddressOfSymbol("_ZGVbN4v_log1pf");
    return usable ? l : llvm::sys::DynamicLibrary();
  }();
  return lib;
}

std::unique_ptr<llvm::TargetMachine> createTargetMachine(const TargetDesc &t) {
  const llvm::Target *target = findTarget(t.triple);
  llvm::TargetOptions opts;
  std::unique_ptr<llvm::TargetMachine> tm(target->createTargetMachine(
      t.triple, t.cpu, t.features, opts, llvm::Reloc::PIC_, std::nullopt, llvm::CodeGenOptLevel::Aggressive));
  if (!tm) throw UserError(std::string("gradc"), fmt::format("cannot compile for target `{}` cpu `{}`", t.triple, t.cpu));
  return tm;
}

namespace {

// The ISAs of libmvec: SSE2 (4 lanes), AVX2 (8) or AVX-512 (16), and the functions of the
// table. The names follow the x86 vector function ABI (`_ZGV` ISA, unmasked, lanes, one `v`
// per vector argument).
struct VectorIsa {
  const char *feature;  // empty for baseline x86-64
  char letter;
  unsigned lanes;
};
const VectorIsa kVectorIsas[] = {{"", 'b', 4}, {"+avx2", 'd', 8}, {"+avx512f", 'e', 16}};

struct VectorFn {
  const char *scalar;  // a libm name or an LLVM intrinsic
  const char *name;    // libmvec's name of it
  unsigned args;
};
const VectorFn kVectorFns[] = {{"expf", "expf", 1},          {"llvm.exp.f32", "expf", 1}, {"logf", "logf", 1},
                               {"llvm.log.f32", "logf", 1},  {"log1pf", "log1pf", 1},     {"tanhf", "tanhf", 1},
                               {"sinf", "sinf", 1},          {"llvm.sin.f32", "sinf", 1}, {"cosf", "cosf", 1},
                               {"llvm.cos.f32", "cosf", 1},  {"powf", "powf", 2},         {"llvm.pow.f32", "powf", 2}};

std::string vectorName(const VectorIsa &isa, const VectorFn &f) {
  return fmt::format("_ZGV{}N{}{}_{}", isa.letter, isa.lanes, std::string(f.args, 'v'), f.name);
}

// The table for the subtarget's ISAs. VecDesc holds StringRefs, so the names live as long as
// the process.
std::vector<llvm::VecDesc> vectorMathTable(const llvm::MCSubtargetInfo &sti) {
  struct Entry {
    const char *feature, *scalar;
    std::string vectorName, abiPrefix;
    unsigned lanes;
  };
  static const std::vector<Entry> entries = [] {
    std::vector<Entry> out;
    for (const VectorIsa &isa : kVectorIsas)
      for (const VectorFn &f : kVectorFns)
        out.push_back({isa.feature, f.scalar, vectorName(isa, f),
                       fmt::format("_ZGV_LLVM_N{}{}", isa.lanes, std::string(f.args, 'v')), isa.lanes});
    return out;
  }();
  std::vector<llvm::VecDesc> table;
  for (const Entry &e : entries)
    if (!*e.feature || sti.checkFeatures(e.feature))
      table.emplace_back(e.scalar, e.vectorName, llvm::ElementCount::getFixed(e.lanes), false, e.abiPrefix);
  return table;
}

// After vectorisation, every float call of a function of the table goes to the subtarget's
// widest vector function of it: a scalar call (a loop's remainder, straight code, a
// recomputation of the value in the backward pass) on its argument broadcast to every lane,
// a call of fewer lanes (a loop vectorised 4 wide, an SLP pair) on its lanes repeated, one of
// more lanes in parts. libm and each ISA's libmvec round differently by an ulp or so, and an
// element's value must not depend on where it is: max(exp(w)) over equal elements is a tie
// only when every exp(w[i]) is the same float, wherever the loop computes it.
void unifyVectorMath(llvm::Module &mod, const llvm::MCSubtargetInfo &sti) {
  const VectorIsa *widest = &kVectorIsas[0];
  for (const VectorIsa &isa : kVectorIsas)
    if (!*isa.feature || sti.checkFeatures(isa.feature)) widest = &isa;
  const unsigned W = widest->lanes;
  std::map<std::string, const VectorFn *, std::less<>> byName;
  std::map<llvm::Intrinsic::ID, const VectorFn *> byIntrinsic;
  for (const VectorFn &f : kVectorFns) {
    byName[f.scalar] = &f;
    // An intrinsic's vector forms (llvm.exp.v2f32 of an SLP pair) by its ID.
    if (llvm::Intrinsic::ID id = llvm::Function::lookupIntrinsicID(f.scalar); id != llvm::Intrinsic::not_intrinsic)
      byIntrinsic[id] = &f;
    for (const VectorIsa &isa : kVectorIsas)
      if (isa.lanes != W) byName[vectorName(isa, f)] = &f;
  }

  std::vector<std::pair<llvm::CallInst *, const VectorFn *>> calls;
  for (llvm::Function &fn : mod)
    for (llvm::BasicBlock &bb : fn)
      for (llvm::Instruction &inst : bb) {
        auto *call = llvm::dyn_cast<llvm::CallInst>(&inst);
        llvm::Function *callee = call ? call->getCalledFunction() : nullptr;
        if (!callee || !call->getType()->getScalarType()->isFloatTy()) continue;
        const VectorFn *f = nullptr;
        if (auto it = byName.find(callee->getName()); it != byName.end()) f = it->second;
        else if (auto jt = byIntrinsic.find(callee->getIntrinsicID()); jt != byIntrinsic.end()) f = jt->second;
        if (f && call->arg_size() == f->args) calls.push_back({call, f});
      }

  llvm::Type *wide = llvm::FixedVectorType::get(llvm::Type::getFloatTy(mod.getContext()), W);
  for (auto [call, f] : calls) {
    llvm::FunctionCallee target = mod.getOrInsertFunction(
        vectorName(*widest, *f), llvm::FunctionType::get(wide, llvm::SmallVector<llvm::Type *, 2>(f->args, wide), false));
    llvm::IRBuilder<> b(call);
    auto *vt = llvm::dyn_cast<llvm::FixedVectorType>(call->getType());
    unsigned n = vt ? vt->getNumElements() : 1;
    llvm::Value *result = llvm::PoisonValue::get(call->getType());
    for (unsigned start = 0; start < n; start += W) {
      unsigned len = std::min(W, n - start);
      llvm::SmallVector<int, 16> spread;  // lane i of the call takes element start + i % len
      for (unsigned i = 0; i < W; ++i) spread.push_back(static_cast<int>(start + i % len));
      llvm::SmallVector<llvm::Value *, 2> args;
      for (llvm::Value *a : call->args())
        args.push_back(vt ? b.CreateShuffleVector(a, spread) : b.CreateVectorSplat(W, a));
      llvm::CallInst *part = b.CreateCall(target, args);
      if (auto *fp = llvm::dyn_cast<llvm::FPMathOperator>(call)) part->setFastMathFlags(fp->getFastMathFlags());
      if (!vt) {
        result = b.CreateExtractElement(part, uint64_t{0});
      } else if (n <= W) {
        llvm::SmallVector<int, 16> first;
        for (unsigned i = 0; i < n; ++i) first.push_back(static_cast<int>(i));
        result = b.CreateShuffleVector(part, first);
      } else {
        for (unsigned i = 0; i < len; ++i)
          result = b.CreateInsertElement(result, b.CreateExtractElement(part, uint64_t{i}), uint64_t{start + i});
      }
    }
    call->replaceAllUsesWith(result);
    call->eraseFromParent();
  }
}

}  // namespace

void optimizeModule(llvm::Module &mod, llvm::TargetMachine &tm, const TargetDesc &t) {
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PipelineTuningOptions pto;
  pto.LoopVectorization = true;
  pto.SLPVectorization = true;
  // Unrolling turned the 10-wide loops of an output layer into straight code and then
  // vectorised the batch loop around them with gathers: 4x the code and compile time
  // (1.4 s -> 0.3 s for the 784-128-10 step) for no gain in speed. The vectoriser still
  // interleaves, and the matrix kernels are blocked by hand.
  pto.LoopUnrolling = false;
  llvm::PassBuilder pb(&tm, pto);
  llvm::TargetLibraryInfoImpl tlii(tm.getTargetTriple());
  if (t.vectorMath) tlii.addVectorizableFunctions(vectorMathTable(*tm.getMCSubtargetInfo()));
  fam.registerPass([&] { return llvm::TargetLibraryAnalysis(tlii); });
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  // Steps of the same computation on the same shapes (the hidden layers of a deep MLP) are
  // the same function, as buffers are arguments. The lowering already emits one function
  // for steps with the same key (LowerToLLVM.cpp); this catches what the key tells apart
  // but that lowers the same all the same: one copy is kept and optimised, the calls to the
  // others go to it.
  llvm::ModulePassManager merge;
  merge.addPass(llvm::MergeFunctionsPass());
  merge.run(mod, mam);
  llvm::ModulePassManager mpm = pb.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O3);
  mpm.run(mod, mam);
  if (t.vectorMath) unifyVectorMath(mod, *tm.getMCSubtargetInfo());
}

BuiltModule buildModule(const ir::Function &f, const CodegenOptions &o) {
  BuiltModule b;
  b.target = resolveTarget(o);
  b.tm = createTargetMachine(b.target);
  b.ctx = std::make_unique<llvm::LLVMContext>();
  b.mod = lowerToLLVM(f, o, b.target, *b.ctx, b.tm->createDataLayout());
  optimizeModule(*b.mod, *b.tm, b.target);
  return b;
}

std::string emitLLVM(const ir::Function &f, const CodegenOptions &o) {
  BuiltModule b = buildModule(f, o);
  std::string out;
  llvm::raw_string_ostream os(out);
  b.mod->print(os, nullptr);
  return os.str();
}

namespace {
void emitMachineCode(BuiltModule &b, llvm::raw_pwrite_stream &os, llvm::CodeGenFileType type) {
  llvm::legacy::PassManager pm;
  if (b.tm->addPassesToEmitFile(pm, os, nullptr, type))
    internalError("the target {} cannot emit this file type", b.target.triple);
  pm.run(*b.mod);
}
}  // namespace

std::string emitAsm(const ir::Function &f, const CodegenOptions &o) {
  BuiltModule b = buildModule(f, o);
  llvm::SmallString<0> buf;
  llvm::raw_svector_ostream os(buf);
  emitMachineCode(b, os, llvm::CodeGenFileType::AssemblyFile);
  return std::string(buf.str());
}

void emitObject(const ir::Function &f, const CodegenOptions &o, const std::string &path) {
  BuiltModule b = buildModule(f, o);
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec, llvm::sys::fs::OF_None);
  if (ec) fileError(path, "cannot write file: {}", ec.message());
  emitMachineCode(b, os, llvm::CodeGenFileType::ObjectFile);
  os.close();
  if (os.has_error()) fileError(path, "cannot write file: {}", os.error().message());
}

}  // namespace gradc::codegen
