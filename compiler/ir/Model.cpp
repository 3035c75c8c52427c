#include "ir/Model.h"

namespace gradc {

namespace {
struct OptSpec {
  std::string name;
  // The arguments with their defaults, in the documented order (docs/language.md, "Optimisers").
  std::vector<std::pair<std::string, double>> args;
};
const std::vector<OptSpec> &optSpecs() {
  static const std::vector<OptSpec> specs = {
      {"sgd", {{"lr", 0.01}, {"momentum", 0}, {"dampening", 0}, {"nesterov", 0}, {"weight_decay", 0}}},
      {"adam", {{"lr", 0.001}, {"beta1", 0.9}, {"beta2", 0.999}, {"eps", 1e-8}, {"weight_decay", 0}}},
      {"adamw", {{"lr", 0.001}, {"beta1", 0.9}, {"beta2", 0.999}, {"eps", 1e-8}, {"weight_decay", 0.01}}},
      {"rmsprop", {{"lr", 0.01}, {"alpha", 0.99}, {"eps", 1e-8}, {"momentum", 0}}},
      {"adagrad", {{"lr", 0.01}, {"eps", 1e-10}}},
  };
  return specs;
}
}  // namespace

const std::map<std::string, double> &optimizerDefaults(const std::string &kind) {
  static const std::map<std::string, std::map<std::string, double>> table = [] {
    std::map<std::string, std::map<std::string, double>> t;
    for (const OptSpec &s : optSpecs())
      for (auto &[k, v] : s.args) t[s.name][k] = v;
    return t;
  }();
  static const std::map<std::string, double> empty;
  auto it = table.find(kind);
  return it == table.end() ? empty : it->second;
}

const std::vector<std::string> &optimizerNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const OptSpec &s : optSpecs()) n.push_back(s.name);
    return n;
  }();
  return names;
}

const std::vector<std::string> &optimizerArgOrder(const std::string &kind) {
  static const std::map<std::string, std::vector<std::string>> table = [] {
    std::map<std::string, std::vector<std::string>> t;
    for (const OptSpec &s : optSpecs())
      for (auto &[k, v] : s.args) t[s.name].push_back(k);
    return t;
  }();
  static const std::vector<std::string> empty;
  auto it = table.find(kind);
  return it == table.end() ? empty : it->second;
}

}  // namespace gradc
