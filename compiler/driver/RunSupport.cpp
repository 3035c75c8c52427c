// Shared pieces of train, eval, predict and bench (see RunSupport.h).
#include "driver/RunSupport.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <optional>
#include <set>
#include <unistd.h>

#include <fmt/ranges.h>

#include "driver/GradSupport.h"
#include "runtime/Files.h"

namespace gradc::driver {

std::vector<rt::ParamSpec> paramSpecs(const Model &m) {
  std::vector<rt::ParamSpec> out;
  for (const ParamInfo &p : m.params) {
    rt::ParamSpec s;
    s.name = p.name;
    for (const ir::Dim &d : p.shape) s.shape.push_back(d.factor);
    s.init = static_cast<rt::Init>(static_cast<int>(p.init));
    s.args = p.initArgs;
    out.push_back(std::move(s));
  }
  return out;
}

std::string modelHash(const SourceManager &sm, const Model &m) {
  uint64_t h = 0xcbf29ce484222325ull;
  if (m.sourceFile >= 0)
    for (unsigned char c : sm.text(m.sourceFile)) h = (h ^ c) * 0x100000001b3ull;
  return fmt::format("{:016x}", h);
}

std::vector<std::string> inputsUsed(const ir::Function &f) {
  std::vector<bool> live(static_cast<size_t>(f.size()), false);
  for (const ir::Result &r : f.results) live[static_cast<size_t>(r.value)] = true;
  std::vector<std::string> used;
  for (ir::ValueId v = f.size() - 1; v >= 0; --v) {
    if (!live[static_cast<size_t>(v)]) continue;
    const ir::Node &n = f.node(v);
    if (n.op == ir::Op::Input) used.insert(used.begin(), n.name);
    for (ir::ValueId a : n.operands) live[static_cast<size_t>(a)] = true;
  }
  return used;
}

rt::Dataset readDataFor(const Model &m, const ir::Function &f, const std::string &path, bool f64) {
  std::vector<std::string> used = inputsUsed(f);
  // The labels of an input the program does not read are not checked against their classes
  // (predict on a file whose labels include a class the model lacks): only read past.
  Model full = m;
  for (InputInfo &in : full.inputs)
    if (std::find(used.begin(), used.end(), in.name) == used.end()) in.classes = 0;
  std::optional<UserError> fullError;
  try {
    return readData(full, path, f64);
  } catch (const UserError &e) {
    if (used.size() == m.inputs.size()) throw;
    fullError = e;
  }
  Model sub = full;
  std::erase_if(sub.inputs, [&](const InputInfo &in) {
    return std::find(used.begin(), used.end(), in.name) == used.end();
  });
  rt::Dataset ds;
  try {
    ds = readData(sub, path, f64);
  } catch (const UserError &e) {
    // The layout that reads further is the file's: a file of just the inputs with a bad
    // value on line 6 is that error, not "expected 5 values, found 4" on line 2, and a file
    // of every input with a short row 6 is that row's error, as it is for train. Where both
    // stop on one line (or the file is bad as a whole), the error of the full layout; a row
    // of the wrong width also names the shorter one (`expected 3 values, found 1 (or 2, only
    // the inputs used: x)`).
    if (e.loc.line > fullError->loc.line) throw;
    std::string msg = fullError->what();
    if (e.loc.line < fullError->loc.line || !msg.starts_with("expected ") || msg.find(" value") == std::string::npos)
      throw *fullError;
    int64_t width = 0;
    for (const InputInfo &in : sub.inputs) width += sampleWidth(in);
    msg += fmt::format(" (or {}, only the inputs used: {})", width, fmt::join(used, ", "));
    throw UserError(fullError->fileName, fullError->loc.line, fullError->loc.col, msg, fullError->quote);
  }
  rt::Dataset padded = ds;
  padded.inputs.clear();
  for (const InputInfo &in : m.inputs) {
    auto it = std::find_if(ds.inputs.begin(), ds.inputs.end(),
                           [&](const rt::Column &c) { return c.name == in.name; });
    if (it != ds.inputs.end()) {
      padded.inputs.push_back(std::move(*it));
      continue;
    }
    rt::Column c;
    c.name = in.name;
    c.isInt = in.dtype == ir::DType::I32;
    c.width = sampleWidth(in);
    if (c.isInt) c.i.assign(static_cast<size_t>(ds.rows * c.width), 0);
    else c.f.assign(static_cast<size_t>(ds.rows * c.width), 0.0f);
    padded.inputs.push_back(std::move(c));
  }
  return padded;
}

void writeStandardOutput(std::string_view bytes) {
  errno = 0;
  std::cout.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  std::cout.flush();
  if (!std::cout)
    throw UserError("gradc", fmt::format("cannot write standard output: {}", errno ? std::strerror(errno) : "write error"));
}

std::string outOfMemoryLine(const std::string &modelPath, std::string_view prefix) {
  return oneLine(fmt::format("{}: error: {}out of memory: the model's tensors do not fit in this machine's memory",
                             modelPath, prefix));
}

uint64_t parseBytes(const std::string &text) {
  size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  std::string suffix = text.substr(i);
  int shift = suffix.empty() || suffix == "B" ? 0
              : suffix == "K" || suffix == "k" ? 10
              : suffix == "M" || suffix == "m" ? 20
              : suffix == "G" || suffix == "g" ? 30
              : -1;
  uint64_t n = 0;
  bool ok = i > 0 && i <= 18 && shift >= 0;
  if (ok) n = std::stoull(text.substr(0, i));
  if (!ok || n > (UINT64_MAX >> shift))
    fileError("gradc", "--max-memory takes a number of bytes such as 512M or 2G, not '{}'", text);
  return n << shift;
}

namespace {

std::string byteText(long double b) {
  if (b >= 1024.0L * 1024 * 1024) return fmt::format("{:.1f} GiB", static_cast<double>(b / (1024.0L * 1024 * 1024)));
  if (b >= 1024.0L * 1024) return fmt::format("{:.1f} MiB", static_cast<double>(b / (1024.0L * 1024)));
  if (b >= 1024.0L) return fmt::format("{:.1f} KiB", static_cast<double>(b / 1024.0L));
  return fmt::format("{} bytes", static_cast<double>(b));
}

}  // namespace

void checkMemory(const rt::Kernel &k, int64_t rows, const Options &o, bool stateCopy) {
  checkMemory(std::vector<const rt::Kernel *>{&k}, rows, o, stateCopy);
}

void checkMemory(const std::vector<const rt::Kernel *> &kernels, int64_t rows, const Options &o, bool stateCopy) {
  // Counted in long double: a product of dims that overflows 64 bits is still refused.
  long double state = 0, other = 0;
  bool optimiserState = false;
  int64_t batch = std::max<int64_t>(rows, 1);
  std::set<std::string> held;  // a param that several kernels take is held once
  for (const rt::Kernel *k : kernels)
    for (const rt::Slot &s : k->sig.slots) {
      long double n = 1;
      for (int64_t d : s.shape) n *= d >= 0 ? static_cast<long double>(d) : static_cast<long double>(batch);
      long double bytes = n * (s.isInt ? 4 : k->f64 ? 8 : 4);
      if (s.kind == rt::SlotKind::Param || s.kind == rt::SlotKind::State) {
        if (held.insert(s.name).second) state += bytes;
      } else {
        other += bytes;
      }
      optimiserState |= s.kind == rt::SlotKind::State;
    }
  long double work = 0;
  bool anyWork = false;
  for (const rt::Kernel *k : kernels) anyWork |= static_cast<bool>(k->workBytes);
  bool workCounted = !anyWork || other + state < 1e18L;  // beyond, the work's size overflows
  for (const rt::Kernel *k : kernels)
    if (k->workBytes && workCounted) {
      // Only the batch dim is read, and it need not be dims[0] (`dim T, B`): give every dim the rows.
      std::vector<int64_t> dims(k->sig.dimNames.size(), batch);
      work += static_cast<long double>(k->workBytes(dims.data()));
    }
  // Training keeps a copy of the state for the NaN trap; eval, predict and bench hold it once.
  long double need = (stateCopy ? 2 : 1) * state + other + work;
  long double limit;
  std::string what;
  if (!o.maxMemory.empty()) {
    limit = static_cast<long double>(parseBytes(o.maxMemory));
    what = fmt::format("--max-memory {}", o.maxMemory);
  } else {
    uint64_t memory = rt::physicalMemory();
    if (memory == 0) return;
    limit = static_cast<long double>(memory);
    what = fmt::format("the machine's memory ({})", byteText(limit));
  }
  if (need > limit)
    fileError(o.model, "the compiled program needs {}{} ({:.0f} bytes: {} {}{}, inputs and results {}, "
              "work {}) for batches of {} row{}, more than {}",
              workCounted ? "" : "more than ", byteText(need), static_cast<double>(need),
              optimiserState ? "params and optimiser states" : "params", byteText(state), stateCopy ? " twice" : "",
              byteText(other), workCounted ? byteText(work) : std::string("not counted"), batch,
              batch == 1 ? "" : "s", what);
}

std::string inputNames(const Model &m) {
  std::string names;
  for (const InputInfo &in : m.inputs) names += (names.empty() ? "" : ", ") + in.name;
  return names;
}

void needData(const Model &m, const std::string &modelPath, const char *command) {
  fileError(modelPath, "the model has inputs ({}): give `gradc {}` the data with --data FILE",
            inputNames(m), command);
}

void warnNoInputs(const std::string &modelPath, const char *flags) {
  std::cerr << oneLine(fmt::format("{}: warning: the model has no inputs; {} not used", modelPath, flags));
}

uint64_t trainSeed(const rt::TrainState &st, const Options &o, bool warn) {
  if (!st.hasSeed) return o.seed;
  if (warn && o.seedGiven && o.seed != st.seed)
    std::cerr << oneLine(fmt::format("{}: warning: --seed {} is not used: a run resumed from a checkpoint keeps "
                                     "its data order (seed {})", o.init, o.seed, st.seed));
  return st.seed;
}

Status::Status(const std::string &what) : on_(::isatty(2) != 0) {
  if (on_) std::cerr << line(what) << std::flush;
  last_ = std::chrono::steady_clock::now();
}

Status::~Status() {
  if (on_) std::cerr << "\r\x1b[K" << std::flush;
}

void Status::update(const std::string &what) {
  auto now = std::chrono::steady_clock::now();
  if (!on_ || now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  std::cerr << "\r\x1b[K" << line(what) << std::flush;
}

std::string Status::line(const std::string &what) {
  return rt::fitTerminalRow(escapeText(what) + "...", rt::terminalColumns());
}

}  // namespace gradc::driver
