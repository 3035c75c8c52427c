// `gradc check MODEL`: parse, resolve names, check shapes. Silent (but for warnings) and
// exit status 0 when the model is valid; a UserError reaches main otherwise.
#include "driver/Commands.h"
#include "driver/Pipeline.h"

namespace gradc::driver {

int runCheck(Options &o, SourceManager &sm) {
  loadModelFor(sm, o, Float32Use::Other);
  return 0;
}

}  // namespace gradc::driver
