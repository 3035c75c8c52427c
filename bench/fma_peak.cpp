// fma_peak: the machine's fp32 peak on one core, measured with a loop of independent
// AVX-512 FMA chains (16 accumulators: enough to cover the FMA latency on both ports).
// Prints GFLOP/s (2 flops per lane per FMA). Falls back to AVX2 when AVX-512 is absent.
// The inner loops are unrolled so the accumulators stay in registers: a loop that kept them in
// memory would measure store-to-load latency instead of the FMA units.
#include <immintrin.h>

#include <chrono>
#include <cstdio>

__attribute__((target("avx512f"))) static double peak512(long iters) {
  __m512 acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_set1_ps(0.001f * static_cast<float>(i));
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  auto t0 = std::chrono::steady_clock::now();
  for (long n = 0; n < iters; ++n) {
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  __m512 sum = acc[0];
  for (int i = 1; i < 16; ++i) sum = _mm512_add_ps(sum, acc[i]);
  float out[16];
  _mm512_storeu_ps(out, sum);
  volatile float sink = out[0];
  (void)sink;
  return static_cast<double>(iters) * 16 * 16 * 2 / s / 1e9;
}

__attribute__((target("avx2,fma"))) static double peak256(long iters) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(0.001f * static_cast<float>(i));
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  auto t0 = std::chrono::steady_clock::now();
  for (long n = 0; n < iters; ++n) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  float out[8];
  __m256 sum = acc[0];
  for (int i = 1; i < 12; ++i) sum = _mm256_add_ps(sum, acc[i]);
  _mm256_storeu_ps(out, sum);
  volatile float sink = out[0];
  (void)sink;
  return static_cast<double>(iters) * 12 * 8 * 2 / s / 1e9;
}

int main() {
  bool avx512 = __builtin_cpu_supports("avx512f");
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    double g = avx512 ? peak512(20'000'000) : peak256(20'000'000);
    if (g > best) best = g;
  }
  std::printf("{\"isa\": \"%s\", \"gflops_per_core\": %.1f}\n", avx512 ? "avx512" : "avx2", best);
  return 0;
}
