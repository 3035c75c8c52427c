#include "ir/Printer.h"

#include <bit>
#include <charconv>
#include <cmath>
#include <map>
#include <set>

#include "support/Quote.h"

namespace gradc::ir {

std::string formatNumber(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}

// Value names: arguments by their name; the last node bound to a source name by that
// name (a tensor constant too: the zero gradient `d.U`); everything else by its id.
// Collisions get a numeric suffix.
std::vector<std::string> valueNames(const Function &f) {
  std::vector<std::string> names(static_cast<size_t>(f.size()));
  std::map<std::string, ValueId> lastWithName;
  for (ValueId v = 0; v < f.size(); ++v) {
    const Node &n = f.node(v);
    bool tensorConst = n.op == Op::Const && !n.shape.empty();
    if (!n.srcName.empty() && (!isLeaf(n.op) || tensorConst)) lastWithName[n.srcName] = v;
  }
  std::set<std::string> used;
  auto claim = [&](std::string base) {
    std::string name = base;
    for (int i = 1; used.count(name); ++i) name = fmt::format("{}.{}", base, i);
    used.insert(name);
    return name;
  };
  // Arguments first so that they keep their plain names.
  for (ValueId v = 0; v < f.size(); ++v) {
    const Node &n = f.node(v);
    if (isLeaf(n.op) && n.op != Op::Const && n.op != Op::DimSize) names[static_cast<size_t>(v)] = claim(n.name);
  }
  for (auto &[name, v] : lastWithName) names[static_cast<size_t>(v)] = claim(name);
  for (ValueId v = 0; v < f.size(); ++v)
    if (names[static_cast<size_t>(v)].empty()) names[static_cast<size_t>(v)] = claim(std::to_string(v));
  return names;
}

namespace {
std::string axesList(uint32_t axes) {
  std::string out = "[";
  bool first = true;
  for (uint32_t a = axes; a; a &= a - 1) {
    if (!first) out += ",";
    out += std::to_string(std::countr_zero(a));
    first = false;
  }
  return out + "]";
}
}  // namespace

std::string opAttributes(const Node &n) {
  std::string s;
  switch (opKind(n.op)) {
  case OpKind::Reduce:
    s += " axes=" + axesList(n.axes);
    if (n.keepdims) s += " keepdims";
    break;
  case OpKind::Row:
    s += fmt::format(" axis={}", std::countr_zero(n.axes));
    break;
  default:
    break;
  }
  if (n.op == Op::ArgMax) s += fmt::format(" axis={}", std::countr_zero(n.axes));
  if (n.op == Op::LeakyRelu) s += " slope=" + formatNumber(n.value);
  // The exponent's offset (the gradient's n - 1) reads as the sum it is: `pow %a, 2 - 1`.
  if (n.op == Op::Pow && n.value != 0)
    s += n.value < 0 ? " - " + formatNumber(-n.value) : " + " + formatNumber(n.value);
  if (n.op == Op::OneHot) s += fmt::format(" classes={}", n.classes);
  return s;
}

namespace {

bool isInlineConst(const Node &n) { return n.op == Op::Const && n.shape.empty(); }


std::string typeOf(const Function &f, const Node &n) {
  return std::string(dtypeName(n.dtype)) + formatShape(n.shape, f.dimNames);
}

// `op operands attrs` of a non-argument node.
std::string body(const Function &f, const Node &n, const std::vector<std::string> &names) {
  std::string s = opName(n.op);
  if (n.op == Op::Const) return s + " " + formatNumber(n.value);
  if (n.op == Op::DimSize) return s + " " + formatDim(n.dim, f.dimNames);
  for (size_t i = 0; i < n.operands.size(); ++i) {
    const Node &o = f.node(n.operands[i]);
    s += i ? ", " : " ";
    s += isInlineConst(o) ? formatNumber(o.value) : "%" + names[static_cast<size_t>(n.operands[i])];
    if (n.op == Op::MatMul && ((i == 0 && n.transA) || (i == 1 && n.transB))) s += "^T";
  }
  return s + opAttributes(n);
}

}  // namespace

std::string placeComment(const Node &n, const SourceManager *sm) {
  std::string c;
  // The file name as a terminal can show it (a control character in it is escaped).
  // A value of an inlined def is shown at the line of its (outermost) call, the one that
  // binds it, and then the line of the def body that computes it, which every call shares:
  // `digits.grad:15 (def at 13)`.
  if (sm && n.loc.valid()) {
    bool inDef = n.callLoc.valid() && n.callLoc.line != n.loc.line;
    c = escapeText(sm->formatShort(inDef ? n.callLoc : n.loc));
    if (inDef) c += fmt::format(" (def at {})", n.loc.line);
  }
  if (!n.srcName.empty()) c += (c.empty() ? "" : " ") + n.srcName;
  return c;
}

std::string printFunction(const Function &f, const SourceManager *sm) {
  std::vector<std::string> names = valueNames(f);
  std::string out = fmt::format("func @{}(", escapeText(f.name));
  bool first = true;
  for (ValueId v : f.arguments()) {
    const Node &n = f.node(v);
    out += fmt::format("{}%{}: {} {}", first ? "" : ", ", names[static_cast<size_t>(v)],
                       opName(n.op), typeOf(f, n));
    first = false;
  }
  out += ") {\n";
  for (ValueId v = 0; v < f.size(); ++v) {
    const Node &n = f.node(v);
    if (isLeaf(n.op) && n.op != Op::Const && n.op != Op::DimSize) continue;
    if (isInlineConst(n)) continue;
    std::string line = fmt::format("  %{} = {} : {}", names[static_cast<size_t>(v)],
                                   body(f, n, names), typeOf(f, n));
    std::string c = placeComment(n, sm);
    if (!c.empty()) {
      if (line.size() < 56) line.resize(56, ' ');
      line += "  # " + c;
    }
    out += line + "\n";
  }
  out += "  return";
  first = true;
  for (const Result &r : f.results) {
    const Node &n = f.node(r.value);
    std::string val = isInlineConst(n) ? formatNumber(n.value) : "%" + names[static_cast<size_t>(r.value)];
    out += fmt::format("{}\n    {} {} = {}", first ? "" : ",", resultKindName(r.kind), r.name, val);
    first = false;
  }
  out += "\n}\n";
  return out;
}

static std::string dotEscape(const std::string &s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

std::string printDot(const Function &f, const SourceManager *sm) {
  std::vector<std::string> names = valueNames(f);
  std::string out = fmt::format("digraph \"{}\" {{\n  rankdir=TB;\n  node [fontname=\"monospace\"];\n",
                                dotEscape(f.name));
  for (ValueId v = 0; v < f.size(); ++v) {
    const Node &n = f.node(v);
    if (isInlineConst(n)) continue;
    std::string label;
    std::string shape = "box";
    if (isLeaf(n.op) && n.op != Op::Const && n.op != Op::DimSize) {
      label = fmt::format("{} %{}\\n{}", opName(n.op), names[static_cast<size_t>(v)], dotEscape(typeOf(f, n)));
      shape = "ellipse";
    } else {
      label = dotEscape(fmt::format("%{} = {}", names[static_cast<size_t>(v)], body(f, n, names))) + "\\n" +
              dotEscape(typeOf(f, n));
      std::string c = placeComment(n, sm);
      if (!c.empty()) label += "\\n" + dotEscape(c);
    }
    out += fmt::format("  v{} [shape={}, label=\"{}\"];\n", v, shape, label);
    for (ValueId o : n.operands)
      if (!isInlineConst(f.node(o))) out += fmt::format("  v{} -> v{};\n", o, v);
  }
  for (size_t i = 0; i < f.results.size(); ++i) {
    const Result &r = f.results[i];
    const Node &n = f.node(r.value);
    if (isInlineConst(n)) {
      out += fmt::format("  r{} [shape=note, label=\"{} {} = {}\"];\n", i, resultKindName(r.kind),
                         dotEscape(r.name), formatNumber(n.value));
      continue;
    }
    out += fmt::format("  r{} [shape=note, label=\"{} {}\"];\n  v{} -> r{};\n", i,
                       resultKindName(r.kind), dotEscape(r.name), r.value, i);
  }
  return out + "}\n";
}

}  // namespace gradc::ir
