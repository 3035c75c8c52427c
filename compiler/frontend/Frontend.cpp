// The front end's entry point: parse, then build the checked Model (see Frontend.h).
#include "frontend/Frontend.h"

#include "frontend/AST.h"
#include "support/LargeStack.h"

namespace gradc {

Model loadModel(SourceManager &sm, const std::string &path) {
  // The AST is freed on the large stack too: its destructor recurses as deep as it nests.
  return onLargeStack([&] {
    std::unique_ptr<ModuleAST> ast = parseModelFile(sm, path);
    return buildModel(*ast, sm);
  });
}

}  // namespace gradc
