// The CSV reader (docs/language.md, "Data"). The whole file is read into memory and scanned
// once; numbers are parsed with std::from_chars, which rounds to the nearest float exactly.
// Every problem is reported at its place: `FILE:LINE:COL: error: ...`, where LINE counts
// physical lines (blank ones too) and COL counts characters (UTF-8) from 1, after a leading
// BOM; the row (a window of it around the column, when it is long) and a caret follow, as under
// a model's errors.
#include "runtime/Csv.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <new>

#include <sys/stat.h>

#include "runtime/Files.h"
#include "support/Diagnostics.h"
#include "support/Quote.h"

namespace gradc::rt {

namespace {

std::string readWholeFile(const std::string &path) {
  errno = 0;
  std::unique_ptr<FILE, int (*)(FILE *)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) fileError(path, "{}", cannotRead(errno));
  std::string text;
  // A regular file is read in one piece into a string of its size: grown chunk by chunk, the
  // string of a 39 MB file was copied twice over in reallocations (a fifth of loading it).
  // What is left (a pipe, or a file that grew meanwhile) is read in chunks.
  struct stat st;
  bool known = fstat(fileno(f.get()), &st) == 0;
  if (known && S_ISDIR(st.st_mode)) fileError(path, "is a directory, not a CSV file");
  if (known && S_ISREG(st.st_mode) && st.st_size > 0) {
    checkFitsInMemory(path, static_cast<uint64_t>(st.st_size));
    text.resize(static_cast<size_t>(st.st_size));
    text.resize(std::fread(text.data(), 1, text.size(), f.get()));
  }
  // A NUL byte there ends the reading: a device such as /dev/zero is not read forever.
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f.get())) > 0) {
    if (const void *nul = std::memchr(buf, 0, n))
      fileError(path, "not a text file: byte {} is NUL",
                text.size() + static_cast<size_t>(static_cast<const char *>(nul) - buf) + 1);
    text.append(buf, n);
  }
  if (std::ferror(f.get())) fileError(path, "{}", cannotRead(errno));
  return text;
}

// The error's quoted line shows at most this many characters of a row (784 values of a
// digits row are thousands), around the column.
constexpr size_t kQuoteWidth = 80;

bool isSpace(char c) { return c == ' ' || c == '\t'; }

/// The value of a number [b, e) that from_chars found out of range (it then leaves its result
/// unset): strtod's, which is ±HUGE_VAL for a magnitude too large and the nearest subnormal or
/// ±0 for one too small.
double outOfRange(const char *b, const char *e) {
  std::string s(b, e);
  return std::strtod(s.c_str(), nullptr);
}

/// Parses a whole cell [b, e) as a double. A leading '+' is allowed. Returns false when the
/// cell is not a number; `out` may then be anything. `outside`, when given, tells whether the
/// number was beyond double's range (then ±inf, or a subnormal or ±0 for one too small).
/// A cell of 1 to 9 decimal digits (a pixel value, a label: most cells of real data sets),
/// whose value is exact in a double and rounds to nearest in one conversion to float, as
/// from_chars would round it.
bool smallWhole(const char *b, const char *e, uint32_t &out) {
  if (b == e || e - b > 9) return false;
  uint32_t v = 0;
  for (const char *c = b; c < e; ++c) {
    unsigned digit = static_cast<unsigned char>(*c) - unsigned{'0'};
    if (digit > 9) return false;
    v = v * 10 + digit;
  }
  out = v;
  return true;
}

bool parseDouble(const char *b, const char *e, double &out, bool *outside = nullptr) {
  if (b < e && *b == '+') ++b;
  if (b == e) return false;
  if (uint32_t v; smallWhole(b, e, v)) {
    out = static_cast<double>(v);
    if (outside) *outside = false;
    return true;
  }
  auto r = std::from_chars(b, e, out);
  if (r.ptr != e) return false;
  if (outside) *outside = r.ec == std::errc::result_out_of_range;
  if (r.ec == std::errc::result_out_of_range) out = outOfRange(b, e);
  else if (r.ec != std::errc()) return false;
  return true;
}

