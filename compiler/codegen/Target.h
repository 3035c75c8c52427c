// Targets, the optimisation pipeline and machine-code emission, shared by the JIT and the
// ahead-of-time path so that both run the very same code generator.
//
// The host is described by llvm::sys::getHostCPUName() and getHostCPUFeatures(): on these
// machines LLVM names the CPU `rocketlake` although it has AVX-512, so the features are
// taken from the CPU itself and every function gets "prefer-vector-width"="512" when
// AVX-512 is present (otherwise loops stop at 256-bit vectors). Other triples (AArch64 for
// `gradc compile --target aarch64-linux-gnu`) use the named or generic CPU.
#pragma once

#include <memory>

#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <llvm/Target/TargetMachine.h>

#include "codegen/LowerToLLVM.h"

namespace gradc::codegen {

/// Registers the X86 and AArch64 targets (once).
void initTargets();

/// The triple, CPU and features to compile for.
TargetDesc resolveTarget(const CodegenOptions &o);

/// A TargetMachine for `t`; UserError when the triple is unknown.
std::unique_ptr<llvm::TargetMachine> createTargetMachine(const TargetDesc &t);

/// Runs LLVM's O3 pipeline (loop and SLP vectorisation on) over the module.
void optimizeModule(llvm::Module &mod, llvm::TargetMachine &tm);

/// Lowers and optimises `f`: the module every way out starts from.
struct BuiltModule {
  std::unique_ptr<llvm::LLVMContext> ctx;
  std::unique_ptr<llvm::Module> mod;
  std::unique_ptr<llvm::TargetMachine> tm;
  TargetDesc target;
};
BuiltModule buildModule(const ir::Function &f, const CodegenOptions &o);

}  // namespace gradc::codegen
