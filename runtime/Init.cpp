// Initialisers and the portable random generator (see Init.h for the definitions).
#include "runtime/Init.h"

#include <cmath>
#include <stdexcept>

#include "support/Diagnostics.h"

namespace gradc::rt {

namespace {

uint64_t splitmix64(uint64_t &x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

int64_t product(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

}  // namespace

Rng::Rng(uint64_t seed, uint64_t stream) {
  uint64_t x = seed;
  uint64_t mix = splitmix64(x) ^ stream * 0xD1B54A32D192ED03ull;
  for (uint64_t &s : s_) s = splitmix64(mix);
}

uint64_t Rng::next() {
  uint64_t result = rotl(s_[1] * 5, 7) * 9;
  uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

// Marsaglia's polar method: (u, v) uniform in the unit disc, s = u² + v²; then
// u·sqrt(-2 ln s / s) and v·sqrt(-2 ln s / s) are two independent N(0, 1) values.
double Rng::normal() {
  if (hasSpare_) {
    hasSpare_ = false;
    return spare_;
  }
  double u, v, s;
  do {
    u = 2 * uniform() - 1;
    v = 2 * uniform() - 1;
    s = u * u + v * v;
  } while (s >= 1 || s == 0);
  double f = std::sqrt(-2 * std::log(s) / s);
  spare_ = v * f;
  hasSpare_ = true;
  return u * f;
}

uint64_t Rng::below(uint64_t n) {
  unsigned __int128 m = static_cast<unsigned __int128>(next()) * n;
  uint64_t low = static_cast<uint64_t>(m);
  if (low < n) {
    uint64_t threshold = -n % n;
    while (low < threshold) {
      m = static_cast<unsigned __int128>(next()) * n;
      low = static_cast<uint64_t>(m);
    }
  }
  return static_cast<uint64_t>(m >> 64);
}

Fans fans(const std::vector<int64_t> &shape) {
  if (shape.size() < 2) {
    double n = static_cast<double>(product(shape));
    return {n, n};
  }
  double receptive = 1;
  for (size_t i = 2; i < shape.size(); ++i) receptive *= static_cast<double>(shape[i]);
  return {static_cast<double>(shape[0]) * receptive, static_cast<double>(shape[1]) * receptive};
}

void initParam(double *out, int kind, const std::vector<double> &args,
               const std::vector<int64_t> &shape, uint64_t seed, int paramIndex) {
  int64_t n = product(shape);
  auto arg = [&](size_t i) {
    GRADC_ASSERT(i < args.size(), "initialiser {} needs {} arguments, has {}", kind, i + 1,
                 args.size());
    return args[i];
  };
  Rng rng(seed, static_cast<uint64_t>(paramIndex));
  switch (static_cast<Init>(kind)) {
  case Init::Zeros:
    for (int64_t i = 0; i < n; ++i) out[i] = 0;
    return;
  case Init::Ones:
    for (int64_t i = 0; i < n; ++i) out[i] = 1;
    return;
  case Init::Const: {
    double v = arg(0);
    for (int64_t i = 0; i < n; ++i) out[i] = v;
    return;
  }
  case Init::Normal: {
    double mean = arg(0), std = arg(1);
    for (int64_t i = 0; i < n; ++i) out[i] = mean + std * rng.normal();
    return;
  }
  case Init::Uniform: {
    double lo = arg(0), hi = arg(1);
    for (int64_t i = 0; i < n; ++i) out[i] = lo + (hi - lo) * rng.uniform();
    return;
  }
  case Init::Glorot: {
    Fans f = fans(shape);
    double a = std::sqrt(6.0 / (f.in + f.out));
    for (int64_t i = 0; i < n; ++i) out[i] = a * (2 * rng.uniform() - 1);
    return;
  }
  case Init::He: {
    double std = std::sqrt(2.0 / fans(shape).in);
    for (int64_t i = 0; i < n; ++i) out[i] = std * rng.normal();
    return;
  }
  }
  internalError("unknown initialiser kind {}", kind);
}

void initParam(float *out, int kind, const std::vector<double> &args,
               const std::vector<int64_t> &shape, uint64_t seed, int paramIndex) {
  std::vector<double> tmp(static_cast<size_t>(product(shape)));
  initParam(tmp.data(), kind, args, shape, seed, paramIndex);
  for (size_t i = 0; i < tmp.size(); ++i) out[i] = static_cast<float>(tmp[i]);
}

}  // namespace gradc::rt