/// The same as a float, rounded to nearest: a magnitude beyond float's range becomes ±inf
/// (reported as too large), one below it a subnormal or ±0.
bool parseFloat(const char *b, const char *e, float &out) {
  if (b < e && *b == '+') ++b;
  if (b == e) return false;
  if (uint32_t v; smallWhole(b, e, v)) {
    out = static_cast<float>(v);
    return true;
  }
  auto r = std::from_chars(b, e, out);
  if (r.ptr != e) return false;
  if (r.ec == std::errc::result_out_of_range) {
    double d;
    if (!parseDouble(b, e, d)) return false;
    out = std::fabs(d) < 1.0 ? static_cast<float>(d) : std::copysign(std::numeric_limits<float>::infinity(), d);
    return true;
  }
  return r.ec == std::errc();
}

class Reader {
public:
  Reader(const std::string &path, const std::vector<InputSpec> &specs, bool f64)
      : path_(path), specs_(specs), f64_(f64) {}

  Dataset read() {
    text_ = readWholeFile(path_);
    const char *p = text_.data();
    const char *end = p + text_.size();
    if (end - p >= 3 && std::memcmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3;

    int64_t expected = 0;
    for (const InputSpec &s : specs_) expected += s.width;
    if (expected <= 0) fileError(path_, "the model takes no data from a file");
    // The cell vectors grow with the rows (a model's width says nothing of the file's), and
    // the columns reserve no more values than the file's bytes can hold (two bytes a value).
    int64_t maxValues = static_cast<int64_t>(text_.size() / 2) + 1;

    Dataset ds;
    ds.path = path_;
    int64_t lineCount = std::count(p, end, '\n') + 1;
    for (const InputSpec &s : specs_) {
      Column c;
      c.name = s.name;
      c.isInt = s.isInt;
      c.width = s.width;
      size_t values = static_cast<size_t>(std::min(lineCount * s.width, maxValues));
      if (s.isInt) c.i.reserve(values);
      else if (f64_) c.d.reserve(values);
      else c.f.reserve(values);
      ds.inputs.push_back(std::move(c));
    }

    ds.lines.reserve(static_cast<size_t>(lineCount));
    bool first = true, sawHeader = false;
    int line = 0;
    while (p < end) {
      ++line;
      const char *nl = static_cast<const char *>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
      const char *lineEnd = nl ? nl : end;
      const char *next = nl ? nl + 1 : end;
      if (lineEnd > p && lineEnd[-1] == '\r') --lineEnd;
      lineBegin_ = p;
      lineEnd_ = lineEnd;
      const char *cr = std::find(p, lineEnd, '\r');
      if (cr != lineEnd)
        errorAt(line, cr, "a carriage return (CR) inside a line; lines end with LF or CR LF");
      const char *q = p;
      while (q < lineEnd && isSpace(*q)) ++q;
      if (q == lineEnd) {
        p = next;
        continue;
      }
      if (first) {
        first = false;
        if (isHeader(p, lineEnd)) {
          sawHeader = true;
          p = next;
          continue;
        }
      }
      if (!fastRow(ds, p, lineEnd)) parseRow(ds, line, p, lineEnd, expected);
      ++ds.rows;
      ds.lines.push_back(line);
      p = next;
    }
    if (ds.rows == 0)
      fileError(path_, "{}", sawHeader ? "no data rows (the file holds a header only)"
                                       : "empty file (no data rows)");
    return ds;
  }

private:
  /// The character column (from 1) of byte `at` of the current line.
  int column(const char *at) const {
    int col = 1;
    for (const char *c = lineBegin_; c < at; ++c)
      if ((static_cast<unsigned char>(*c) & 0xC0) != 0x80) ++col;
    return col;
  }

  template <typename... Args>
  [[noreturn]] void errorAt(int line, const char *at, fmt::format_string<Args...> f,
                            Args &&...args) const {
    throw UserError(path_, line, column(at), fmt::format(f, std::forward<Args>(args)...),
                    quoteLineAt(std::string_view(lineBegin_, static_cast<size_t>(lineEnd_ - lineBegin_)),
                                static_cast<size_t>(at - lineBegin_), kQuoteWidth));
  }

  /// Splits [b, e) at commas into trimmed cells; returns the number of cells found, stopping
  /// after max + 1 of them.
  int64_t split(const char *b, const char *e, int64_t max) {
    int64_t n = 0;
    cellBegin_.clear();
    cellEnd_.clear();
    const char *c = b;
    while (true) {
      // Cells are short (a few bytes): a plain scan beats a call to memchr per cell.
      const char *comma = c;
      while (comma < e && *comma != ',') ++comma;
      const char *cellEnd = comma;
      if (comma == e) comma = nullptr;
      const char *s = c, *t = cellEnd;
      while (s < t && isSpace(*s)) ++s;
      while (t > s && isSpace(t[-1])) --t;
      if (n <= max) {
        cellBegin_.push_back(s);
        cellEnd_.push_back(t);
      }
      ++n;
      if (!comma) return n;
      if (n > max) return n + std::count(comma + 1, e, ',') + 1;
      c = comma + 1;
    }
  }

  /// True when the first line is a header: one of its cells is text, neither empty nor a
  /// number. A line of numbers with an empty cell or a trailing comma is a data row, and its
  /// error is reported, rather than the row being skipped as a header.
  bool isHeader(const char *b, const char *e) {
    int64_t n = split(b, e, std::numeric_limits<int64_t>::max() - 1);
    for (size_t k = 0; k < static_cast<size_t>(n); ++k) {
      double d;
      if (cellBegin_[k] < cellEnd_[k] && !parseDouble(cellBegin_[k], cellEnd_[k], d)) return true;
    }
    return false;
  }

  /// The common row in one pass: exactly the expected cells, each a number parseValue or
  /// parseLabel would take as it is. Returns false, keeping nothing of the row, at anything
  /// else (an error to report at its place, a label's other spelling): parseRow reads it then.
  bool fastRow(Dataset &ds, const char *b, const char *e) {
    sizes_.clear();
    for (const Column &col : ds.inputs) sizes_.push_back(col.isInt ? col.i.size() : f64_ ? col.d.size() : col.f.size());
    const char *c = b;
    bool more = true;  // a cell starts at c
    for (size_t s = 0; s < specs_.size(); ++s) {
      const InputSpec &spec = specs_[s];
      Column &col = ds.inputs[s];
      for (int64_t j = 0; j < spec.width; ++j) {
        if (!more) return undo(ds);
        const char *cellEnd = c;
        while (cellEnd < e && *cellEnd != ',') ++cellEnd;
        const char *x = c, *y = cellEnd;
        while (x < y && isSpace(*x)) ++x;
        while (y > x && isSpace(y[-1])) --y;
        if (spec.isInt) {
          uint32_t v;
          if (!smallWhole(x, y, v) || (spec.classes > 0 && v >= static_cast<uint64_t>(spec.classes)))
            return undo(ds);
          col.i.push_back(static_cast<int32_t>(v));
        } else if (f64_) {
          double v;
          bool outside = false;
          if (x == y || !parseDouble(x, y, v, &outside) || outside || !std::isfinite(v)) return undo(ds);
          col.d.push_back(v);
        } else {
          float v;
          if (x == y || !parseFloat(x, y, v) || !std::isfinite(v)) return undo(ds);
          col.f.push_back(v);
        }
        more = cellEnd < e;
        if (more) c = cellEnd + 1;
      }
    }
    return more ? undo(ds) : true;
  }

  bool undo(Dataset &ds) {
    for (size_t s = 0; s < ds.inputs.size(); ++s) {
      Column &col = ds.inputs[s];
      if (col.isInt) col.i.resize(sizes_[s]);
      else if (f64_) col.d.resize(sizes_[s]);
      else col.f.resize(sizes_[s]);
    }
    return false;
  }

  void parseRow(Dataset &ds, int line, const char *b, const char *e, int64_t expected) {
    int64_t n = split(b, e, expected);
    if (n < expected) {
      const char *at = e;
      while (at > b && isSpace(at[-1])) --at;
      errorAt(line, at, "expected {} value{}, found {}", expected, expected == 1 ? "" : "s", n);
    }
    if (n > expected)
      errorAt(line, cellBegin_[static_cast<size_t>(expected)], "expected {} value{}, found {}",
              expected, expected == 1 ? "" : "s", n);
    size_t k = 0;
    for (size_t s = 0; s < specs_.size(); ++s) {
      const InputSpec &spec = specs_[s];
      Column &col = ds.inputs[s];
      for (int64_t j = 0; j < spec.width; ++j, ++k) {
        const char *cb = cellBegin_[k], *ce = cellEnd_[k];
        if (cb == ce) errorAt(line, cb, "missing value (column {} of {} is empty)", k + 1, expected);
        if (spec.isInt) col.i.push_back(parseLabel(line, cb, ce, spec));
        else if (f64_) col.d.push_back(parseValue64(line, cb, ce));
        else col.f.push_back(parseValue(line, cb, ce));
      }
    }
  }

  /// The error of a cell that parsed to inf or NaN: a number written with digits (1e39,
  /// 1e400) is too large for `type`; inf and nan are spelled out.
  [[noreturn]] void notFinite(int line, const char *b, const char *e, const char *type) const {
    bool big = std::any_of(b, e, [](char c) { return c >= '0' && c <= '9'; }) &&
               std::none_of(b, e, [](char c) { return c == 'n' || c == 'N'; });
    if (big) errorAt(line, b, "'{}' is too large for a {}", cellText(b, e), type);
    errorAt(line, b, "'{}' is not a finite number", cellText(b, e));
  }

  float parseValue(int line, const char *b, const char *e) const {
    float v;
    if (!parseFloat(b, e, v)) errorAt(line, b, "'{}' is not a number", cellText(b, e));
    if (!std::isfinite(v)) notFinite(line, b, e, "float");
    return v;
  }

  double parseValue64(int line, const char *b, const char *e) const {
    double v;
    if (!parseDouble(b, e, v)) errorAt(line, b, "'{}' is not a number", cellText(b, e));
    // 1e-400 rounds to 0 (or a subnormal), as it rounds to a float; 1e400 is too large.
    if (!std::isfinite(v)) notFinite(line, b, e, "double");
    return v;
  }

  int32_t parseLabel(int line, const char *b, const char *e, const InputSpec &spec) const {
    double d;
    bool outside = false;
    if (!parseDouble(b, e, d, &outside))
      errorAt(line, b, "label '{}' of '{}' is not a number", cellText(b, e), spec.name);
    // 1e-400 is no whole number, although it rounds to 0; 1e999, beyond double's range, is
    // out of range as 1e30 is (the number is whole, only too large), not "not whole".
    bool huge = outside && std::isinf(d);
    if (!huge && (outside || !std::isfinite(d) || d != std::floor(d)))
      errorAt(line, b, "label {} of '{}' is not a whole number", cellText(b, e), spec.name);
    if (spec.classes > 0 && (d < 0 || d >= static_cast<double>(spec.classes)))
      errorAt(line, b, "label {} of '{}' is outside the {} classes 0..{}", cellText(b, e),
              spec.name, spec.classes, spec.classes - 1);
    if (d < std::numeric_limits<int32_t>::min() || d > std::numeric_limits<int32_t>::max())
      errorAt(line, b, "label {} of '{}' is out of range", cellText(b, e), spec.name);
    return static_cast<int32_t>(d);
  }

  /// The cell as it can be quoted in a one-line message: at most 40 characters, control
  /// characters and bytes that are not UTF-8 escaped as in the quoted row (`\x1b`).
  static std::string cellText(const char *b, const char *e) {
    auto starts = [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; };
    if (std::count_if(b, e, starts) <= 40) return escapeText(std::string_view(b, static_cast<size_t>(e - b)));
    // The first 37 characters (each a byte that starts one and the bytes that continue it).
    const char *c = b;
    for (int chars = 0; c < e && !(starts(*c) && chars++ == 37); ++c) {}
    return escapeText(std::string_view(b, static_cast<size_t>(c - b))) + "...";
  }

  const std::string &path_;
  const std::vector<InputSpec> &specs_;
  bool f64_;
  std::string text_;
  const char *lineBegin_ = nullptr, *lineEnd_ = nullptr;
  std::vector<const char *> cellBegin_, cellEnd_;
  std::vector<size_t> sizes_;
};

}  // namespace

Dataset readCsv(const std::string &path, const std::vector<InputSpec> &specs, bool f64) {
  try {
    return Reader(path, specs, f64).read();
  } catch (const std::bad_alloc &) {
    fileError(path, "out of memory: the file and its values do not fit in this machine's memory");
  }
}

}  // namespace gradc::rt
