// `gradc compile MODEL -o OUT [--header H] [--emit obj|asm|llvm|shared] [--target T]
// [--cpu C] [--dtype f32|f64]`: the model's step, eval and predict programs (as `gradc train`
// JIT-compiles them) and an init function in one object file, assembly file, LLVM IR file
// or shared library, and a plain C header that describes them (CHeader.h, docs/aot.md).
// Every output appears whole or not at all: it is written to a temporary file and renamed.
// `-o -` is standard output (an object file or library only when that is not a terminal),
// and so is `--header -`.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <tuple>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <llvm/TargetParser/Host.h>
#include <llvm/TargetParser/Triple.h>

#include "codegen/Aot.h"
#include "codegen/Target.h"
#include "driver/CHeader.h"
#include "driver/Pipeline.h"
#include "driver/RunSupport.h"
#include "ir/Signature.h"
#include "runtime/Files.h"

extern char **environ;

namespace gradc::driver {

namespace {

// Links `object` into the shared library `out` with the system's C compiler driver
// (`cc -shared`), through a temporary file renamed into place; `-` is standard output.
void linkShared(const std::string &objectBytes, const std::string &out) {
  // /dev/null, a FIFO or standard output is written in place, not replaced by the rename, and
  // the temporary files go to the temporary folder.
  bool toStdout = out == "-";
  bool inPlace = toStdout || rt::writtenInPlace(out);
  const std::string who = toStdout ? "gradc" : out;  // the name an error starts with
  const char *tmpdir = std::getenv("TMPDIR");
  std::string target = toStdout ? out : rt::linkTarget(out);
  std::string base = inPlace ? std::string(tmpdir && *tmpdir ? tmpdir : "/tmp") + "/gradc" : target;
  std::string obj = rt::tempPath(base, ".o"), so = rt::tempPath(base, ".so");
  rt::writeFileAtomic(obj, objectBytes);
  // $CC may hold words, as make's does (`ccache cc`, `gcc -m64`).
  const char *cc = std::getenv("CC");
  std::string driver = cc && *cc ? cc : "cc";
  std::vector<std::string> argv;
  std::istringstream words(driver);
  for (std::string w; words >> w;) argv.push_back(w);
  if (argv.empty()) argv.push_back("cc");
  for (const std::string &a : {std::string("-shared"), std::string("-o"), so, obj, std::string("-lm")}) argv.push_back(a);
  std::vector<char *> cargv;
  for (std::string &a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  pid_t pid;
  int err = ::posix_spawnp(&pid, argv[0].c_str(), nullptr, nullptr, cargv.data(), environ);
  int status = 0;
  if (err == 0) ::waitpid(pid, &status, 0);
  std::remove(obj.c_str());
  if (err != 0)
    fileError(who, "--emit shared needs a linker: cannot run `{}` ({}); install a C compiler "
              "(e.g. gcc) or set CC", driver, std::strerror(err));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::remove(so.c_str());
    fileError(who, "`{} -shared` failed to link the shared library", driver);
  }
  if (inPlace) {
    std::ifstream in(so, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    bool ok = !in.bad();
    std::remove(so.c_str());
    if (!ok) fileError(who, "cannot read the linked library {}", so);
    if (toStdout) writeStandardOutput(bytes);
    else rt::writeFileAtomic(out, bytes);
    return;
  }
  if (std::rename(so.c_str(), target.c_str()) != 0) {
    int e = errno;
    std::remove(so.c_str());
    fileError(out, "cannot write file: {}", std::strerror(e));
  }
}

codegen::CodegenOptions codegenOptions(const Options &o) {
  codegen::CodegenOptions c;
  c.f64 = o.dtype == "f64";
  c.triple = o.target;
  c.cpu = o.cpu;
  c.threads = o.threads > 0 ? o.threads : 1;  // --threads absent (0 is a bad flag): 1
  return c;
}

}  // namespace

std::string compileFlagError(const Options &o) {
  // A name with a control character in it (a newline pasted into a script) is no triple or
  // CPU; LLVM would take `x86_64-pc-linux-gnu\nfoo` for the host's triple.
  for (const auto &[flag, value, example] : {std::tuple{"--target", &o.target, "a target triple such as x86_64-pc-linux-gnu"},
                                             std::tuple{"--cpu", &o.cpu, "a CPU name such as skylake"}})
    if (std::any_of(value->begin(), value->end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }))
      return fmt::format("{} takes {}, not '{}'", flag, example, *value);
  // `-o -` is standard output, as for clang; an object file or library is not written to a
  // terminal, where its bytes would garble the screen.
  if (o.out == "-" && (o.emit == "obj" || o.emit == "shared") && ::isatty(STDOUT_FILENO))
    return fmt::format("-o - would write the {} to the terminal: redirect standard output to a file or "
                       "a pipe, or use --emit asm or llvm", o.emit == "obj" ? "object file" : "shared library");
  try {
    codegen::resolveTarget(codegenOptions(o));
  } catch (const UserError &e) {
    return e.what();
  }
  // The host's linker makes a library for the host's architecture, system and C library
  // (`x86_64-linux-gnu` is the host `x86_64-pc-linux-gnu` for it).
  llvm::Triple target(llvm::Triple::normalize(o.target)), host(llvm::sys::getProcessTriple());
  // The code and the runtime follow the ELF systems' C calling convention and symbol names: a
  // Windows (COFF) or Apple (Mach-O) object would link and then be called wrongly.
  if (!o.target.empty() && !target.isOSBinFormatELF())
    return fmt::format("--target {}: gradc compiles for ELF systems such as Linux, not for {}", o.target,
                       target.isOSBinFormatCOFF()    ? "Windows (COFF objects)"
                       : target.isOSBinFormatMachO() ? "Apple's systems (Mach-O objects)"
                                                     : "this target's object format");
  if (o.emit == "shared" && !o.target.empty() &&
      (target.getArch() != host.getArch() || target.getOS() != host.getOS() ||
       target.getEnvironment() != host.getEnvironment()))
    return fmt::format("--emit shared links with the host's linker; for the target {} use --emit obj "
                       "and link with that target's tools", o.target);
  return "";
}

int runCompile(Options &o, SourceManager &sm) {
  // The compiled code starts the params from their initialisers and bakes in the optimiser's
  // settings, in the compiled float type: as for train, a value beyond float32 is an error.
  Model m = loadModelFor(sm, o, Float32Use::Step);
  bool f64 = o.dtype == "f64";

  // `-o -` and `--header -` write to standard output.
  const std::string &out = o.out;
  // Both files or neither: an unwritable header path fails before the object is written.
  if (out != "-") rt::checkWritable(out);
  if (!o.header.empty() && o.header != "-") rt::checkWritable(o.header);

  codegen::CodegenOptions c = codegenOptions(o);
  codegen::TargetDesc target = codegen::resolveTarget(c);

  ir::Function step = buildProgram(m, Program::Step);
  ir::Function eval = buildProgram(m, Program::Eval);
  ir::Function predict = buildProgram(m, Program::Predict);
  bool hasPredict = !predict.results.empty();
  rt::Signature stepSig = ir::signatureOf(step);
  StateLayout state = stateLayout(m, stepSig, f64);

  codegen::AotUnit unit;
  unit.name = m.name;
  unit.functions = {&step, &eval};
  if (hasPredict) unit.functions.push_back(&predict);
  unit.initSymbol = "gradc_" + m.name + "_init";
  for (char &ch : unit.initSymbol)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_') ch = '_';
  unit.stateBytes = state.bytes;
  for (const StateEntry &e : state.entries) {
    if (e.paramIndex < 0) continue;
    const ParamInfo &p = m.params[static_cast<size_t>(e.paramIndex)];
    unit.inits.push_back({e.offset, static_cast<int>(p.init), p.initArgs, e.shape, e.paramIndex});
  }

  codegen::AotEmit kind = o.emit == "asm" ? codegen::AotEmit::Assembly
                        : o.emit == "llvm" ? codegen::AotEmit::LLVM
                                           : codegen::AotEmit::Object;
  std::string bytes = codegen::emitAot(unit, c, kind);

  std::string header;
  if (!o.header.empty()) {
    HeaderInfo info;
    info.modelPath = o.model;
    info.hash = modelHash(sm, m);
    info.triple = target.triple;
    info.cpu = target.cpu;
    info.initSymbol = unit.initSymbol;
    info.f64 = f64;
    info.threads = c.threads;
    info.lr = m.optimizer.args.count("lr") ? m.optimizer.args.at("lr") : 0.01;
    std::vector<HeaderFunction> fns = {
        {"step", codegen::entrySymbol(step, c), stepSig},
        {"eval", codegen::entrySymbol(eval, c), ir::signatureOf(eval)},
        {"predict", hasPredict ? codegen::entrySymbol(predict, c) : "",
         hasPredict ? ir::signatureOf(predict) : rt::Signature{}}};
    header = cHeader(m, info, state, fns);
  }

  if (o.emit == "shared") linkShared(bytes, out);
  else if (out == "-") writeStandardOutput(bytes);
  else rt::writeFileAtomic(out, bytes);
  if (o.header == "-") writeStandardOutput(header);
  else if (!o.header.empty()) rt::writeFileAtomic(o.header, header);
  return 0;
}

}  // namespace gradc::driver
