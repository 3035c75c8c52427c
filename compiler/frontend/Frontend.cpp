// The front end's entry point: parse, then build the checked Model (see Frontend.h).
#include "frontend/Frontend.h"

#include "frontend/AST.h"

namespace gradc {

Model loadModel(SourceManager &sm, const std::string &path) {
  std::unique_ptr<ModuleAST> ast = parseModelFile(sm, path);
  return buildModel(*ast, sm);
}

}  // namespace gradc
