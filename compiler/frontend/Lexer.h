// The lexer: characters of a model file -> tokens, each with its file:line:col.
//
// Tokens are produced one at a time (the parser keeps a lookahead of two), so a 5 MB line never
// becomes millions of tokens in memory. The lexer also enforces the file rules of
// docs/language.md, "Lexical rules": UTF-8, no NUL bytes, non-ASCII characters only inside
// comments. Columns count characters; outside comments every character is one byte, so a
// token's column is its byte offset in the line plus one.
#pragma once

#include <string>

#include "support/Diagnostics.h"

namespace gradc {

enum class Tok {
  Eof, Ident, Number,
  // keywords
  KwModel, KwDim, KwInput, KwParam, KwDef, KwOutput, KwMetric, KwMinimize, KwWith, KwInt,
  KwTrue, KwFalse,
  // punctuation
  LParen, RParen, LBracket, RBracket, Comma, Colon, Assign,
  Plus, Minus, Star, Slash, At, Caret, Lt, Le, Gt, Ge, EqEq, Ne,
};

/// How a token kind is written in messages: `'('`, `name`, `end of file`.
const char *tokName(Tok t);

struct Token {
  Tok kind = Tok::Eof;
  std::string text;   // the spelling (identifiers, numbers, keywords)
  double number = 0;  // Number
  Loc loc;
  size_t begin = 0, end = 0;  // byte offsets in the file
};

class Lexer {
public:
  Lexer(const SourceManager &sm, int file);
  /// The next token; Eof at the end (and ever after). Throws UserError on a bad character.
  Token next();

private:
  [[noreturn]] void fail(size_t pos, const std::string &msg);
  Loc locAt(size_t pos) const;
  void skipComment();
  void checkUtf8(size_t &pos, bool inComment);

  const std::string &text_;
  int file_;
  size_t pos_ = 0;
  int line_ = 1;
  size_t lineStart_ = 0;
  bool inComment_ = false;
};

}  // namespace gradc
