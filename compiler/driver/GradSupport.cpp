// The pieces shared by `gradc grad` and `gradc gradcheck` (see GradSupport.h).
#include "driver/GradSupport.h"

#include <bit>
#include <cstring>
#include <memory>

#include "driver/Pipeline.h"
#include "runtime/Init.h"
#include "runtime/Safetensors.h"

namespace gradc::driver {

namespace {

std::vector<int64_t> staticShape(const ir::Shape &s) {
  std::vector<int64_t> out;
  for (const ir::Dim &d : s) out.push_back(d.factor);
  return out;
}

int64_t product(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// Random inputs and the shuffles use other streams than the params (Init.h).
constexpr uint64_t kDataStream = uint64_t(1) << 41;

}  // namespace

int64_t sampleWidth(const InputInfo &in) {
  int64_t w = 1;
  for (size_t i = 1; i < in.shape.size(); ++i) {
    if (!in.shape[i].isStatic())
      userError(in.loc, "input {} has a symbolic dim after the batch dim, which data cannot size", in.name);
    w *= in.shape[i].factor;
  }
  return w;
}

ir::Function gradientProgram(const Model &m, const Options &o) {
  return buildProgram(applyFlags(m, o), Program::Grad);
}

ir::Function lossProgram(const Model &m) { return buildProgram(m, Program::Eval); }

rt::Kernel gradientKernel(const ir::Function &f, const Options &o, bool f64) {
  Options with = o;
  with.dtype = f64 ? "f64" : "f32";
  return compileProgram(f, with);
}

Weights readWeights(const Model &m, const std::string &path, const std::string &modelHash) {
  rt::TensorFile file = rt::readSafetensors(path);
  Weights w;
  for (const ParamInfo &p : m.params) {
    const rt::NamedTensor *t = &file.param(path, p.name, staticShape(p.shape), modelHash);
    const rt::NamedTensor *exact = t->f64 ? t : rt::exactCopy(file, *t);
    if (exact) w[p.name] = exact->data64;
    else w[p.name].assign(t->data.begin(), t->data.end());
  }
  // Every param fits, but the model file was edited since: used, with the warning eval and
  // predict give (TrainState::load).
  file.warnIfOtherModel(path, modelHash);
  return w;
}

Weights initialWeights(const Model &m, uint64_t seed) {
  Weights w;
  for (size_t i = 0; i < m.params.size(); ++i) {
    const ParamInfo &p = m.params[i];
    std::vector<int64_t> shape = staticShape(p.shape);
    std::vector<double> &v = w[p.name];
    v.resize(static_cast<size_t>(product(shape)));
    rt::initParam(v.data(), static_cast<int>(p.init), p.initArgs, shape, seed, static_cast<int>(i));
  }
  return w;
}

int64_t fixedRows(const Model &m) {
  for (const InputInfo &in : m.inputs)
    if (in.shape.at(0).isStatic()) return in.shape[0].factor;
  return -1;
}

void checkOneBatch(const Model &m, const rt::Dataset &data, const char *command) {
  for (const InputInfo &in : m.inputs) {
    const ir::Dim &d = in.shape.at(0);
    if (d.isStatic() && d.factor != data.rows)
      fileError(data.path, "the model's inputs take batches of exactly {} rows (input {} has the first "
                "dim {}); `gradc {}` takes the whole file as one batch, and it has {} rows",
                d.factor, in.name, d.factor, command, data.rows);
  }
}

rt::Dataset readData(const Model &m, const std::string &path, bool f64) {
  std::vector<rt::InputSpec> specs;
  for (const InputInfo &in : m.inputs)
    specs.push_back({in.name, in.dtype == ir::DType::I32, sampleWidth(in), in.classes});
  return rt::readCsv(path, specs, f64);
}

rt::Dataset randomData(const Model &m, int64_t rows, uint64_t seed) {
  rt::Dataset ds;
  ds.path = "(random data)";
  ds.rows = rows;
  for (size_t i = 0; i < m.inputs.size(); ++i) {
    const InputInfo &in = m.inputs[i];
    rt::Rng rng(seed, kDataStream + i);
    rt::Column c;
    c.name = in.name;
    c.isInt = in.dtype == ir::DType::I32;
    c.width = sampleWidth(in);
    size_t n = static_cast<size_t>(rows * c.width);
    uint64_t classes = in.classes > 0 ? static_cast<uint64_t>(in.classes) : 2;
    for (size_t j = 0; j < n; ++j) {
      if (c.isInt) c.i.push_back(static_cast<int32_t>(rng.below(classes)));
      else c.f.push_back(static_cast<float>(rng.uniform()));
    }
    ds.inputs.push_back(std::move(c));
  }
  return ds;
}

KernelCall::KernelCall(rt::Kernel k, const Model &m, const rt::Dataset &data) : k_(std::move(k)) {
  // The batch dim of every input is bound to the number of rows; other dims are unused.
  dims_.assign(k_.sig.dimNames.size(), 1);
  for (const InputInfo &in : m.inputs) {
    const ir::Dim &d = in.shape.at(0);
    if (d.factor == 1 && std::has_single_bit(d.syms))
      dims_.at(static_cast<size_t>(std::countr_zero(d.syms))) = data.rows;
  }
  for (const rt::Slot &s : k_.sig.slots) {
    size_t elem = s.isInt ? 4 : k_.f64 ? 8 : 4;
    bufs_.emplace_back(static_cast<size_t>(s.elements(dims_.data())) * elem + 8, '\0');
  }
  for (auto &b : bufs_) ptrs_.push_back(b.data());
  work_.resize(k_.workBytes(dims_.data()) + 64);
  for (size_t i = 0; i < m.inputs.size(); ++i) {
    int s = k_.sig.find(rt::SlotKind::Input, m.inputs[i].name);
    if (s < 0) continue;
    const rt::Column &c = data.inputs.at(i);
    size_t values = c.isInt ? c.i.size() : c.d.empty() ? c.f.size() : c.d.size();
    GRADC_ASSERT(static_cast<int64_t>(values) == k_.sig.slots[static_cast<size_t>(s)].elements(dims_.data()),
                 "input {} has {} values for its slot", c.name, values);
    // Float values (read as floats, or as doubles for a float64 run) in the kernel's type.
    auto copy = [&](const auto &values) {
      for (size_t j = 0; j < values.size(); ++j) {
        if (k_.f64) static_cast<double *>(slot(static_cast<size_t>(s)))[j] = values[j];
        else static_cast<float *>(slot(static_cast<size_t>(s)))[j] = static_cast<float>(values[j]);
      }
    };
    if (c.isInt) std::memcpy(slot(static_cast<size_t>(s)), c.i.data(), c.i.size() * sizeof(int32_t));
    else if (!c.d.empty()) copy(c.d);
    else copy(c.f);
  }
}

void KernelCall::setParams(const Weights &w) {
  for (size_t s = 0; s < k_.sig.slots.size(); ++s) {
    if (k_.sig.slots[s].kind != rt::SlotKind::Param) continue;
    const std::vector<double> &v = w.at(k_.sig.slots[s].name);
    for (size_t j = 0; j < v.size(); ++j) {
      if (k_.f64) static_cast<double *>(slot(s))[j] = v[j];
      else static_cast<float *>(slot(s))[j] = static_cast<float>(v[j]);
    }
  }
}

void KernelCall::setParam(const std::string &name, size_t i, double v) {
  for (size_t s = 0; s < k_.sig.slots.size(); ++s) {
    if (k_.sig.slots[s].kind != rt::SlotKind::Param || k_.sig.slots[s].name != name) continue;
    if (k_.f64) static_cast<double *>(slot(s))[i] = v;
    else static_cast<float *>(slot(s))[i] = static_cast<float>(v);
  }
}

void KernelCall::run() {
  void *work = work_.data();
  size_t space = work_.size();
  k_.call(ptrs_.data(), dims_.data(), std::align(64, 1, work, space));
}

std::vector<double> KernelCall::result(rt::SlotKind kind, const std::string &name) const {
  int s = k_.sig.find(kind, name);
  GRADC_ASSERT(s >= 0, "the kernel has no result {}", name);
  const rt::Slot &slot = k_.sig.slots[static_cast<size_t>(s)];
  std::vector<double> out(static_cast<size_t>(slot.elements(dims_.data())));
  const char *p = bufs_[static_cast<size_t>(s)].data();
  for (size_t j = 0; j < out.size(); ++j)
    out[j] = k_.f64 ? reinterpret_cast<const double *>(p)[j] : reinterpret_cast<const float *>(p)[j];
  return out;
}

}  // namespace gradc::driver
