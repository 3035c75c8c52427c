// Writing files whole or not at all (docs/language.md, "Command line": files named by --out,
// --save, -o, --metrics): a temporary file in the same folder, fsync, rename over the target
// (over the file a symbolic link names, not the link), keeping the replaced file's permissions;
// a write-protected file is refused, as open() refuses it. A target that exists and is neither
// a regular file nor a folder (/dev/null, a FIFO, /dev/stdout), or that is this process's
// standard output or error, is written in place. The temporary files of writers killed before
// their rename (`TARGET.tmp.PID` of a process that is gone, untouched for a minute) are removed
// after a write of the same target.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace gradc::rt {

/// Writes `content` to `path` atomically. Throws UserError `PATH: error: ...` on failure.
void writeFileAtomic(const std::string &path, std::string_view content);

/// Whether `path` is written in place rather than replaced: a device, a FIFO, or this
/// process's standard output or error. What is written there cannot be taken back.
bool writtenInPlace(const std::string &path);

/// The file `path` names once symbolic links are followed (also when the last one dangles:
/// writing creates that file). A file written through a link replaces what the link names.
/// Throws UserError `PATH: error: cannot write file: Too many levels of symbolic links` when
/// the links loop.
std::string linkTarget(const std::string &path);

/// `path` + `.tmp.PID` + `extension`, the name shortened where a long one would pass the
/// longest file name (a valid 250-byte name could not be written).
std::string tempPath(const std::string &path, const std::string &extension = "");

/// This machine's physical memory in bytes (0 when it cannot be known).
uint64_t physicalMemory();

/// Throws UserError `PATH: error: out of memory: ...` when a file of `bytes` bytes is larger
/// than this machine's memory, before any of it is read.
void checkFitsInMemory(const std::string &path, uint64_t bytes);

/// Throws the UserError that writing `path` would give, when it is plain before any work: its
/// folder is missing or not writable, or `path` is a folder. A command calls it for every file
/// it will write before computing, so that none is written when another cannot be.
void checkWritable(const std::string &path);

}  // namespace gradc::rt
