// Atomic file writes (see Files.h).
#include "runtime/Files.h"

#include <cerrno>
#include <cstdio>
#include <csignal>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <iostream>
#include <map>
#include <mutex>
#include <sys/stat.h>
#include <unistd.h>

#include "support/Diagnostics.h"

namespace gradc::rt {

namespace {

// An existing target that is not a regular file or a folder (/dev/null, a FIFO, /dev/stdout)
// cannot be replaced by a rename: it is written in place.
bool isSpecial(const std::string &path) {
  struct stat sb {};
  return ::stat(path.c_str(), &sb) == 0 && !S_ISREG(sb.st_mode) && !S_ISDIR(sb.st_mode);
}

// 1 or 2 when `path` is a link to this process's standard output or error (/dev/stdout,
// /proc/self/fd/1, redirected to a regular file: a rename would replace the link, not the
// file), else -1. It is written through that descriptor, after what the program printed there.
int standardStream(const std::string &path) {
  struct stat l {}, p {}, s {};
  if (::lstat(path.c_str(), &l) != 0 || !S_ISLNK(l.st_mode) || ::stat(path.c_str(), &p) != 0) return -1;
  for (int fd : {1, 2})
    if (::fstat(fd, &s) == 0 && s.st_dev == p.st_dev && s.st_ino == p.st_ino) return fd;
  return -1;
}

void writeAll(const std::string &path, int fd, std::string_view content) {
  const char *p = content.data();
  size_t left = content.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = errno;
      if (fd > 2) ::close(fd);
      fileError(path, "cannot write file: {}", std::strerror(err));
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
}

// The longest file name in `dir` (NAME_MAX).
size_t nameMax(const std::string &dir) {
  long n = ::pathconf(dir.c_str(), _PC_NAME_MAX);
  return n > 0 ? static_cast<size_t>(n) : 255;
}

std::string folderOf(const std::string &path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

namespace {

std::string tempPathOf(const std::string &path, long pid, const std::string &extension) {
  std::string suffix = ".tmp." + std::to_string(pid) + extension;
  size_t start = path.find_last_of('/') + 1;  // 0 without a slash
  std::string name = path.substr(start);
  size_t max = nameMax(folderOf(path));
  if (name.size() + suffix.size() > max) name.resize(max > suffix.size() ? max - suffix.size() : 0);
  return path.substr(0, start) + name + suffix;
}

// A process killed while it wrote `target` (SIGKILL, a power cut) left its temporary file
// `target.tmp.PID` behind: the target itself was never partial, but the half-written file
// stayed. After a write of the target succeeded (at most once a minute per target: the
// metrics file is written every epoch), those of processes that no longer run are removed:
// files of a process this machine does not have (kill(PID, 0) says there is none) untouched
// for a minute. A writer on another machine sharing the folder, whose PID means nothing here,
// keeps writing its file, and so changes its time.
void removeStaleTemps(const std::string &target) {
  static std::mutex mutex;
  static std::map<std::string, time_t> last;
  time_t now = ::time(nullptr);
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto [it, fresh] = last.emplace(target, now);
    if (!fresh && now - it->second < 60) return;
    it->second = now;
  }
  std::string dir = folderOf(target);
  DIR *d = ::opendir(dir.c_str());
  if (!d) return;
  while (const dirent *e = ::readdir(d)) {
    std::string_view name = e->d_name;
    size_t at = name.rfind(".tmp.");
    if (at == std::string_view::npos || at + 5 == name.size() || name.size() - at > 16) continue;
    std::string_view digits = name.substr(at + 5);
    if (digits.find_first_not_of("0123456789") != std::string_view::npos) continue;
    long pid = std::stol(std::string(digits));
    std::string path = (dir == "/" ? "" : dir) + "/" + std::string(name);
    bool relative = target.find('/') == std::string::npos;
    if (tempPathOf(relative ? "./" + target : target, pid, "") != path || pid == ::getpid()) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    struct stat sb {};
    if (::lstat(path.c_str(), &sb) != 0 || !S_ISREG(sb.st_mode) || now - sb.st_mtime < 60) continue;
    ::unlink(path.c_str());
  }
  ::closedir(d);
}

}  // namespace

std::string tempPath(const std::string &path, const std::string &extension) {
  return tempPathOf(path, ::getpid(), extension);
}

std::string linkTarget(const std::string &path) {
  std::string p = path;
  for (int hops = 0; hops < 40; ++hops) {
    struct stat l {};
    if (::lstat(p.c_str(), &l) != 0 || !S_ISLNK(l.st_mode)) return p;
    std::string target(static_cast<size_t>(l.st_size > 0 ? l.st_size : 4096) + 1, '\0');
    ssize_t n = ::readlink(p.c_str(), target.data(), target.size());
    if (n <= 0 || static_cast<size_t>(n) >= target.size()) return p;
    target.resize(static_cast<size_t>(n));
    p = target[0] == '/' || p.find('/') == std::string::npos ? target : folderOf(p) + "/" + target;
  }
  // Links that name each other (or a chain longer than the kernel follows): open() fails
  // with ELOOP, as it does for torch.save; the rename replaced the last link with a file.
  fileError(path, "cannot write file: {}", std::strerror(ELOOP));
}

bool writtenInPlace(const std::string &path) { return isSpecial(path) || standardStream(path) >= 0; }

uint64_t physicalMemory() {
  long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : 0;
}

void checkFitsInMemory(const std::string &path, uint64_t bytes) {
  uint64_t memory = physicalMemory();
  if (memory > 0 && bytes > memory)
    fileError(path, "out of memory: the file ({:.1f} GiB) is larger than this machine's memory ({:.1f} GiB)",
              static_cast<double>(bytes) / (1 << 30), static_cast<double>(memory) / (1 << 30));
}

// A write-protected file is refused as open() would refuse it (torch.save): the rename
// needs only the folder's permission and would replace it.
static void refuseWriteProtected(const std::string &file, const std::string &userPath) {
  if (::access(file.c_str(), F_OK) == 0 && ::access(file.c_str(), W_OK) != 0)
    fileError(userPath, "cannot write file: {}", std::strerror(errno));
}

void checkWritable(const std::string &userPath) {
  if (standardStream(userPath) >= 0) return;
  if (isSpecial(userPath)) {  // (through any links: /dev/fd/63 of `--out >(gzip > f.gz)`)
    if (::access(userPath.c_str(), W_OK) != 0) fileError(userPath, "cannot write file: {}", std::strerror(errno));
    return;
  }
  std::string path = linkTarget(userPath);
  std::string dir = folderOf(path);
  // access() allows writing a regular file: `--save w.st/x` names a folder that is one.
  struct stat sb {};
  if (::stat(dir.c_str(), &sb) == 0 && !S_ISDIR(sb.st_mode))
    fileError(userPath, "cannot write file: {}", std::strerror(ENOTDIR));
  if (::access(dir.c_str(), W_OK) != 0) fileError(userPath, "cannot write file: {}", std::strerror(errno));
  if (path.size() - (path.find_last_of('/') + 1) > nameMax(dir))
    fileError(userPath, "cannot write file: {}", std::strerror(ENAMETOOLONG));
  if (::stat(path.c_str(), &sb) == 0 && S_ISDIR(sb.st_mode))
    fileError(userPath, "cannot write file: {}", std::strerror(EISDIR));
  refuseWriteProtected(path, userPath);
}

void writeFileAtomic(const std::string &path, std::string_view content) {
  if (int fd = standardStream(path); fd >= 0) {
    std::cout.flush();
    std::cerr.flush();
    writeAll(path, fd, content);
    return;
  }
  if (isSpecial(path)) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) fileError(path, "cannot write file: {}", std::strerror(errno));
    writeAll(path, fd, content);
    if (::close(fd) != 0) fileError(path, "cannot write file: {}", std::strerror(errno));
    return;
  }
  // Through a symbolic link, the file it names is replaced, not the link.
  std::string target = linkTarget(path);
  refuseWriteProtected(target, path);
  std::string tmp = tempPath(target);
  // A new file gets the mode open() gives (0666 less the umask), a replaced one keeps its
  // own (a private checkpoint stays private).
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) fileError(path, "cannot write file: {}", std::strerror(errno));
  struct stat old {};
  if (::stat(target.c_str(), &old) == 0 && S_ISREG(old.st_mode)) (void)::fchmod(fd, old.st_mode & 0777);
  try {
    writeAll(path, fd, content);
  } catch (const UserError &) {
    ::unlink(tmp.c_str());
    throw;
  }
  bool ok = ::fsync(fd) == 0;
  int err = errno;
  if (::close(fd) != 0 && ok) {
    ok = false;
    err = errno;
  }
  if (!ok) {
    ::unlink(tmp.c_str());
    fileError(path, "cannot write file: {}", std::strerror(err));
  }
  if (std::rename(tmp.c_str(), target.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    fileError(path, "cannot write file: {}", std::strerror(err));
  }
  removeStaleTemps(target);
}

}  // namespace gradc::rt
