// Diagnostics: source locations, user errors and internal errors.
//
// Two kinds of failure are kept apart (as Halide does with user_error / internal_error):
//  - UserError: the model, the data or a flag is wrong. It carries a place in a file and
//    is printed as `FILE:LINE:COL: error: MESSAGE`, then the source line and a caret.
//  - InternalError: gradc itself is wrong (a broken invariant). It is printed as
//    `gradc: internal error: ...` and asks for a bug report.
// Both are exceptions; the driver catches them at the top and returns exit status 1.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "support/Quote.h"

namespace gradc {

/// A place in a source file. `file` indexes the SourceManager; line and column count from 1
/// (columns count characters). A default Loc (file < 0) means "no place".
struct Loc {
  int32_t file = -1;
  int32_t line = 0;
  int32_t col = 0;
  bool valid() const { return file >= 0 && line > 0; }
};

/// Owns the text of every file read, so that diagnostics can quote the source line.
class SourceManager {
public:
  /// Registers a buffer under a display name; returns its file id.
  int addBuffer(std::string name, std::string text);
  /// Reads a file; throws UserError `PATH: error: cannot read file: REASON` when it cannot.
  int addFile(const std::string &path);
  const std::string &name(int file) const { return files_.at(file).name; }
  const std::string &text(int file) const { return files_.at(file).text; }
  /// The text of line `line` (1-based) of `file`, without its line break.
  std::string_view lineText(int file, int line) const;
  /// `NAME:LINE:COL` (or just `NAME` when the location has no line).
  std::string format(Loc loc) const;
  /// `NAME:LINE` (for comments in printed IR).
  std::string formatShort(Loc loc) const;

private:
  struct File {
    std::string name, text;
    std::vector<size_t> lineStarts;
  };
  std::vector<File> files_;
};

/// An error in the user's input (model, data, weights, flags).
class UserError : public std::runtime_error {
public:
  UserError(Loc loc, std::string msg) : std::runtime_error(keepNul(std::move(msg))), loc(loc) {}
  /// For errors about a whole file with no line: `FILE: error: MESSAGE`.
  UserError(std::string file, std::string msg)
      : std::runtime_error(keepNul(std::move(msg))), fileName(std::move(file)) {}
  /// For a place in a file that has no SourceManager entry (a data file):
  /// `FILE:LINE:COL: error: MESSAGE`, then `quote` (the line and caret that quoteLine of
  /// support/Quote.h renders, or nothing).
  UserError(std::string file, int line, int col, std::string msg, std::string quote = "")
      : std::runtime_error(keepNul(std::move(msg))), loc{-1, line, col}, fileName(std::move(file)),
        quote(std::move(quote)) {}
  Loc loc;
  std::string fileName;  // used when !loc.valid()
  std::string quote;     // the quoted line and caret of a data file's error

private:
  // what() is a C string, which a NUL byte would end: a message quoting a name read from a
  // file (a tensor named "W\0x" in a weights file) keeps the NUL as the escape \x00.
  // (Not inlined: GCC 12 warns of a maybe-uninitialized string where it is.)
  [[gnu::noinline]] static std::string keepNul(std::string msg) {
    for (size_t i = msg.find('\0'); i != std::string::npos; i = msg.find('\0', i + 4))
      msg.replace(i, 1, "\\x00");
    return msg;
  }
};

/// A bug in gradc. Never caused by user input.
class InternalError : public std::logic_error {
public:
  using std::logic_error::logic_error;
};

template <typename... Args>
[[noreturn]] void userError(Loc loc, fmt::format_string<Args...> f, Args &&...args) {
  throw UserError(loc, fmt::format(f, std::forward<Args>(args)...));
}

template <typename... Args>
[[noreturn]] void fileError(const std::string &file, fmt::format_string<Args...> f,
                            Args &&...args) {
  throw UserError(file, fmt::format(f, std::forward<Args>(args)...));
}

template <typename... Args>
[[noreturn]] void internalError(fmt::format_string<Args...> f, Args &&...args) {
  throw InternalError(fmt::format(f, std::forward<Args>(args)...));
}

#define GRADC_ASSERT(cond, ...)                                                             \
  do {                                                                                      \
    if (!(cond))                                                                            \
      ::gradc::internalError("{}:{}: assertion `{}` failed: {}", __FILE__, __LINE__, #cond, \
                             fmt::format(__VA_ARGS__));                                    \
  } while (0)

/// Renders an error (or warning) for the terminal: the one-line message, then the source
/// line and a caret under the column when the place is known.
std::string renderDiagnostic(const SourceManager &sm, Loc loc, std::string_view severity,
                             std::string_view msg);
/// The same for a UserError; `prefix` goes before its message (`rank 1 of 2: `).
std::string renderUserError(const SourceManager &sm, const UserError &e, std::string_view prefix = "");

/// One line of text for the terminal, ending in a line break: control characters (a newline,
/// an escape sequence in a file name or a flag's value) and bytes that are not UTF-8 are
/// written as escapes (`\n`, `\x1b`, `\xc2\x9b`), as in a quoted line (escapeText), so that
/// a message stays one line and leaves the terminal as it was.
inline std::string oneLine(std::string_view s) { return escapeText(s) + "\n"; }

/// `cannot read file: REASON`, the reason the errno `err` of a failed open or read (as
/// `cannot write file: ...` gives it); just `cannot read file` when err is 0.
inline std::string cannotRead(int err) {
  return err ? fmt::format("cannot read file: {}", std::strerror(err)) : "cannot read file";
}

/// Prints a warning to stderr at once (unless warnings are off).
void warn(const SourceManager &sm, Loc loc, std::string_view msg);
/// Turns warn() off or on again: the ranks but 0 of data-parallel training, which load the
/// same model, leave its warnings to rank 0.
void setWarnings(bool on);

}  // namespace gradc
