// The fused step: the gradient function's nodes, then the optimiser update of every param.
// Each update is PyTorch 1.13's single-tensor rule (torch/optim/*.py), written as IR.
#include "autodiff/Step.h"

#include <cmath>
#include <functional>
#include <map>
#include <string>

#include "ir/Builder.h"

namespace gradc::autodiff {

using namespace ir;

namespace {

// 1 - x, rounded to 15 significant digits so that 1 - 0.9 reads 0.1 in the printed IR
// (the same float32 value as PyTorch's 1 - beta1; in float64 a change below 1e-15).
double oneMinus(double x) { return std::stod(fmt::format("{:.15g}", 1 - x)); }

double arg(const Model &m, const std::string &key) {
  auto it = m.optimizer.args.find(key);
  if (it != m.optimizer.args.end()) return it->second;
  const auto &defaults = optimizerDefaults(m.optimizer.kind);
  auto d = defaults.find(key);
  return d == defaults.end() ? 0.0 : d->second;
}

// The state names of one param, in layout order.
std::vector<std::string> stateSuffixes(const Model &m) {
  const std::string &k = m.optimizer.kind;
  if (k == "sgd") return arg(m, "momentum") != 0 ? std::vector<std::string>{"buf"} : std::vector<std::string>{};
  if (k == "adam" || k == "adamw") return {"m", "v"};
  if (k == "rmsprop") return arg(m, "momentum") > 0 ? std::vector<std::string>{"sq", "mom"} : std::vector<std::string>{"sq"};
  if (k == "adagrad") return {"sq"};
  internalError("unknown optimiser {}", k);
}

// Builds the update of one param; name() sets the source name of the values made next.
// Values are made one statement at a time where two operands of one call would each make
// some: C++ leaves the order of a call's arguments to the compiler, and the order of the
// values is the numbering that `gradc inspect` prints.
struct Update {
  const Model &m;
  Builder &b;
  ValueId lr, t;
  std::map<std::string, ValueId> &newStates;  // state name -> its new value
  const std::map<std::string, ValueId> &states;
  // Scalars shared by every param's update, made at first use.
  ValueId stepSize = kNoValue, bc2Sqrt = kNoValue, decay = kNoValue;

  ValueId c(double v) { return b.constant(v); }
  void name(const std::string &n) { b.srcName = n; }
  ValueId state(const std::string &p, const char *s) { return states.at(p + "." + s); }

  // sgd:  d = g + wd*p;  buf = momentum*buf + (1-dampening)*d  (buf = d at t = 1);
  //       d = nesterov ? d + momentum*buf : buf;  p = p - lr*d
  ValueId sgd(const std::string &p, ValueId param, ValueId g) {
    double wd = arg(m, "weight_decay"), mom = arg(m, "momentum"), damp = arg(m, "dampening");
    ValueId d = g;
    if (wd != 0) {
      name(p + ".decayed_grad");
      d = b.add(g, b.mul(c(wd), param));
    }
    if (mom != 0) {
      name(p + ".buf.new");
      ValueId buf = b.mul(c(mom), state(p, "buf"));
      ValueId buf1 = b.add(buf, damp == 0 ? d : b.mul(c(oneMinus(damp)), d));
      // PyTorch's buffer starts as the first gradient itself, undampened. The state starts
      // at zero, so without dampening momentum*0 + d is already d; with dampening the first
      // step takes d explicitly.
      if (damp != 0) buf1 = b.where(b.binary(Op::Eq, t, c(1)), d, buf1);
      newStates[p + ".buf"] = buf1;
      if (arg(m, "nesterov") != 0) {
        name(p + ".nesterov_grad");
        d = b.add(d, b.mul(c(mom), buf1));
      } else {
        d = buf1;
      }
    }
    name(p + ".new");
    return b.sub(param, b.mul(lr, d));
  }

  // Adam's bias correction 1 - beta^t, to the rounding of the step's float type however
  // close beta is to 1, as PyTorch computes it in double: 1 - beta^t = -expm1(t*log(beta)),
  // with log(beta) taken here in double and -expm1(x) = -2u/(1 - u), u = tanh(x/2) (no
  // cancellation for x <= 0). `1 - pow(beta, t)` in float32 starts from beta rounded to
  // float32, 1.3e-8 off for 0.999: 1.3e-5 of 1 - 0.999, and 1e-3 of 1 - 0.99999.
  ValueId biasCorrection(double beta) {
    if (beta == 0) return c(1);
    ValueId u = b.unary(Op::Tanh, b.mul(t, c(std::log(beta) / 2)));
    ValueId den = b.sub(c(1), u);
    return b.div(b.mul(c(-2), u), den);
  }

