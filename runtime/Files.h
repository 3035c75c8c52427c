// Writing files whole or not at all (SPEC §8: files named by --out, --save, -o, --metrics):
// a temporary file in the same folder, fsync, rename over the target.
#pragma once

#include <string>
#include <string_view>

namespace gradc::rt {

/// Writes `content` to `path` atomically. Throws UserError `PATH: error: ...` on failure.
void writeFileAtomic(const std::string &path, std::string_view content);

}  // namespace gradc::rt
