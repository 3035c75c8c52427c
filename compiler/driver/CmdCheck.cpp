// `gradc check MODEL`: parse, resolve names, check shapes. Silent (but for warnings) and
// exit status 0 when the model is valid; a UserError reaches main otherwise.
#include "driver/Commands.h"
#include "frontend/Frontend.h"

namespace gradc::driver {

int runCheck(Options &o, SourceManager &sm) {
  loadModel(sm, o.model);
  return 0;
}

}  // namespace gradc::driver