  // adam:  g = g + wd*p (adam only, L2);  p = p * (1 - lr*wd) (adamw, decoupled)
  //        m = beta1*m + (1-beta1)*g;  v = beta2*v + (1-beta2)*g*g
  //        p = p - lr/(1-beta1^t) * m / (sqrt(v)/sqrt(1-beta2^t) + eps)
  ValueId adam(const std::string &p, ValueId param, ValueId g, bool decoupled) {
    double b1 = arg(m, "beta1"), b2 = arg(m, "beta2"), eps = arg(m, "eps"), wd = arg(m, "weight_decay");
    if (wd != 0 && !decoupled) {
      name(p + ".decayed_grad");
      g = b.add(g, b.mul(c(wd), param));
    }
    if (wd != 0 && decoupled) {
      if (decay == kNoValue) {
        name("decay");
        ValueId lrWd = b.mul(lr, c(wd));
        decay = b.sub(c(1), lrWd);
      }
      name(p + ".decayed");
      param = b.mul(param, decay);
    }
    name(p + ".m.new");
    ValueId newPart = b.mul(c(oneMinus(b1)), g);
    ValueId m1 = b.add(b.mul(c(b1), state(p, "m")), newPart);
    name(p + ".v.new");
    ValueId g2 = b.mul(g, g);
    ValueId newSquare = b.mul(c(oneMinus(b2)), g2);
    ValueId v1 = b.add(b.mul(c(b2), state(p, "v")), newSquare);
    newStates[p + ".m"] = m1;
    newStates[p + ".v"] = v1;
    if (stepSize == kNoValue) {
      name("step_size");
      stepSize = b.div(lr, biasCorrection(b1));
      name("bias_correction2_sqrt");
      bc2Sqrt = b.unary(Op::Sqrt, biasCorrection(b2));
    }
    name(p + ".denom");
    ValueId epsilon = c(eps);
    ValueId denom = b.add(b.div(b.unary(Op::Sqrt, v1), bc2Sqrt), epsilon);
    name(p + ".new");
    return b.sub(param, b.mul(stepSize, b.div(m1, denom)));
  }

  // rmsprop:  sq = alpha*sq + (1-alpha)*g*g;  avg = sqrt(sq) + eps
  //           momentum > 0: mom = momentum*mom + g/avg; p = p - lr*mom
  //           else:         p = p - lr * g/avg
  ValueId rmsprop(const std::string &p, ValueId param, ValueId g) {
    double alpha = arg(m, "alpha"), eps = arg(m, "eps"), mom = arg(m, "momentum");
    name(p + ".sq.new");
    ValueId g2 = b.mul(g, g);
    ValueId newSquare = b.mul(c(oneMinus(alpha)), g2);
    ValueId sq = b.add(b.mul(c(alpha), state(p, "sq")), newSquare);
    newStates[p + ".sq"] = sq;
    name(p + ".avg");
    ValueId epsilon = c(eps);
    ValueId avg = b.add(b.unary(Op::Sqrt, sq), epsilon);
    ValueId d;
    if (mom > 0) {
      name(p + ".mom.new");
      ValueId scaled = b.div(g, avg);
      d = b.add(b.mul(c(mom), state(p, "mom")), scaled);
      newStates[p + ".mom"] = d;
    } else {
      d = b.div(g, avg);
    }
    name(p + ".new");
    return b.sub(param, b.mul(lr, d));
  }

