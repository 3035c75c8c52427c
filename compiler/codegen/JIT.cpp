// The JIT: the optimised module (Target.cpp) handed to ORC's LLJIT for the host.
//
// Like Kaleidoscope's JIT, little more than LLJITBuilder, a generator that resolves libm
// (tanhf, log1pf, expf...) and memset/memcpy from this process, one that resolves glibc's
// vector math functions from libmvec.so.1 (when it cannot be loaded or is older than glibc
// 2.35, the module is built without them: resolveTarget, hostLibmvec), the runtime's thread pool
// entry `gradc_parallel_run` (defined by address: gradc does not export its symbols), and two
// lookups: the entry point and its work-size function. The LLJIT lives as long as any copy of the Kernel:
// a shared_ptr to it is captured by `call` and `workBytes`.
#include <chrono>

#include <llvm/ExecutionEngine/Orc/ExecutionUtils.h>
#include <llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/ExecutionEngine/Orc/ThreadSafeModule.h>
#include <llvm/Support/Error.h>
#include <llvm/TargetParser/SubtargetFeature.h>

#include "codegen/Codegen.h"
#include "codegen/Target.h"
#include "ir/Signature.h"
#include "runtime/Parallel.h"

namespace gradc::codegen {

namespace {

template <typename T>
T orFail(llvm::Expected<T> e, const char *what) {
  if (!e) internalError("JIT: {}: {}", what, llvm::toString(e.takeError()));
  return std::move(*e);
}
}  // namespace

rt::Kernel jitCompile(const ir::Function &f, const CodegenOptions &o, CompileStats *stats) {
  auto start = std::chrono::steady_clock::now();
  CodegenOptions host = o;
  host.triple.clear();
  initTargets();
  TargetDesc target = resolveTarget(host);

  llvm::orc::JITTargetMachineBuilder jtmb{llvm::Triple(target.triple)};
  jtmb.setCPU(target.cpu);
  llvm::SubtargetFeatures feats(target.features);
  jtmb.addFeatures(feats.getFeatures());
  jtmb.setCodeGenOptLevel(llvm::CodeGenOptLevel::Aggressive);
  std::shared_ptr<llvm::orc::LLJIT> jit =
      orFail(llvm::orc::LLJITBuilder().setJITTargetMachineBuilder(std::move(jtmb)).create(), "create");
  char prefix = jit->getDataLayout().getGlobalPrefix();
  jit->getMainJITDylib().addGenerator(
      orFail(llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(prefix), "process symbols"));
  if (target.vectorMath)  // the host's libmvec is usable (resolveTarget)
    jit->getMainJITDylib().addGenerator(
        std::make_unique<llvm::orc::DynamicLibrarySearchGenerator>(hostLibmvec(), prefix));
  BuiltModule b = buildModule(f, host);
  llvm::orc::SymbolMap runtimeSyms;
  runtimeSyms[jit->mangleAndIntern("gradc_parallel_run")] = {
      llvm::orc::ExecutorAddr::fromPtr(&gradc_parallel_run), llvm::JITSymbolFlags::Exported};
  if (auto err = jit->getMainJITDylib().define(llvm::orc::absoluteSymbols(std::move(runtimeSyms))))
    internalError("JIT: define runtime symbols: {}", llvm::toString(std::move(err)));
  if (auto err = jit->addIRModule(llvm::orc::ThreadSafeModule(std::move(b.mod), std::move(b.ctx))))
    internalError("JIT: add module: {}", llvm::toString(std::move(err)));
  std::string sym = entrySymbol(f, o);
  auto fn = orFail(jit->lookup(sym), "lookup").toPtr<rt::KernelFn>();
  using WorkFn = int64_t (*)(const int64_t *);
  auto ws = orFail(jit->lookup(sym + "_work_size"), "lookup").toPtr<WorkFn>();

  rt::Kernel k;
  k.sig = ir::signatureOf(f);
  k.f64 = o.f64;
  k.numericsFlag = o.checkNumerics ? kNumericsFlagOffset : -1;
  k.call = [jit, fn](void *const *args, const int64_t *dims, void *work) { fn(args, dims, work); };
  k.workBytes = [jit, ws](const int64_t *dims) { return static_cast<size_t>(ws(dims)); };
  if (stats)
    stats->compileMs =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return k;
}

}  // namespace gradc::codegen
