#include "support/Diagnostics.h"
#include "support/Quote.h"

#include <cerrno>
#include <fstream>
#include <iostream>
#include <string_view>

namespace gradc {

int SourceManager::addBuffer(std::string name, std::string text) {
  File f{std::move(name), std::move(text), {0}};
  for (size_t i = 0; i < f.text.size(); ++i)
    if (f.text[i] == '\n') f.lineStarts.push_back(i + 1);
  files_.push_back(std::move(f));
  return static_cast<int>(files_.size()) - 1;
}

int SourceManager::addFile(const std::string &path) {
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) fileError(path, "{}", cannotRead(errno));
  // Read up to the first NUL byte, which the lexer reports at its place: a device such as
  // /dev/zero is not read forever.
  std::string text;
  char buf[1 << 16];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    std::string_view chunk(buf, static_cast<size_t>(in.gcount()));
    size_t nul = chunk.find('\0');
    text.append(chunk.substr(0, nul == std::string_view::npos ? chunk.size() : nul + 1));
    if (nul != std::string_view::npos) break;
  }
  if (in.bad()) fileError(path, "{}", cannotRead(errno));
  return addBuffer(path, std::move(text));
}

std::string_view SourceManager::lineText(int file, int line) const {
  const File &f = files_.at(file);
  if (line < 1 || static_cast<size_t>(line) > f.lineStarts.size()) return {};
  size_t begin = f.lineStarts[line - 1];
  size_t end = f.text.find('\n', begin);
  if (end == std::string::npos) end = f.text.size();
  if (end > begin && f.text[end - 1] == '\r') --end;
  return std::string_view(f.text).substr(begin, end - begin);
}

std::string SourceManager::format(Loc loc) const {
  if (loc.file < 0) return "<unknown>";
  if (loc.line <= 0) return name(loc.file);
  return fmt::format("{}:{}:{}", name(loc.file), loc.line, loc.col);
}

std::string SourceManager::formatShort(Loc loc) const {
  if (loc.file < 0) return "";
  std::string n = name(loc.file);
  if (size_t slash = n.rfind('/'); slash != std::string::npos) n = n.substr(slash + 1);
  if (loc.line <= 0) return n;
  return fmt::format("{}:{}", n, loc.line);
}

std::string renderDiagnostic(const SourceManager &sm, Loc loc, std::string_view severity,
                             std::string_view msg) {
  std::string out = oneLine(fmt::format("{}: {}: {}", sm.format(loc), severity, msg));
  if (loc.valid()) {
    std::string_view line = sm.lineText(loc.file, loc.line);
    // As a CSV row is quoted: characters a terminal cannot show are escaped, and a very long
    // line (a 5 MB line) is shown as a window of 80 columns around the caret.
    out += quoteLine(line, loc.col, line.size() <= 1000 ? SIZE_MAX : 80);
  }
  return out;
}

std::string renderUserError(const SourceManager &sm, const UserError &e, std::string_view prefix) {
  std::string msg = fmt::format("{}{}", prefix, e.what());
  if (e.loc.valid()) return renderDiagnostic(sm, e.loc, "error", msg);
  if (!e.fileName.empty() && e.loc.line > 0)
    return oneLine(fmt::format("{}:{}:{}: error: {}", e.fileName, e.loc.line, e.loc.col, msg)) + e.quote;
  if (!e.fileName.empty()) return oneLine(fmt::format("{}: error: {}", e.fileName, msg));
  if (e.loc.file >= 0) return oneLine(fmt::format("{}: error: {}", sm.name(e.loc.file), msg));
  return oneLine(fmt::format("gradc: error: {}", msg));
}

namespace {
bool gWarnings = true;
}  // namespace

void warn(const SourceManager &sm, Loc loc, std::string_view msg) {
  if (gWarnings) std::cerr << renderDiagnostic(sm, loc, "warning", msg);
}

void setWarnings(bool on) { gWarnings = on; }

}  // namespace gradc
