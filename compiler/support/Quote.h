// Quoting a line of a file under an error: the line, then a caret under the column; and the
// escaping of text in a one-line message by the same rules (escapeText, which oneLine in
// Diagnostics.h uses). Shared by the model's diagnostics (Diagnostics.cpp) and the CSV reader
// (runtime/Csv.cpp), and header only, since the runtime library is built without the
// compiler's sources.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace gradc {

/// Whether a line can be shown on a terminal as it is: valid UTF-8 without control characters
/// (C0, DEL and C1) but tab (a binary file's bytes, or an escape sequence, would garble or
/// drive the terminal).
inline bool printableLine(std::string_view line) {
  for (size_t i = 0; i < line.size();) {
    unsigned char c = static_cast<unsigned char>(line[i]);
    if (c < 0x80) {
      if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
      ++i;
      continue;
    }
    // The length of the sequence its first byte begins; 0 for a byte that begins none (a
    // continuation byte, 0xC0 and 0xC1 (overlong forms), 0xF5 to 0xFF).
    size_t n = c >= 0xF5 ? 0 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    if (n == 0 || i + n > line.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(line[i + k]) & 0xC0) != 0x80) return false;
    unsigned char c1 = static_cast<unsigned char>(line[i + 1]);
    // Overlong forms, UTF-16 surrogates, code points past U+10FFFF, and the C1 control
    // characters U+0080 to U+009F (U+009B is a terminal's CSI, as ESC [ is).
    if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 >= 0xA0) || (c == 0xF0 && c1 < 0x90) ||
        (c == 0xF4 && c1 >= 0x90) || (c == 0xC2 && c1 < 0xA0))
      return false;
    i += n;
  }
  return true;
}

namespace detail {

inline bool continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// A character of a quoted line: a byte that does not continue a UTF-8 sequence and the
// continuation bytes after it (the characters that columns count). One that is not
// printable is written as escapes; `width` is how many columns it takes on the terminal.
struct Shown {
  std::string text;
  size_t width;
  bool tab;
};

inline Shown shown(std::string_view ch) {
  if (printableLine(ch)) return {std::string(ch), 1, ch == "\t"};
  std::string out;
  for (char c : ch) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (u < 0x20 || u >= 0x7f) out += fmt::format("\\x{:02x}", u);
    else out += c;
  }
  return {out, out.size(), false};
}

}  // namespace detail

/// `text` as a terminal can show it, by the rules of a quoted line: control characters (C0
/// but tab, DEL and C1) and bytes that are not UTF-8 are written as escapes (`\n`, `\r`,
/// `\x1b`, `\xc2\x9b`, `\xe9`); valid UTF-8 otherwise stays as it is. For a file name, a
/// flag's value or a cell of a CSV file in a one-line message.
inline std::string escapeText(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size();) {
    size_t e = i + 1;
    while (e < text.size() && detail::continuation(text[e])) ++e;
    out += detail::shown(text.substr(i, e - i)).text;
    i = e;
  }
  return out;
}

/// The two lines quoted under an error: `line` and a caret under the character that begins at
/// byte `at` (the line's end when `at` is past it), each ending in a line break. Characters
/// that a terminal cannot show as they are (control characters but tab, bytes that are not
/// UTF-8) are written as escapes (`\r`, `\x1b`, `\xe9`), the caret under the escape; a tab
/// stays a tab in both lines, so that the caret lines up. A line wider than `width` columns is
/// shown as a window of at most `width` columns around the caret, `...` marking what is left
/// out on either side (a CSV row of 784 values).
inline std::string quoteLineAt(std::string_view line, size_t at, size_t width = SIZE_MAX) {
  using detail::continuation;
  using detail::shown;
  using detail::Shown;
  at = std::min(at, line.size());
  // A character ends at the caret's byte too (a stray UTF-8 continuation byte there).
  auto next = [&](size_t i) {
    do ++i; while (i < line.size() && i != at && continuation(line[i]));
    return i;
  };
  auto previous = [&](size_t i) {
    do --i; while (i > 0 && continuation(line[i]));
    return i;
  };
  // The window [begin, end): grown from the caret's character one character at a time on
  // either side while it fits in `width` columns.
  size_t begin = at, end = at < line.size() ? next(at) : at;
  size_t used = at < line.size() ? shown(line.substr(at, end - at)).width : 1;
  for (bool left = begin > 0, right = end < line.size(); left || right;) {
    if (left) {
      size_t b = previous(begin), w = shown(line.substr(b, begin - b)).width;
      left = used + w <= width;
      if (left) begin = b, used += w, left = begin > 0;
    }
    if (right) {
      size_t e = next(end), w = shown(line.substr(end, e - end)).width;
      right = used + w <= width;
      if (right) end = e, used += w, right = end < line.size();
    }
  }
  std::string text = begin > 0 ? "..." : "", caret = begin > 0 ? "   " : "";
  for (size_t i = begin; i < end;) {
    size_t e = next(i);
    Shown s = shown(line.substr(i, e - i));
    text += s.text;
    if (i < at) caret += s.tab ? std::string("\t") : std::string(s.width, ' ');
    i = e;
  }
  if (end < line.size()) text += "...";
  return text + "\n" + caret + "^\n";
}

/// The same with the caret under character column `col` (from 1; one past the last
/// character is the end of the line), as a model's Loc gives it.
inline std::string quoteLine(std::string_view line, int col, size_t width = SIZE_MAX) {
  // The byte where the caret's character begins (the end of the line past the last one).
  size_t at = 0;
  for (int c = 1; c < col && at < line.size(); ++c)
    do ++at; while (at < line.size() && detail::continuation(line[at]));
  return quoteLineAt(line, at, width);
}

}  // namespace gradc
