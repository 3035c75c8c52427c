// The generated C header (see CHeader.h and docs/aot.md).
#include "driver/CHeader.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

#include <fmt/format.h>

namespace gradc::driver {

const char *const kCModelTypes =
#include "ModelTypes.inc"
    ;

namespace {

const char *kindName(rt::SlotKind k) {
  switch (k) {
  case rt::SlotKind::Input: return "input";
  case rt::SlotKind::Param: return "param";
  case rt::SlotKind::State: return "state";
  case rt::SlotKind::Hyper: return "hyper";
  case rt::SlotKind::Loss: return "loss";
  case rt::SlotKind::Metric: return "metric";
  case rt::SlotKind::Output: return "output";
  case rt::SlotKind::Grad: return "grad";
  }
  return "?";
}

const char *kindEnum(rt::SlotKind k) {
  switch (k) {
  case rt::SlotKind::Input: return "GRADC_SLOT_INPUT";
  case rt::SlotKind::Param: return "GRADC_SLOT_PARAM";
  case rt::SlotKind::State: return "GRADC_SLOT_STATE";
  case rt::SlotKind::Hyper: return "GRADC_SLOT_HYPER";
  case rt::SlotKind::Loss: return "GRADC_SLOT_LOSS";
  case rt::SlotKind::Metric: return "GRADC_SLOT_METRIC";
  case rt::SlotKind::Output: return "GRADC_SLOT_OUTPUT";
  case rt::SlotKind::Grad: return "GRADC_SLOT_GRAD";
  }
  return "?";
}

std::string ident(const std::string &s) {
  std::string out = s;
  for (char &c : out)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return out;
}

std::string upper(std::string s) {
  for (char &c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string cString(const std::string &s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '\n' || c == '\r') {
      out += c == '\n' ? "\\n" : "\\r";
      continue;
    }
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// Text inside a /* */ comment: a `*/` in it (a folder named `dir*`) would end the comment.
std::string commentText(const std::string &s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    out += s[i];
    if (s[i] == '*' && i + 1 < s.size() && s[i + 1] == '/') out += '\\';
  }
  return out;
}

std::string cDouble(double v) { return fmt::format("{:.17g}", v); }

std::string shapeText(const std::vector<int64_t> &shape, const std::vector<std::string> &dims) {
  std::vector<std::string> parts;
  for (int64_t d : shape)
    parts.push_back(d >= 0 ? std::to_string(d) : dims.at(static_cast<size_t>(-1 - d)));
  return fmt::format("[{}]", fmt::join(parts, ", "));
}

std::string typeText(const rt::Slot &s, bool f64) {
  return s.isInt ? "int32" : f64 ? "double" : "float";
}

const char *initName(InitKind k) {
  switch (k) {
  case InitKind::Zeros: return "zeros";
  case InitKind::Ones: return "ones";
  case InitKind::Const: return "const";
  case InitKind::Normal: return "normal";
  case InitKind::Uniform: return "uniform";
  case InitKind::Glorot: return "glorot";
  case InitKind::He: return "he";
  }
  return "?";
}

// `{name, kind, is_int, rank, {shape}, classes, state_offset}`
std::string slotInit(const rt::Slot &s, int64_t classes, int64_t offset) {
  std::vector<std::string> shape;
  for (int64_t d : s.shape) shape.push_back(std::to_string(d));
  if (shape.empty()) shape.push_back("0");
  return fmt::format("{{{}, {}, {}, {}, {{{}}}, {}, {}}}", cString(s.name), kindEnum(s.kind),
                     s.isInt ? 1 : 0, s.shape.size(), fmt::join(shape, ", "), classes, offset);
}

// Identifiers for named items (slots, state entries): each name as an identifier, with the
// item's kind appended where two give the same one (param `w_m` and Adam's state `w.m`) or
// one is `reserved` (the slot enum's own `NUM_SLOTS`), and then a number where that is
// another item's identifier too (params `lr` and `lr_param` beside the learning rate `lr`).
template <typename Items>
std::vector<std::string> uniqueIdents(const Items &items, const std::string &reserved = "") {
  std::map<std::string, int> count;
  if (!reserved.empty()) count[reserved] = 1;
  for (const auto &x : items) ++count[ident(x.name)];
  std::set<std::string> taken;
  if (!reserved.empty()) taken.insert(reserved);
  for (const auto &x : items)
    if (count[ident(x.name)] == 1) taken.insert(ident(x.name));
  std::vector<std::string> out;
  for (const auto &x : items) {
    std::string id = ident(x.name);
    if (count[id] > 1) {
      std::string base = id + "_" + kindName(x.kind);
      id = base;
      for (int n = 2; taken.count(id); ++n) id = base + "_" + std::to_string(n);
      taken.insert(id);
    }
    out.push_back(id);
  }
  return out;
}

// The enumerator of each slot.
std::vector<std::string> slotIdents(const rt::Signature &sig) { return uniqueIdents(sig.slots, "NUM_SLOTS"); }

// The macro name of each state entry (`M_STATE_X_OFFSET`), by its name.
std::map<std::string, std::string> stateIdents(const StateLayout &state) {
  std::vector<std::string> ids = uniqueIdents(state.entries);
  std::map<std::string, std::string> out;
  for (size_t i = 0; i < ids.size(); ++i) out[state.entries[i].name] = ids[i];
  return out;
}

template <typename... Args>
void put(std::string &h, fmt::format_string<Args...> f, Args &&...args) {
  h += fmt::format(f, std::forward<Args>(args)...);
}

}  // namespace

StateLayout stateLayout(const Model &m, const rt::Signature &step, bool f64) {
  StateLayout l;
  int64_t elem = f64 ? 8 : 4;
  auto add = [&](StateEntry e) {
    int64_t n = 1;
    for (int64_t d : e.shape) n *= d;
    e.offset = l.bytes;
    e.bytes = n * elem;
    l.bytes += (e.bytes + 63) / 64 * 64;
    l.entries.push_back(std::move(e));
  };
  for (size_t i = 0; i < m.params.size(); ++i) {
    StateEntry e;
    e.name = m.params[i].name;
    e.kind = rt::SlotKind::Param;
    for (const ir::Dim &d : m.params[i].shape) e.shape.push_back(d.factor);
    e.paramIndex = static_cast<int>(i);
    add(std::move(e));
  }
  for (const rt::Slot &s : step.slots)
    if (s.kind == rt::SlotKind::State) add({s.name, s.kind, s.shape, 0, 0, -1});
  return l;
}

std::string cHeader(const Model &m, const HeaderInfo &info, const StateLayout &state,
                    const std::vector<HeaderFunction> &fns) {
  std::string M = "GRADC_" + upper(ident(m.name));
  std::string fl = info.f64 ? "double" : "float";
  std::vector<std::string> dims;
  for (const HeaderFunction &f : fns)
    if (!f.symbol.empty() && f.sig.dimNames.size() > dims.size()) dims = f.sig.dimNames;
  const HeaderFunction *step = nullptr;
  for (const HeaderFunction &f : fns)
    if (f.role == "step") step = &f;
  // The batch dim is the symbolic first dim of the inputs (the runtime finds it the same way):
  // dims[0] only when no other dim is declared before it (`dim T, B` puts it at 1).
  int batch = -1;
  for (const HeaderFunction &f : fns)
    for (const rt::Slot &s : f.sig.slots)
      if (batch < 0 && s.kind == rt::SlotKind::Input && !s.shape.empty() && s.shape[0] < 0)
        batch = static_cast<int>(-1 - s.shape[0]);
  std::string batchDim = batch >= 0 ? fmt::format("{}_DIM_{}", M, ident(dims.at(static_cast<size_t>(batch)))) : "";
  std::map<std::string, int64_t> classes;
  for (const InputInfo &in : m.inputs) classes[in.name] = in.classes;
  std::map<std::string, int64_t> offsets;
  for (const StateEntry &e : state.entries) offsets[e.name] = e.offset;
  std::map<std::string, std::string> stateIds = stateIdents(state);

  std::string h;

  put(h, "/* Model `{}`, compiled ahead of time by `gradc compile` from {}.\n", commentText(m.name),
      commentText(info.modelPath));
  put(h, " * Generated: do not edit. Target {} (cpu {}), {} buffers.\n", info.triple, info.cpu, fl);
  put(h, " *\n");
  put(h, " * Plain C: include it from C or C++, link the object file `gradc compile` wrote with it\n");
  if (info.threads > 1)
    put(h, " * (and libgradc_runtime: for {}(), and for the thread pool that splits large matrix\n"
           " * products into {} parts, --threads {}; see docs/aot.md). Every compiled function\n",
        info.initSymbol, info.threads, info.threads);
  else
    put(h, " * (and, for {}(), libgradc_runtime; see docs/aot.md). Every compiled function\n", info.initSymbol);
  put(h, " * has the form\n");
  put(h, " *     void FN(void *const *args, const int64_t *dims, void *work);\n");
  put(h, " * args:  one pointer per slot, in the order of the FN slot enum below;\n");
  put(h, " *        float tensors hold {}, int tensors int32; dense, row-major; a scalar is a\n", fl);
  put(h, " *        pointer to one value. Params and optimiser states are updated in place.\n");
  if (dims.empty()) {
    put(h, " * dims:  not read: this model has no symbolic dims (NULL will do).\n");
  } else if (batch < 0) {
    put(h, " * dims:  not read: no input has a symbolic batch dim (NULL will do).\n");
  } else {
    put(h, " * dims:  the symbolic dims, in the order below (dims[{}] = {}: the rows of this call;\n",
        batch == 0 ? "0" : batchDim, dims[static_cast<size_t>(batch)]);
    put(h, " *        it may change from call to call, e.g. for the last, smaller batch).\n");
    if (dims.size() > 1) put(h, " *        The other dims are not read.\n");
  }
  put(h, " * work:  FN_work_size(dims) bytes of scratch, 64-byte aligned (allocate it once for\n");
  put(h, " *        the largest batch; FN allocates nothing).\n");
  put(h, " *\n");
  put(h, " * Example: one training step{}\n", dims.empty() ? "" : " on a batch of `rows` rows");
  put(h, " *     void *state = aligned_alloc(64, {}_STATE_BYTES);\n", M);
  put(h, " *     {}(state, 0);                          (seed 0, as gradc train)\n", info.initSymbol);
  if (step && !step->symbol.empty()) {
    std::vector<std::string> ids = slotIdents(step->sig);
    std::string S = M + "_STEP_";
    if (batch < 0) put(h, " *     const int64_t *dims = NULL;\n");
    else if (batch == 0) put(h, " *     int64_t dims[{}_NUM_DIMS] = {{rows}};\n", M);
    else put(h, " *     int64_t dims[{}_NUM_DIMS] = {{0}};\n *     dims[{}] = rows;\n", M, batchDim);
    put(h, " *     void *work = aligned_alloc(64, ({}_work_size(dims) + 63) / 64 * 64);\n", step->symbol);
    put(h, " *     void *args[{}NUM_SLOTS];\n", S);
    for (size_t i = 0; i < step->sig.slots.size(); ++i) {
      const rt::Slot &s = step->sig.slots[i];
      std::string what;
      switch (s.kind) {
      case rt::SlotKind::Input: what = fmt::format("{}_data;   ({}{})", ident(s.name), typeText(s, info.f64), shapeText(s.shape, dims)); break;
      case rt::SlotKind::Param:
      case rt::SlotKind::State: what = fmt::format("(char *)state + {}_STATE_{}_OFFSET;", M, stateIds[s.name]); break;
      case rt::SlotKind::Hyper: what = fmt::format("&{};   ({} {}{})", ident(s.name), fl, ident(s.name), s.name == "t" ? " = steps taken + 1" : s.name == "lr" ? " = the learning rate" : ""); break;
      default: what = fmt::format("&{};   (a {} result)", ident(s.name), typeText(s, info.f64)); break;
      }
      put(h, " *     args[{}{}] = {}\n", S, ids[i], what);
    }
    put(h, " *     {}(args, dims, work);\n", step->symbol);
  }
  put(h, " * With libgradc_runtime (gradc_runtime.h) the same model trains in a few lines:\n");
  put(h, " *     gradc_model m = gradc_{}_model();\n", ident(m.name));
  if (!m.inputs.empty()) put(h, " *     gradc_dataset *d = gradc_dataset_read_csv(&m, \"train.csv\");\n");
  put(h, " *     gradc_train_options o = gradc_train_defaults(&m);\n");
  put(h, " *     m.init(state, o.seed);\n");
  if (m.inputs.empty()) put(h, " *     gradc_train(&m, state, NULL, NULL, NULL, &o);   (no data: 1000 steps, as gradc train)\n");
  else put(h, " *     gradc_train(&m, state, NULL, d, NULL, &o);\n");
  put(h, " */\n");
  // (`_MODEL_H`: a model named `runtime` would otherwise take gradc_runtime.h's guard.)
  put(h, "#ifndef {}_MODEL_H\n#define {}_MODEL_H\n\n", M, M);
  h += kCModelTypes;
  put(h, "\n#ifdef __cplusplus\nextern \"C\" {{\n#endif\n\n");
  put(h, "#define {}_NAME {}\n", M, cString(m.name));
  put(h, "#define {}_HASH {}\n", M, cString(info.hash));
  put(h, "#define {}_F64 {}  /* float tensors hold {} */\n", M, info.f64 ? 1 : 0, fl);
  put(h, "#define {}_LR {}  /* the model's learning rate ({}) */\n\n", M, cDouble(info.lr), m.optimizer.kind);

  put(h, "/* Symbolic dims, in the order of dims[]. */\n");
  put(h, "#define {}_NUM_DIMS {}\n", M, dims.size());
  for (size_t i = 0; i < dims.size(); ++i)
    put(h, "#define {}_DIM_{} {}{}\n", M, ident(dims[i]), i,
        static_cast<int>(i) == batch ? "  /* the batch size: rows per call */" : "  /* not read */");
  put(h, "\n/* Inputs, in the column order of a CSV file (gradc's docs/language.md, \"Data\"). */\n");
  for (const InputInfo &in : m.inputs) {
    std::vector<std::string> sh;
    for (const ir::Dim &d : in.shape) sh.push_back(ir::formatDim(d, m.forward.dimNames));
    put(h, "/*   {}: {}[{}]{} */\n", in.name, in.dtype == ir::DType::I32 ? "int32" : fl, fmt::join(sh, ", "),
        in.classes > 0 ? fmt::format(", labels in [0, {})", in.classes) : "");
  }
  put(h, "\n/* Params, with their initialisers (init() draws them as `gradc train --seed` does). */\n");
  for (const ParamInfo &p : m.params) {
    std::vector<std::string> sh;
    for (const ir::Dim &d : p.shape) sh.push_back(std::to_string(d.factor));
    std::vector<std::string> args;
    for (double a : p.initArgs) args.push_back(cDouble(a));
    put(h, "/*   {}: {}[{}] = {}{} */\n", p.name, fl, fmt::join(sh, ", "), initName(p.init),
        args.empty() ? "" : fmt::format("({})", fmt::join(args, ", ")));
  }
  put(h, "\n/* The state buffer: params, then optimiser states, each at a 64-byte aligned offset\n");
  put(h, " * (bytes). Allocate it 64-byte aligned; init() fills it. */\n");
  put(h, "#define {}_STATE_BYTES {}\n", M, state.bytes);
  put(h, "#define {}_NUM_STATE {}\n", M, state.entries.size());
  for (const StateEntry &e : state.entries) {
    put(h, "#define {}_STATE_{}_OFFSET {}  /* {} {} {} */\n", M, stateIds[e.name], e.offset, kindName(e.kind),
        e.name, shapeText(e.shape, dims));
    put(h, "#define {}_STATE_{}_BYTES {}\n", M, stateIds[e.name], e.bytes);
  }
  put(h, "\n/* Fills the params from their initialisers with `seed` and zeroes the optimiser states.\n");
  put(h, " * It calls gradc_init_param_f32/_f64 of libgradc_runtime. */\n");
  put(h, "void {}(void *state, uint64_t seed);\n", info.initSymbol);

  for (const HeaderFunction &f : fns) {
    std::string R = M + "_" + upper(f.role) + "_";
    if (f.symbol.empty()) {
      put(h, "\n/* {}: the model has no {} (no result of that kind). */\n", f.role,
          f.role == "predict" ? "outputs" : "such function");
      continue;
    }
    const char *what = f.role == "step" ? "the fused forward + backward + optimiser update; loss and metrics are those before the update"
                     : f.role == "eval" ? "loss and metrics (no update)"
                                        : "the model's outputs";
    put(h, "\n/* {}: {}. Slots of args[]: */\n", f.symbol, what);
    put(h, "enum {{\n");
    std::vector<std::string> ids = slotIdents(f.sig);
    for (size_t i = 0; i < f.sig.slots.size(); ++i) {
      const rt::Slot &s = f.sig.slots[i];
      put(h, "  {}{} = {},  /* {} {}: {}{}{} */\n", R, ids[i], i, kindName(s.kind), s.name, typeText(s, info.f64),
          shapeText(s.shape, dims),
          f.role == "step" && (s.kind == rt::SlotKind::Param || s.kind == rt::SlotKind::State)
              ? ", updated in place" : "");
    }
    put(h, "  {}NUM_SLOTS = {}\n}};\n", R, f.sig.slots.size());
    put(h, "void {}(void *const *args, const int64_t *dims, void *work);\n", f.symbol);
    put(h, "int64_t {}_work_size(const int64_t *dims);\n", f.symbol);
  }

  // The model description for libgradc_runtime (data, training loop, checkpoints).
  std::string lower = "gradc_" + ident(m.name);
  put(h, "\n/* The model description that libgradc_runtime takes, from the functions' addresses (pass\n");
  put(h, " * NULL for a function you do not have, e.g. when the object is loaded with dlopen). */\n");
  put(h, "static inline gradc_model {}_model_from(gradc_kernel_fn step, gradc_work_size_fn step_work_size,\n", lower);
  put(h, "    gradc_kernel_fn eval, gradc_work_size_fn eval_work_size, gradc_kernel_fn predict,\n");
  put(h, "    gradc_work_size_fn predict_work_size, gradc_init_fn init) {{\n");
  put(h, "  static const char *const dims[] = {{");
  for (const std::string &d : dims) put(h, "{}, ", cString(d));
  put(h, "NULL}};\n");
  if (!state.entries.empty()) {
    put(h, "  static const gradc_slot state[] = {{\n");
    for (const StateEntry &e : state.entries) {
      rt::Slot s{e.name, e.kind, false, e.shape};
      put(h, "    {},\n", slotInit(s, 0, e.offset));
    }
    put(h, "  }};\n");
  } else {
    put(h, "  static const gradc_slot *const state = NULL;\n");
  }
  for (const HeaderFunction &f : fns) {
    if (f.symbol.empty() || f.sig.slots.empty()) continue;
    put(h, "  static const gradc_slot {}_slots[] = {{\n", f.role);
    for (const rt::Slot &s : f.sig.slots) {
      int64_t cl = s.kind == rt::SlotKind::Input && classes.count(s.name) ? classes[s.name] : 0;
      int64_t off = (s.kind == rt::SlotKind::Param || s.kind == rt::SlotKind::State) && offsets.count(s.name) ? offsets[s.name] : -1;
      put(h, "    {},\n", slotInit(s, cl, off));
    }
    put(h, "  }};\n");
  }
  std::vector<std::string> ks;
  for (const char *role : {"step", "eval", "predict"}) {
    const HeaderFunction *f = nullptr;
    for (const HeaderFunction &g : fns)
      if (g.role == role && !g.symbol.empty()) f = &g;
    if (!f || f->sig.slots.empty()) {
      ks.push_back(fmt::format("{{\"{}\", NULL, NULL, 0, NULL}}", role));
      put(h, "  (void){};\n  (void){}_work_size;\n", role, role);
    } else {
      ks.push_back(fmt::format("{{\"{}\", {}, {}_work_size, {}, {}_slots}}", role, role, role, f->sig.slots.size(), role));
    }
  }
  put(h, "  gradc_model m = {{{}, {}_HASH, {}, {}, dims, {}_LR, {}_STATE_BYTES, {}, state, init,\n",
      cString(m.name), M, info.f64 ? 1 : 0, dims.size(), M, M, state.entries.size());
  put(h, "    {},\n    {}}};\n  return m;\n}}\n\n", fmt::join(ks, ",\n    "), cString(m.optimizer.kind));
  put(h, "/* The model description with this object's functions (link the object). */\n");
  // (clang warns of an unused static function in a header compiled on its own.)
  put(h, "#if defined(__GNUC__)\n__attribute__((unused))\n#endif\n");
  put(h, "static inline gradc_model {}_model(void) {{\n  return {}_model_from(", lower, lower);
  std::vector<std::string> fargs;
  for (const char *role : {"step", "eval", "predict"}) {
    const HeaderFunction *f = nullptr;
    for (const HeaderFunction &g : fns)
      if (g.role == role && !g.symbol.empty()) f = &g;
    if (f) {
      fargs.push_back(f->symbol);
      fargs.push_back(f->symbol + "_work_size");
    } else {
      fargs.push_back("NULL");
      fargs.push_back("NULL");
    }
  }
  fargs.push_back(info.initSymbol);
  put(h, "{});\n}}\n", fmt::join(fargs, ", "));
  put(h, "\n#ifdef __cplusplus\n}}\n#endif\n\n#endif\n");
  return h;
}

}  // namespace gradc::driver
