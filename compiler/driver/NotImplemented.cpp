// Commands that are not built yet say so plainly and exit with status 2.
#include <iostream>

#include "driver/Commands.h"

namespace gradc::driver {

int notImplemented(const char *command) {
  std::cerr << "gradc: error: `gradc " << command << "` is not implemented yet\n";
  return 2;
}

}  // namespace gradc::driver
