// Parameter initialisers (docs/language.md, "Statements") and the random generator behind them
// and behind the shuffling of batches. Everything is computed by gradc's own code (xoshiro256**
// seeded by splitmix64, Marsaglia's polar form of Box–Muller, Lemire's bounded integers), so a
// seed gives the same weights and the same data order on every platform and compiler.
//
// Fans follow PyTorch's definitions, for gradc's layout: a weight W is [in, out] (x @ W),
// where PyTorch's Linear weight is [out, in]. So for a shape [d0, d1, d2, ...]
//   fan_in  = d0 * d2 * d3 * ...     fan_out = d1 * d2 * d3 * ...
//   glorot: U(-a, a) with a = sqrt(6 / (fan_in + fan_out))    (xavier_uniform_, gain 1)
//   he:     N(0, std) with std = sqrt(2 / fan_in)               (kaiming_normal_, fan_in, relu)
// Tensors of fewer than 2 dims (the front end refuses glorot/he for them) use their element
// count for both fans.
#pragma once

#include <cstdint>
#include <vector>

namespace gradc::rt {

/// Mirrors gradc::InitKind (ir/Model.h), in the same order, so a cast converts.
enum class Init : int { Zeros, Ones, Const, Normal, Uniform, Glorot, He };

/// xoshiro256** (Blackman and Vigna), its state filled by splitmix64 from (seed, stream).
/// Each param has its own stream (its index), each epoch's shuffle another.
class Rng {
public:
  Rng(uint64_t seed, uint64_t stream);
  uint64_t next();
  /// Uniform in [0, 1), 53 random bits.
  double uniform();
  /// Standard normal (polar Box–Muller; the second value of each pair is kept for the next call).
  double normal();
  /// Uniform integer in [0, n), without bias (Lemire's method). n > 0.
  uint64_t below(uint64_t n);

private:
  uint64_t s_[4];
  double spare_ = 0;
  bool hasSpare_ = false;
};

/// The stream ids: params use their index; the shuffle of epoch e uses kShuffleStream + e.
constexpr uint64_t kShuffleStream = uint64_t(1) << 40;

/// Fans of a shape, as described above.
struct Fans {
  double in, out;
};
Fans fans(const std::vector<int64_t> &shape);

/// Fills `out` (the product of `shape` elements) with the initialiser `kind` (an Init) and
/// its arguments (Const: {v}; Normal: {mean, std}; Uniform: {lo, hi}), from the stream of
/// param `paramIndex` under `seed`. The float version rounds the double values.
void initParam(double *out, int kind, const std::vector<double> &args,
               const std::vector<int64_t> &shape, uint64_t seed, int paramIndex);
void initParam(float *out, int kind, const std::vector<double> &args,
               const std::vector<int64_t> &shape, uint64_t seed, int paramIndex);

}  // namespace gradc::rt
