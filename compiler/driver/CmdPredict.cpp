// `gradc predict MODEL --weights W --data F [--out F]` (SPEC §8): the model's outputs for
// every row of the data (one batch, like eval), as CSV with a header. The data may hold all the model's inputs
// (a training file) or just those the outputs need (no labels). --out is written whole or
// not at all.
#include <algorithm>
#include <iostream>
#include <sstream>

#include "driver/Pipeline.h"
#include "driver/RunSupport.h"
#include "frontend/Frontend.h"
#include "runtime/Files.h"
#include "runtime/Trainer.h"

namespace gradc::driver {

int runPredict(Options &o, SourceManager &sm) {
  Model m = loadModel(sm, o.model);
  ir::Function f = buildProgram(m, Program::Predict);
  if (f.results.empty()) fileError(o.model, "the model has no `output` to predict");
  if (inputsUsed(f).empty()) fileError(o.model, "the model's outputs do not depend on any input");
  rt::Dataset data = readDataFor(m, f, o.data);
  rt::Kernel k = compileProgram(f, o);
  checkMemory(k, data.rows, o);
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
