// `gradc inspect --stage loops`: the step as the code generator will run it. One block per
// loop nest, in the order they run, from the fusion plan (which values get a loop, which are
// computed inside another's) and the memory plan (where each stored value goes):
//
//   loop 4: f32[1024,1024], a group of 3 values
//     %W2.m.new -> W2.m (in place) = add(mul(%W2.m, 0.9), mul(%d.W2, 0.1))
//     ...
//     %d.W2 = matmul(%h1^T, %49): computed tile by tile in this loop, never stored
//
// An expression shows every value the loop computes without storing it, nested at its use;
// a `%name` in it is read from a buffer (or, inside a group, from the register of an earlier
// member). After the loops, the work regions and the values that share each one.
#include <algorithm>
#include <bit>
#include <map>

#include <fmt/format.h>

#include "codegen/Codegen.h"
#include "codegen/Fusion.h"
#include "codegen/LowerToLLVM.h"
#include "codegen/MemoryPlan.h"
#include "codegen/Target.h"
#include "ir/Printer.h"

namespace gradc::codegen {

using namespace ir;

namespace {

class PlanPrinter {
public:
  PlanPrinter(const Function &f, const CodegenOptions &o, const SourceManager *sm)
      : f_(f), o_(o), t_(resolveTarget(o)), sm_(sm), names_(valueNames(f)), fp_(planFusion(f)),
        mp_(planMemory(f, fp_, o.f64 ? 8 : 4, std::max(o.threads, 1), interleaveLimit(o))) {}

  std::string print() {
    int loops = 0, copies = 0;
    for (const Step &s : mp_.steps) (s.kind == Step::Compute ? loops : copies)++;
    out_ = fmt::format("loops @{}: {} loops, {} copies, {} work regions (--threads {}, {})\n", escapeText(f_.name),
                       loops, copies, mp_.regions.size(), std::max(o_.threads, 1), o_.f64 ? "f64" : "f32");
    for (size_t i = 0; i < mp_.steps.size(); ++i) printStep(i, mp_.steps[i]);
    printRegions();
    return out_;
  }

private:
  const Function &f_;
  const CodegenOptions &o_;
  const TargetDesc t_;
  const SourceManager *sm_;
  std::vector<std::string> names_;
  FusionPlan fp_;
  MemoryPlan mp_;
  std::string out_;

  Role role(ValueId v) const { return fp_.role.at(static_cast<size_t>(v)); }
  std::string name(ValueId v) const { return "%" + names_.at(static_cast<size_t>(v)); }
  // A float value is f64 in the code of `--dtype f64`.
  std::string type(ValueId v) const {
    const Node &n = f_.node(v);
    std::string dt = n.dtype == DType::F32 && o_.f64 ? "f64" : dtypeName(n.dtype);
    return dt + formatShape(n.shape, f_.dimNames);
  }

  // An operand as the loop sees it: a scalar constant in place, a value computed in this
  // loop (inlined, or the loop's fused matmul shown by name) nested, anything else by name.
  std::string operand(ValueId v) const {
    const Node &n = f_.node(v);
    if (n.op == Op::Const && n.shape.empty()) return formatNumber(n.value);
    if (n.op == Op::DimSize) return formatDim(n.dim, f_.dimNames);
    if (role(v) == Role::Inline) return expr(v);
    return name(v);
  }

  // v's own op applied to its operands.
  std::string expr(ValueId v) const {
    const Node &n = f_.node(v);
    std::string s = std::string(opName(n.op)) + "(";
    for (size_t i = 0; i < n.operands.size(); ++i) {
      s += i ? ", " : "";
      s += operand(n.operands[i]);
      if (n.op == Op::MatMul && ((i == 0 && n.transA) || (i == 1 && n.transB))) s += "^T";
    }
    std::string attrs = opAttributes(n);
    if (!attrs.empty()) s += "," + attrs;
    return s + ")";
  }

  std::string bufferName(Buffer b, ValueId stored) const {
    if (b.index < 0) return "register";
    if (b.kind == Buffer::Region) return fmt::format("r{}", b.index);
    for (ValueId a : f_.arguments())
      if (mp_.argSlot[static_cast<size_t>(a)] == b.index)
        return names_[static_cast<size_t>(a)] + (stored == a ? "" : " (in place)");
    for (size_t r = 0; r < f_.results.size(); ++r)
      if (mp_.resultSlot[r] == b.index) {
        const Result &res = f_.results[r];
        std::string kind = resultKindName(res.kind);
        return kind == res.name ? kind : kind + " " + res.name;
      }
    return fmt::format("slot {}", b.index);
  }

  std::string place(ValueId v) const {
    std::string c = ir::placeComment(f_.node(v), sm_);
    return c.empty() ? "" : "  # " + c;
  }

