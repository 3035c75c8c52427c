// Whether the unit tests run under AddressSanitizer (the sanitizer stage of scripts/test.sh).
// Sweeps that compile many steps take a sample there: the sanitizers check the compiler's own
// code, which every size and setting runs alike (the generated code is not instrumented), and
// the Release stage runs every case (ctest label `unsanitized`).
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define GRADC_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GRADC_SANITIZED 1
#endif
#endif
#ifndef GRADC_SANITIZED
#define GRADC_SANITIZED 0
#endif

namespace gradc::testing {
inline constexpr bool kSanitized = GRADC_SANITIZED;
}  // namespace gradc::testing
