// `gradc eval MODEL --weights W --data F [--json] [--dtype f32|f64]` (docs/language.md,
// "Command line"): the loss and every metric over the data file, seen as one batch; a
// `NAME VALUE` line each, or one JSON object. With --dtype f64 the program runs in float64, as
// `train --dtype f64` trains: the data read as doubles, the params from their exact F64 copies
// when the file holds them.
#include <cmath>
#include <iostream>

#include <nlohmann/json.hpp>

#include "driver/Pipeline.h"
#include "driver/GradSupport.h"
#include "driver/RunSupport.h"
#include "runtime/Trainer.h"

namespace gradc::driver {

int runEval(Options &o, SourceManager &sm) {
  Model m = loadModelFor(sm, o, Float32Use::Other);
  ir::Function f = buildProgram(m, Program::Eval);
  rt::Dataset data;
  if (m.inputs.empty() && !o.data.empty()) warnNoInputs(o.model, "--data is");
  // --data is eval's own flag, which only a model without inputs goes without (as predict's).
  if (!m.inputs.empty() && o.data.empty())
    throw FlagError(fmt::format("--data is required: the model has inputs ({})", inputNames(m)));
  if (!m.inputs.empty()) {
    data = readDataFor(m, f, o.data, o.dtype == "f64");
    checkOneBatch(m, data, "eval");
  }
  rt::Kernel k = compileProgram(f, o);
  checkMemory(k, data.rows, o, /*stateCopy=*/false);
  rt::TrainState st(k.sig, k.f64);
  st.load(o.weights, modelHash(sm, m));

  rt::EvalResult r;
  if (m.inputs.empty()) r = rt::evaluateWithoutInputs(k, st);
  else r = rt::evaluate(k, st, data, data.rows);

  if (o.json) {
    nlohmann::ordered_json j;
    j["loss"] = r.loss;
    for (size_t i = 0; i < r.metricNames.size(); ++i) j[r.metricNames[i]] = r.metrics[i];
    std::cout << j.dump() << "\n";
  } else {
    // NaN is `nan` whatever its sign bit, as Python prints it.
    auto value = [](double v) { return std::isnan(v) ? std::string("nan") : fmt::format("{}", v); };
    std::cout << fmt::format("loss {}\n", value(r.loss));
    for (size_t i = 0; i < r.metricNames.size(); ++i)
      std::cout << fmt::format("{} {}\n", r.metricNames[i], value(r.metrics[i]));
  }
  return 0;
}

}  // namespace gradc::driver
