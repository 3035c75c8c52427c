// libFuzzer target: the whole front end (lexer, parser, AST printer, sema with shape
// checking, IR printer) on arbitrary bytes. A UserError is the expected answer to bad
// input; anything else (a crash, a sanitizer report, an InternalError escaping, a hang)
// is a finding.
//
//   cmake -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++-19 -DCMAKE_C_COMPILER=clang-19 -DGRADC_FUZZ=ON
//   ninja -C build-fuzz fuzz_model
//   build-fuzz/tests/fuzz_model -close_fd_mask=2 -max_total_time=3600 tests/fuzz/corpus_model
#include <cstddef>
#include <cstdint>
#include <string>

#include "frontend/AST.h"
#include "frontend/Frontend.h"
#include "frontend/Parser.h"
#include "ir/Printer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  gradc::SourceManager sm;
  int file = sm.addBuffer("fuzz.grad", std::string(reinterpret_cast<const char *>(data), size));
  try {
    std::unique_ptr<gradc::ModuleAST> ast = gradc::Parser(sm, file).parseModule();
    gradc::printAST(*ast, sm, false);
    gradc::Model m = gradc::buildModel(*ast, sm);
    gradc::ir::printFunction(m.forward, &sm);
  } catch (const gradc::UserError &e) {
    gradc::renderUserError(sm, e);
  }
  return 0;
}
