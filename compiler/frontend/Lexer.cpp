// The lexer (see Lexer.h).
#include "frontend/Lexer.h"

#include <cmath>
#include <algorithm>
#include <cstdlib>
#include <string_view>

namespace gradc {

const char *tokName(Tok t) {
  switch (t) {
  case Tok::Eof: return "end of file";
  case Tok::Ident: return "a name";
  case Tok::Number: return "a number";
  case Tok::KwModel: return "'model'";
  case Tok::KwDim: return "'dim'";
  case Tok::KwInput: return "'input'";
  case Tok::KwParam: return "'param'";
  case Tok::KwDef: return "'def'";
  case Tok::KwOutput: return "'output'";
  case Tok::KwMetric: return "'metric'";
  case Tok::KwMinimize: return "'minimize'";
  case Tok::KwWith: return "'with'";
  case Tok::KwInt: return "'int'";
  case Tok::KwTrue: return "'true'";
  case Tok::KwFalse: return "'false'";
  case Tok::LParen: return "'('";
  case Tok::RParen: return "')'";
  case Tok::LBracket: return "'['";
  case Tok::RBracket: return "']'";
  case Tok::Comma: return "','";
  case Tok::Colon: return "':'";
  case Tok::Assign: return "'='";
  case Tok::Plus: return "'+'";
  case Tok::Minus: return "'-'";
  case Tok::Star: return "'*'";
  case Tok::Slash: return "'/'";
  case Tok::At: return "'@'";
  case Tok::Caret: return "'^'";
  case Tok::Lt: return "'<'";
  case Tok::Le: return "'<='";
  case Tok::Gt: return "'>'";
  case Tok::Ge: return "'>='";
  case Tok::EqEq: return "'=='";
  case Tok::Ne: return "'!='";
  }
  return "?";
}

namespace {
bool isIdentStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isIdentChar(char c) { return isIdentStart(c) || isDigit(c); }
// A number quoted in a message: its first 40 characters, then `...` when it is longer.
std::string shortened(const std::string &text) {
  return text.size() <= 40 ? text : text.substr(0, 40) + "...";
}

Tok keyword(std::string_view s) {
  static const std::pair<std::string_view, Tok> kws[] = {
      {"model", Tok::KwModel},   {"dim", Tok::KwDim},       {"input", Tok::KwInput},
      {"param", Tok::KwParam},   {"def", Tok::KwDef},       {"output", Tok::KwOutput},
      {"metric", Tok::KwMetric}, {"minimize", Tok::KwMinimize}, {"with", Tok::KwWith},
      {"int", Tok::KwInt},       {"true", Tok::KwTrue},     {"false", Tok::KwFalse},
  };
  for (auto &[k, t] : kws)
    if (k == s) return t;
  return Tok::Ident;
}
}  // namespace

Lexer::Lexer(const SourceManager &sm, int file) : text_(sm.text(file)), file_(file) {
  // A UTF-8 byte order mark at the very start is not part of the text.
  if (text_.compare(0, 3, "\xEF\xBB\xBF") == 0) pos_ = 3, lineStart_ = 3;
}

Loc Lexer::locAt(size_t pos) const {
  // Outside comments every character is one ASCII byte, and a comment ends its line, so the
  // column is the byte offset. Only inside a comment do UTF-8 continuation bytes need skipping.
  int col = 1;
  if (inComment_) {
    for (size_t i = lineStart_; i < pos && i < text_.size(); ++i)
      if ((static_cast<unsigned char>(text_[i]) & 0xC0) != 0x80) ++col;
  } else {
    col = static_cast<int>(std::min<size_t>(pos - lineStart_ + 1, 0x7fffffff));
  }
  return Loc{file_, line_, col};
}

void Lexer::fail(size_t pos, const std::string &msg) { throw UserError(locAt(pos), msg); }

// Checks the UTF-8 sequence starting at a byte >= 0x80 and moves past it.
void Lexer::checkUtf8(size_t &pos, bool inComment) {
  auto b = [&](size_t i) { return static_cast<unsigned char>(text_[i]); };
  unsigned char c = b(pos);
  int len = 0;
  uint32_t cp = 0;
  if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
  else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
  else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
  else fail(pos, fmt::format("invalid UTF-8 byte 0x{:02x}", c));
  for (int i = 1; i < len; ++i) {
    if (pos + static_cast<size_t>(i) >= text_.size())
      fail(pos, "invalid UTF-8: truncated sequence at the end of the file");
    unsigned char d = b(pos + static_cast<size_t>(i));
    if ((d & 0xC0) != 0x80) fail(pos, fmt::format("invalid UTF-8 sequence starting with byte 0x{:02x}", c));
    cp = (cp << 6) | (d & 0x3F);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
      (cp >= 0xD800 && cp <= 0xDFFF))
    fail(pos, fmt::format("invalid UTF-8 sequence starting with byte 0x{:02x}", c));
  if (!inComment)
    fail(pos, fmt::format("non-ASCII character U+{:04X} outside a comment; names and operators are ASCII", cp));
  pos += static_cast<size_t>(len);
}

void Lexer::skipComment() {
  inComment_ = true;
  while (pos_ < text_.size() && text_[pos_] != '\n') {
    unsigned char c = static_cast<unsigned char>(text_[pos_]);
    if (c == 0) fail(pos_, "NUL byte in the source file");
    if (c >= 0x80) checkUtf8(pos_, true);
    else ++pos_;
  }
  inComment_ = false;
}

Token Lexer::next() {
  // White space and comments.
  for (;;) {
    if (pos_ >= text_.size()) break;
    char c = text_[pos_];
    if (c == '\n') {
      ++pos_;
      ++line_;
      lineStart_ = pos_;
    } else if (c == ' ' || c == '\t' || c == '\r') {
      ++pos_;
    } else if (c == '#') {
      skipComment();
    } else {
      break;
    }
  }
  Token t;
  t.begin = pos_;
  t.loc = locAt(pos_);
  if (pos_ >= text_.size()) {
    t.kind = Tok::Eof;
    t.end = pos_;
    return t;
  }
  char c = text_[pos_];
  auto peek = [&](size_t k) { return pos_ + k < text_.size() ? text_[pos_ + k] : '\0'; };
  auto single = [&](Tok k, size_t len) {
    t.kind = k;
    pos_ += len;
  };
  if (isIdentStart(c)) {
    size_t start = pos_;
    while (pos_ < text_.size() && isIdentChar(text_[pos_])) ++pos_;
    t.text = text_.substr(start, pos_ - start);
    t.kind = keyword(t.text);
  } else if (isDigit(c) || (c == '.' && isDigit(peek(1)))) {
    // number = digits ["." digits*] [exp] | "." digits+ [exp];  exp = ("e"|"E") ["+"|"-"] digits+
    size_t start = pos_;
    while (pos_ < text_.size() && isDigit(text_[pos_])) ++pos_;
    if (pos_ < text_.size() && text_[pos_] == '.') {
      ++pos_;
      while (pos_ < text_.size() && isDigit(text_[pos_])) ++pos_;
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      size_t e = pos_ + 1;
      if (e < text_.size() && (text_[e] == '+' || text_[e] == '-')) ++e;
      if (e < text_.size() && isDigit(text_[e])) {
        pos_ = e;
        while (pos_ < text_.size() && isDigit(text_[pos_])) ++pos_;
      } else {
        fail(start, "malformed number: an exponent needs digits");
      }
    }
    if (pos_ < text_.size() && (isIdentChar(text_[pos_]) || text_[pos_] == '.')) {
      size_t e = pos_;
      while (e < text_.size() && (isIdentChar(text_[e]) || text_[e] == '.')) ++e;
      fail(start, fmt::format("malformed number `{}`", shortened(text_.substr(start, e - start))));
    }
    t.text = text_.substr(start, pos_ - start);
    t.kind = Tok::Number;
    t.number = std::strtod(t.text.c_str(), nullptr);
    // Every number of a model is a float32 or smaller (an int32, a dim), so one that float32
    // cannot hold is an error here rather than an infinity later (strtof rounds the text
    // itself, as a cast of the double could not be trusted to). One that underflows to a
    // subnormal or to 0 is left as it rounds, as PyTorch does.
    if (!std::isfinite(t.number) || std::isinf(std::strtof(t.text.c_str(), nullptr)))
      fail(start, fmt::format("number `{}` is outside float32's range (its largest magnitude is 3.4028235e38)",
                              shortened(t.text)));
  } else {
    switch (c) {
    case '(': single(Tok::LParen, 1); break;
    case ')': single(Tok::RParen, 1); break;
    case '[': single(Tok::LBracket, 1); break;
    case ']': single(Tok::RBracket, 1); break;
    case ',': single(Tok::Comma, 1); break;
    case ':': single(Tok::Colon, 1); break;
    case '+': single(Tok::Plus, 1); break;
    case '-': single(Tok::Minus, 1); break;
    case '*': single(Tok::Star, 1); break;
    case '/': single(Tok::Slash, 1); break;
    case '@': single(Tok::At, 1); break;
    case '^': single(Tok::Caret, 1); break;
    case '<': peek(1) == '=' ? single(Tok::Le, 2) : single(Tok::Lt, 1); break;
    case '>': peek(1) == '=' ? single(Tok::Ge, 2) : single(Tok::Gt, 1); break;
    case '=': peek(1) == '=' ? single(Tok::EqEq, 2) : single(Tok::Assign, 1); break;
    case '!':
      if (peek(1) != '=') fail(pos_, "unexpected character '!'; did you mean '!='?");
      single(Tok::Ne, 2);
      break;
    default: {
      unsigned char u = static_cast<unsigned char>(c);
      if (u == 0) fail(pos_, "NUL byte in the source file");
      if (u >= 0x80) {
        size_t p = pos_;
        checkUtf8(p, false);
      }
      if (u < 0x20 || u == 0x7F) fail(pos_, fmt::format("unexpected control character 0x{:02x}", u));
      if (c == '.' && isIdentStart(peek(1)))
        fail(pos_, "unexpected character '.': there are no methods or attributes; call the built-in "
                   "(`z.sum()` is sum(z), `W.T` is transpose(W))");
      fail(pos_, fmt::format("unexpected character '{}'", c));
    }
    }
  }
  t.end = pos_;
  return t;
}

}  // namespace gradc