  // adagrad (lr_decay 0, initial accumulator 0):  sq = sq + g*g;  p = p - lr * g/(sqrt(sq)+eps)
  ValueId adagrad(const std::string &p, ValueId param, ValueId g) {
    double eps = arg(m, "eps");
    name(p + ".sq.new");
    ValueId sq = b.add(state(p, "sq"), b.mul(g, g));
    newStates[p + ".sq"] = sq;
    name(p + ".std");
    ValueId epsilon = c(eps);
    ValueId std_ = b.add(b.unary(Op::Sqrt, sq), epsilon);
    name(p + ".new");
    return b.sub(param, b.mul(lr, b.div(g, std_)));
  }
};

}  // namespace

std::vector<std::pair<std::string, Shape>> optimizerStates(const Model &m) {
  std::vector<std::pair<std::string, Shape>> out;
  std::vector<std::string> suffixes = stateSuffixes(m);
  for (const ParamInfo &p : m.params)
    for (const std::string &s : suffixes) out.push_back({p.name + "." + s, p.shape});
  return out;
}

namespace {

// The optimiser lowering shared by buildStep and buildUpdate: appends to `b` the update of
// every param (its leaf in `param`, its gradient in `grad`) and returns the results
// `param NAME` per param, then `state NAME` per state (in optimizerStates order).
std::vector<Result> lowerUpdate(const Model &m, Builder &b,
                                const std::function<ValueId(const std::string &)> &param,
                                const std::function<ValueId(const std::string &)> &grad,
                                const std::map<std::string, ValueId> &states, ValueId lr, ValueId t) {
  std::map<std::string, ValueId> newStates;
  Update u{m, b, lr, t, newStates, states};
  std::vector<Result> results;
  for (const ParamInfo &p : m.params) {
    ValueId w = param(p.name), g = grad(p.name);
    if (w == kNoValue || g == kNoValue)
      internalError("optimiser update: no param or gradient for {}", p.name);
    if (!p.reachesLoss) {
      // torch.optim skips a param whose .grad is None: no update, no weight decay, its
      // state unchanged (zero).
      for (const std::string &suffix : stateSuffixes(m))
        newStates[p.name + "." + suffix] = u.state(p.name, suffix.c_str());
      results.push_back({p.name, w, ResultKind::NewParam});
      continue;
    }
    const std::string &k = m.optimizer.kind;
    ValueId next = k == "sgd"       ? u.sgd(p.name, w, g)
                   : k == "adam"    ? u.adam(p.name, w, g, false)
                   : k == "adamw"   ? u.adam(p.name, w, g, true)
                   : k == "rmsprop" ? u.rmsprop(p.name, w, g)
                                    : u.adagrad(p.name, w, g);
    results.push_back({p.name, next, ResultKind::NewParam});
  }
  for (auto &[name, shape] : optimizerStates(m))
    results.push_back({name, newStates.at(name), ResultKind::NewState});
  return results;
}

std::map<std::string, ValueId> stateLeaves(const Model &m, Builder &b) {
  std::map<std::string, ValueId> states;
  for (auto &[name, shape] : optimizerStates(m)) states[name] = b.state(name, shape);
  return states;
}

}  // namespace

Function buildStep(const Model &m, const Function &grad) {
  Function s;
  s.name = m.forward.name.empty() ? grad.name + ".step" : m.forward.name + ".step";
  s.dimNames = grad.dimNames;
  Builder b(s);
  std::vector<ValueId> map(static_cast<size_t>(grad.size()), kNoValue);
  auto copy = [&](ValueId v) {
    Node n = grad.node(v);
    for (ValueId &o : n.operands) o = map[static_cast<size_t>(o)];
    map[static_cast<size_t>(v)] = b.addUnchecked(std::move(n));
  };

  // Arguments: inputs and params as in grad, then the states, lr and t.
  std::vector<ValueId> gradArgs = grad.arguments();
  for (ValueId v : gradArgs) copy(v);
  b.loc = m.optimizer.loc;
  b.callLoc = {};
  std::map<std::string, ValueId> states = stateLeaves(m, b);
  ValueId lr = b.hyper("lr"), t = b.hyper("t");
  for (ValueId v = 0; v < grad.size(); ++v)
    if (map[static_cast<size_t>(v)] == kNoValue) copy(v);

  std::vector<Result> updates = lowerUpdate(
      m, b, [&](const std::string &p) { return s.findArgument(Op::Param, p); },
      [&](const std::string &p) {
        ValueId g = grad.findResult(ResultKind::Grad, p);
        return g == kNoValue ? kNoValue : map[static_cast<size_t>(g)];
      },
      states, lr, t);

  for (const Result &r : grad.results)
    if (r.kind != ResultKind::Grad) s.results.push_back({r.name, map[static_cast<size_t>(r.value)], r.kind});
  for (const Result &r : updates) s.results.push_back(r);
  verify(s);
  return s;
}

Function buildUpdate(const Model &m, const Function &grad) {
  Function u;
  u.name = (m.forward.name.empty() ? grad.name : m.forward.name) + ".update";
  Builder b(u);
  b.loc = m.optimizer.loc;
  b.callLoc = {};
  std::map<std::string, ValueId> params, grads;
  for (ValueId v : grad.arguments()) {
    const Node &n = grad.node(v);
    if (n.op == Op::Param) params[n.name] = b.param(n.name, n.shape);
  }
  std::map<std::string, ValueId> states = stateLeaves(m, b);
  ValueId lr = b.hyper("lr"), t = b.hyper("t");
  for (const ParamInfo &p : m.params) {
    ValueId g = grad.findResult(ResultKind::Grad, p.name);
    if (g == kNoValue || !params.count(p.name))
      internalError("buildUpdate: the gradient function has no param or grad {}", p.name);
    grads[p.name] = b.input(gradInputName(p.name), DType::F32, grad.node(g).shape);
  }
  auto find = [](const std::map<std::string, ValueId> &in) {
    return [&in](const std::string &p) { return in.at(p); };
  };
  u.results = lowerUpdate(m, b, find(params), find(grads), states, lr, t);
  verify(u);
  return u;
}

std::string gradInputName(const std::string &param) { return "grad." + param; }

}  // namespace gradc::autodiff
