// `gradc predict MODEL --weights W --data F [--out F] [--dtype f32|f64]` (docs/language.md,
// "Command line"): the model's outputs for every row of the data (one batch, like eval; in
// float64 with --dtype f64, as eval), as CSV with a header. The data may hold all the model's
// inputs (a training file) or just those the outputs need (no labels). --out is written whole
// or not at all. Each output must have the batch dim first (one row per sample).
#include <algorithm>
#include <iostream>
#include <map>
#include <sstream>

#include "driver/Pipeline.h"
#include "driver/GradSupport.h"
#include "driver/RunSupport.h"
#include "runtime/Files.h"
#include "runtime/Trainer.h"

namespace gradc::driver {

namespace {

/// Every output must give one row per sample: its first dim is the batch dim (the first dim of
/// the inputs) and its other dims are numbers. A scalar (`mean(z)`), a transposed or flattened
/// batch is reported at the output's expression in its `output` statement (`output o = h` at
/// `h`, not where h was computed, which may be a line that the loss uses as well).
void checkOutputRows(const Model &m, const ir::Function &f, const std::string &modelPath) {
  const ir::Dim batch = m.inputs.front().shape.front();
  for (const ir::Result &r : f.results) {
    const ir::Node &n = f.node(r.value);
    bool rows = !n.shape.empty() && n.shape[0] == batch;
    for (size_t i = 1; rows && i < n.shape.size(); ++i) rows = n.shape[i].isStatic();
    if (rows) continue;
    std::string msg = fmt::format("output {} has shape {}, but `predict` writes one row per sample: "
                                  "its first dim must be the batch dim {} and the others numbers",
                                  r.name, ir::formatShapeForUser(n.shape, f.dimNames),
                                  ir::formatDim(batch, f.dimNames));
    auto loc = m.outputExprLocs.find(r.name);
    if (loc != m.outputExprLocs.end() && loc->second.valid()) userError(loc->second, "{}", msg);
    if (n.loc.valid()) userError(n.loc, "{}", msg);
    fileError(modelPath, "{}", msg);
  }
}

/// The CSV header names an output of one value per sample `NAME` and a wider one `NAME_0 ..
/// NAME_{n-1}`: two outputs may not give the same column name (`p` of shape [B, 2] and `p_1`).
/// Reported at the later output's name.
void checkOutputColumns(const Model &m, const ir::Function &f, const std::string &modelPath) {
  std::map<std::string, std::string> owner;  // column -> output
  for (const ir::Result &r : f.results) {
    const ir::Node &n = f.node(r.value);
    int64_t width = 1;
    for (size_t i = 1; i < n.shape.size(); ++i) width *= n.shape[i].factor;
    for (const std::string &c : rt::predictColumns(r.name, width)) {
      auto [it, fresh] = owner.emplace(c, r.name);
      if (fresh) continue;
      std::string msg = fmt::format("output {} gives predict's CSV the column `{}`, which output {} gives too; "
                                    "rename one of them", r.name, c, it->second);
      auto loc = m.outputLocs.find(r.name);
      if (loc != m.outputLocs.end() && loc->second.valid()) userError(loc->second, "{}", msg);
      fileError(modelPath, "{}", msg);
    }
  }
}

}  // namespace

int runPredict(Options &o, SourceManager &sm) {
  Model m = loadModelFor(sm, o, Float32Use::Other);
  // `--out -` is standard output, as without --out (and as `compile -o -`).
  if (o.out == "-") o.out.clear();
  if (!o.out.empty()) rt::checkWritable(o.out);
  ir::Function f = buildProgram(m, Program::Predict);
  if (f.results.empty()) fileError(o.model, "the model has no `output` to predict");
  if (inputsUsed(f).empty()) fileError(o.model, "the model's outputs do not depend on any input");
  checkOutputRows(m, f, o.model);
  checkOutputColumns(m, f, o.model);
  rt::Dataset data = readDataFor(m, f, o.data, o.dtype == "f64");
  checkOneBatch(m, data, "predict");
  rt::Kernel k = compileProgram(f, o);
  checkMemory(k, data.rows, o, /*stateCopy=*/false);
  rt::TrainState st(k.sig, k.f64);
  st.load(o.weights, modelHash(sm, m));

  int64_t batch = std::max<int64_t>(1, data.rows);
  if (o.out.empty()) {
    rt::predict(k, st, data, batch, std::cout);
    std::cout.flush();
  } else {
    std::ostringstream out;
    rt::predict(k, st, data, batch, out);
    rt::writeFileAtomic(o.out, out.str());
  }
  return 0;
}

}  // namespace gradc::driver
