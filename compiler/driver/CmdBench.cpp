// `gradc bench MODEL [--batch-size N] [--json] [--check-numerics]` (docs/language.md,
// "Command line"): times the compiled step on random data. After a warm-up, every step is timed
// on its own until at least a second and 20 steps have passed; the median is reported. GFLOP/s
// counts 6 × batch × Σ(in × out) over the model's 2-D params (a matmul's forward and its two
// backward products, 2 flops per multiply-add), divided by the median step time. With
// --check-numerics the step is the one `train --check-numerics` runs: compiled in check mode,
// its flag read after every step.
#include <algorithm>
#include <chrono>
#include <iostream>

#include "driver/GradSupport.h"
#include "driver/Pipeline.h"
#include "driver/RunSupport.h"
#include "runtime/Trainer.h"

namespace gradc::driver {

int runBench(Options &o, SourceManager &sm) {
  using Clock = std::chrono::steady_clock;
  Model m = loadModelFor(sm, o, Float32Use::Step);
  bool f64 = o.dtype == "f64";
  // A model that fixes its batch size (an input `[4, 2]`) is timed at that size.
  int64_t fixed = fixedRows(m);
  int64_t batch = m.inputs.empty() ? 1 : fixed >= 0 ? fixed : o.batchSize;
  if (o.batchSizeGiven && m.inputs.empty())
    warnNoInputs(o.model, "--batch-size is");
  else if (o.batchSizeGiven && batch != o.batchSize)
    std::cerr << fmt::format("{}: warning: the model's inputs take batches of exactly {} rows; --batch-size {} "
                             "is not used\n", o.model, batch, o.batchSize);
  double compileMs = 0;
  rt::Kernel k = compileProgram(buildProgram(m, Program::Step), o, &compileMs, o.checkNumerics);
  checkMemory(k, batch, o, /*stateCopy=*/false);

  rt::Dataset data = randomData(m, batch, o.seed);
  rt::TrainState st(k.sig, f64);
  st.initParams(paramSpecs(m), o.seed);
  rt::Batcher batcher(data, batch, f64);
  batcher.gather(rt::epochOrder(batch, 0, 0, false), 0);
  rt::Call call(k, st, m.inputs.empty() ? nullptr : &batcher, batch);
  // lr = 0 keeps the params where they are, so the timing does not drift with the values.
  int64_t nonFinite = 0;
  auto stepOnce = [&](int64_t t) {
    call.run(batch, 0.0, static_cast<double>(t));
    if (o.checkNumerics && !call.checkedFinite()) ++nonFinite;
  };

  int64_t t = 1;
  auto warm = Clock::now();
  for (int i = 0; i < 10 || std::chrono::duration<double>(Clock::now() - warm).count() < 0.2; ++i)
    stepOnce(t++);
  std::vector<double> us;
  auto start = Clock::now();
  while (us.size() < 20 || (std::chrono::duration<double>(Clock::now() - start).count() < 1.0 &&
                            us.size() < 1000000)) {
    auto a = Clock::now();
    stepOnce(t++);
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - a).count());
  }
  std::nth_element(us.begin(), us.begin() + static_cast<long>(us.size() / 2), us.end());
  double median = us[us.size() / 2];

  double flops = 0;
  for (const ParamInfo &p : m.params)
    if (p.shape.size() == 2)
      flops += 6.0 * static_cast<double>(batch) * static_cast<double>(p.shape[0].factor) *
               static_cast<double>(p.shape[1].factor);
  double gflops = median > 0 ? flops / (median * 1e3) : 0;

  if (nonFinite > 0)
    std::cerr << oneLine(fmt::format("{}: warning: {} of the timed steps computed a non-finite value", o.model,
                                     nonFinite));
  if (o.json) {
    std::cout << fmt::format("{{\"us_per_step\": {:.3f}, \"gflops\": {:.3f}, \"compile_ms\": {:.3f}}}\n",
                             median, gflops, compileMs);
  } else {
    std::cout << fmt::format("model {}, batch {}, {}, {} steps timed\n", m.name, batch,
                             f64 ? "float64" : "float32", us.size())
              << fmt::format("step     {:.2f} us (median)\n", median)
              << fmt::format("speed    {:.2f} GFLOP/s\n", gflops)
              << fmt::format("compile  {:.1f} ms\n", compileMs);
  }
  return 0;
}

}  // namespace gradc::driver