  void line(ValueId v, Buffer dest) {
    out_ += fmt::format("    {} -> {} = {}{}\n", name(v), bufferName(dest, v), expr(v), place(v));
  }

  void printStep(size_t index, const Step &s) {
    if (s.kind == Step::Copy) {
      std::string from = s.src.index >= 0 ? bufferName(s.src, kNoValue) : operand(s.value);
      out_ += fmt::format("copy {}: {} -> {} from {}\n", index, name(s.value), bufferName(s.dest, kNoValue), from);
      return;
    }
    size_t members = s.also.size() + 1;
    out_ += fmt::format("loop {}: {}{}\n", index, type(s.value),
                        members > 1 ? fmt::format(", a group of {} values", members) : "");
    for (size_t i = 0; i < s.also.size(); ++i) line(s.also[i], s.alsoDest[i]);
    line(s.value, s.dest);
    ValueId mm = s.matmul != kNoValue ? s.matmul : (f_.node(s.value).op == Op::MatMul ? s.value : kNoValue);
    if (s.matmul != kNoValue)
      out_ += fmt::format("    {} = {}: computed tile by tile in this loop, never stored\n", name(s.matmul),
                          expr(s.matmul));
    if (index > 0 && mp_.steps[index - 1].interleaved) {
      // Runs inside the loop before (MemoryPlan.h, Step::interleaved).
      const Step &x = mp_.steps[index - 1];
      ValueId w = matmulOperand(f_, f_.node(x.matmul).operands[1]).value;
      out_ += fmt::format("    interleaved in loop {}: after each of its column panels, these tiles over the "
                          "rows of {} it has read\n",
                          index - 1, name(w));
      return;
    }
    const int64_t panel = matmulPanelWidth(t_, o_.f64);
    if (mm != kNoValue && o_.threads > 1 && maySplitOverThreads(f_.node(mm).shape[1], panel, o_.threads))
      out_ += fmt::format("    split over {} threads when it has >= {} column panels per thread and >= 2^{} "
                          "multiply-adds\n",
                          o_.threads, kParallelMinPanelsPerPart, std::countr_zero(uint64_t(kParallelMinFmas)));
    else if (mm != kNoValue && o_.threads > 1)
    {
      int64_t panels = (f_.node(mm).shape[1].factor + panel - 1) / panel;
      out_ += fmt::format("    on one thread: {} column panel{} of {} columns, a split over {} threads needs {} "
                          "panels\n",
                          panels, panels == 1 ? "" : "s", panel, o_.threads, kParallelMinPanelsPerPart * o_.threads);
    }
    if (s.interleaved)
      out_ += fmt::format("    loop {} is interleaved in this one: its tiles over each column panel's rows of {}, "
                          "after the panel\n",
                          index + 1, name(matmulOperand(f_, f_.node(s.matmul).operands[1]).value));
  }

  static std::string size(const RegionMember &m, const std::vector<std::string> &dims) {
    std::string s = std::to_string(m.bytes);
    for (int d : m.syms) s += "*" + dims.at(static_cast<size_t>(d));
    return s;
  }

  void printRegions() {
    std::map<int, std::vector<std::string>> users;
    for (const Step &s : mp_.steps) {
      if (s.kind != Step::Compute) continue;
      auto note = [&](Buffer b, ValueId v) {
        if (b.kind == Buffer::Region && b.index >= 0) users[b.index].push_back(name(v));
      };
      for (size_t i = 0; i < s.also.size(); ++i) note(s.alsoDest[i], s.also[i]);
      note(s.dest, s.value);
      if (s.scratch.kind == Buffer::Region && s.scratch.index >= 0)
        users[s.scratch.index].push_back(fmt::format("panels of loop {}", &s - mp_.steps.data()));
    }
    for (size_t r = 0; r < mp_.regions.size(); ++r) {
      // Of the sizes with the same dims only the largest counts: max(16*B, 512*B) is 512*B.
      std::vector<RegionMember> terms;
      for (const RegionMember &m : mp_.regions[r]) {
        auto same = std::find_if(terms.begin(), terms.end(), [&](const RegionMember &t) { return t.syms == m.syms; });
        if (same == terms.end()) terms.push_back(m);
        else same->bytes = std::max(same->bytes, m.bytes);
      }
      std::string sizes;
      for (const RegionMember &m : terms) sizes += (sizes.empty() ? "" : ", ") + size(m, f_.dimNames);
      if (terms.size() > 1) sizes = "max(" + sizes + ")";
      std::string who;
      for (const std::string &u : users[static_cast<int>(r)]) who += (who.empty() ? "" : ", ") + u;
      out_ += fmt::format("region r{}: {} bytes: {}\n", r, sizes, who);
    }
  }
};

}  // namespace

std::string printLoopPlan(const Function &f, const CodegenOptions &o, const SourceManager *sm) {
  return PlanPrinter(f, o, sm).print();
}

}  // namespace gradc::codegen
