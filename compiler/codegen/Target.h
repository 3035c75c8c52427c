// Targets, the optimisation pipeline and machine-code emission, shared by the JIT and the
// ahead-of-time path so that both run the very same code generator.
//
// The host is described by llvm::sys::getHostCPUName() and getHostCPUFeatures(): on these
// machines LLVM names the CPU `rocketlake` although it has AVX-512, so the features are
// taken from the CPU itself and every function gets "prefer-vector-width"="512" when
// AVX-512 is present (otherwise loops stop at 256-bit vectors). Other triples (AArch64 for
// `gradc compile --target aarch64-linux-gnu`) use the named or generic CPU.
//
// libm's exp, log, tanh... are scalar calls, which keep a loop from being vectorised (a
// tanh network's step took 2.3x the time of the same network with relu). On x86-64 Linux,
// glibc's vector math library libmvec has them on 4, 8 and 16 lanes, and LLVM's loop
// vectoriser calls those (through the TargetLibraryInfo's vector function table). They are
// within a few ulp of the exact value, as PyTorch's vectorised functions are (measured over
// every 61st float: tanhf 1.4 ulp, expf 2.5, logf 3.9, log1pf 1.9; the scalar libm
// functions 2.2, 0.5, 0.8, 0.8). libm and each ISA's libmvec round differently, so after
// vectorisation every float call of them (a loop's scalar remainder, straight code, a loop
// vectorised 4 wide) goes to the widest ISA's function (unifyVectorMath): an element's value
// does not depend on where it is computed, and max(exp(w)) over equal w is a tie. float64
// code keeps libm. An object of `gradc compile` links them with -lm (glibc's libm.so and libm.a
// name libmvec too).
#pragma once

#include <memory>

#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <llvm/Support/DynamicLibrary.h>
#include <llvm/Target/TargetMachine.h>

#include "codegen/LowerToLLVM.h"

namespace gradc::codegen {

/// Registers the X86 and AArch64 targets (once).
void initTargets();

/// The triple, CPU and features to compile for.
TargetDesc resolveTarget(const CodegenOptions &o);

/// glibc's libmvec.so.1 in this process, when it loads and has glibc 2.35's tanhf and
/// log1pf (the newest functions of the vector math table); else an invalid library, and
/// code for the host does without vector math.
llvm::sys::DynamicLibrary hostLibmvec();

/// A TargetMachine for `t`; UserError when the triple is unknown.
std::unique_ptr<llvm::TargetMachine> createTargetMachine(const TargetDesc &t);

/// Runs LLVM's O3 pipeline (loop and SLP vectorisation on) over the module; with
/// t.vectorMath, loops over float exp, log, log1p, tanh, sin, cos and pow are vectorised with
/// libmvec's functions (4, 8 or 16 lanes, as the CPU has SSE2, AVX2, AVX-512).
void optimizeModule(llvm::Module &mod, llvm::TargetMachine &tm, const TargetDesc &t);

/// Lowers and optimises `f`: the module every way out starts from.
struct BuiltModule {
  std::unique_ptr<llvm::LLVMContext> ctx;
  std::unique_ptr<llvm::Module> mod;
  std::unique_ptr<llvm::TargetMachine> tm;
  TargetDesc target;
};
BuiltModule buildModule(const ir::Function &f, const CodegenOptions &o);

}  // namespace gradc::codegen
