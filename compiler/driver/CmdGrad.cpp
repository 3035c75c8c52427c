// `gradc grad MODEL --weights W [--data F] --out G` (docs/language.md, "Command line"): the
// loss and the gradient of every param on the data as one batch, written as an F32 safetensors
// file with `loss` (shape []) and one tensor per param under its name. Nothing is written on an
// error. `--out -` is standard output (refused on a terminal: main.cpp).
#include "driver/GradSupport.h"
#include "driver/Pipeline.h"
#include "driver/RunSupport.h"
#include "runtime/Files.h"
#include "runtime/Safetensors.h"

namespace gradc::driver {

int runGrad(Options &o, SourceManager &sm) {
  Model m = loadModelFor(sm, o, Float32Use::Other);
  if (o.out != "-") rt::checkWritable(o.out);
  Weights w = readWeights(m, o.weights, modelHash(sm, m));
  rt::Dataset data;
  if (!o.data.empty() && m.inputs.empty()) {
    warnNoInputs(o.model, "--data is");
  } else if (!o.data.empty()) {
    data = readData(m, o.data, o.dtype == "f64");
    checkOneBatch(m, data, "grad");
  } else if (!m.inputs.empty()) {
    needData(m, o.model, "grad");
  }
  ir::Function g = gradientProgram(m, o);
  // The gradient is computed in the --dtype of the command (f32 by default), written as F32.
  KernelCall call(gradientKernel(g, o, o.dtype == "f64"), m, data);
  call.setParams(w);
  call.run();

  rt::TensorFile out;
  double loss = call.result(rt::SlotKind::Loss, "loss").at(0);
  out.tensors.push_back({"loss", {}, {static_cast<float>(loss)}});
  for (const ParamInfo &p : m.params) {
    rt::NamedTensor t;
    t.name = p.name;
    for (const ir::Dim &d : p.shape) t.shape.push_back(d.factor);
    for (double v : call.result(rt::SlotKind::Grad, p.name)) t.data.push_back(static_cast<float>(v));
    out.tensors.push_back(std::move(t));
  }
  out.metadata["gradc.model"] = m.name;
  if (o.out == "-") writeStandardOutput(rt::safetensorsBytes(out));
  else rt::writeSafetensors(o.out, out);
  return 0;
}

}  // namespace gradc::driver
