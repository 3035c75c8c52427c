// Shared pieces of train, eval, predict and bench (see RunSupport.h).
#include "driver/RunSupport.h"

#include <algorithm>

#include "driver/GradSupport.h"

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

rt::Dataset readDataFor(const Model &m, const ir::Function &f, const std::string &path) {
  std::vector<std::string> used = inputsUsed(f);
  try {
    return readData(m, path);
  } catch (const UserError &) {
    if (used.size() == m.inputs.size()) throw;
  }
  Model sub = m;
  std::erase_if(sub.inputs, [&](const InputInfo &in) {
    return std::find(used.begin(), used.end(), in.name) == used.end();
  });
  rt::Dataset ds;
  try {
    ds = readData(sub, path);
  } catch (const UserError &) {
    return readData(m, path);  // report the error of the full layout
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
    for (size_t i = 1; i < in.shape.size(); ++i) c.width *= in.shape[i].factor;
    if (c.isInt) c.i.assign(static_cast<size_t>(ds.rows * c.width), 0);
    else c.f.assign(static_cast<size_t>(ds.rows * c.width), 0.0f);
    padded.inputs.push_back(std::move(c));
  }
  return padded;
}

void needData(const Model &m, const std::string &modelPath, const char *command) {
  std::string names;
  for (const InputInfo &in : m.inputs) names += (names.empty() ? "" : ", ") + in.name;
  fileError(modelPath, "the model has inputs ({}): give `gradc {}` the data with --data FILE",
            names, command);
}

}  // namespace gradc::driver
