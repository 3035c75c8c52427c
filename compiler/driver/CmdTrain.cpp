// `gradc train MODEL [--data F] [--val F] ...` (SPEC §8): reads and checks all the data
// first, JIT-compiles the step (and the eval program for --val), initialises or loads the
// params, and runs the training loop of runtime/Trainer.h. Without inputs (a plain function
// such as rosenbrock) it runs --steps steps (default 1000).
#include <iostream>

#include "driver/GradSupport.h"
#include "driver/Pipeline.h"
#include "driver/RunSupport.h"
#include "frontend/Frontend.h"
#include "runtime/Distributed.h"
#include "runtime/Trainer.h"

namespace gradc::driver {

int runTrain(Options &o, SourceManager &sm) {
  if (o.distributed || rt::launchedByMpi()) return runTrainDistributed(o, sm);
  Model m = applyFlags(loadModel(sm, o.model), o);
  bool f64 = o.dtype == "f64";

  rt::Dataset data, val;
  bool hasData = !m.inputs.empty();
  if (hasData) {
    if (o.data.empty()) needData(m, o.model, "train");
    data = readData(m, o.data);
    if (!o.val.empty()) val = readData(m, o.val);
  } else if (!o.data.empty() || !o.val.empty()) {
    std::cerr << fmt::format("{}: warning: the model has no inputs; --data and --val are not used\n",
                             o.model);
  }

  rt::Kernel step = compileProgram(buildProgram(m, Program::Step), o);
  rt::Kernel eval;
  bool hasVal = hasData && !o.val.empty();
  if (hasVal) eval = compileProgram(buildProgram(m, Program::Eval), o);

  std::string hash = modelHash(sm, m);
  rt::TrainState st(step.sig, f64);
  if (hasVal) st.include(eval.sig);
  st.initParams(paramSpecs(m), o.seed);
  if (!o.init.empty()) st.load(o.init, hash);

  rt::TrainOptions t;
  t.epochs = o.epochs.value_or(1);
  t.maxSteps = o.steps ? *o.steps : hasData ? -1 : 1000;
  t.batchSize = o.batchSize;
  t.lr = o.lr ? *o.lr : m.optimizer.args.count("lr") ? m.optimizer.args.at("lr") : 0.01;
  // A resumed run keeps the data order of the run it continues.
  t.seed = st.hasSeed ? st.seed : o.seed;
  t.shuffle = !o.noShuffle;
  t.dropLast = o.dropLast;
  t.savePath = o.save;
  t.metricsPath = o.metrics;
  t.modelName = m.name;
  t.modelHash = hash;
  t.modelPath = o.model;
  rt::TrainResult r = rt::train(step, hasVal ? &eval : nullptr, st, hasData ? &data : nullptr,
                                hasVal ? &val : nullptr, t, std::cout);
  return r.status;
}

}  // namespace gradc::driver
