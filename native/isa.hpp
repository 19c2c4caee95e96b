// Instruction sets, chosen in one place (docs/packaging.md, "Platforms").
//
// x86-64: each hot loop is compiled for AVX-512F, AVX2 (x86-64-v3) and the baseline and the loader picks one per
// CPU (GCC target_clones); the hand-written AVX2 kernels of the linear layers are picked at run time.
// Other targets (linux-arm64) compile one version for their baseline — on aarch64 that includes NEON,
// which the compiler uses for the same loops — and take the portable kernels, which give the same
// bits as the vector ones by construction (one fused multiply-add per element and k).
#pragma once

#include <cstdlib>
#include <cstring>

namespace cachedit {
// Whether the environment variable (CACHEDIT_LINEAR_ISA, ...) asks for the portable path ("default"):
// tests and debugging compare it with the vector path, which gives the same bits.
inline bool portable_path_forced(const char* variable) {
  const char* v = std::getenv(variable);
  return v && std::strcmp(v, "default") == 0;
}

// Whether it asks to stop at AVX2 ("avx2"), so that tests reach the AVX2 code on AVX-512 CPUs.
inline bool avx2_path_forced(const char* variable) {
  const char* v = std::getenv(variable);
  return v && std::strcmp(v, "avx2") == 0;
}
}  // namespace cachedit

#if defined(__x86_64__) || defined(__i386__)
#define CDIT_X86 1
#include <immintrin.h>
// x86-64-v3 (AVX2 with FMA, BMI, F16C) rather than plain "avx2": without FMA every std::fma in a clone
// is a libm call.
#define CDIT_CLONES __attribute__((target_clones("avx512f", "arch=x86-64-v3", "default")))
#define CDIT_CLONES_AVX2 __attribute__((target_clones("arch=x86-64-v3", "default")))
#define CDIT_TARGET_AVX2 __attribute__((target("avx2")))
#define CDIT_TARGET_AVX2_FMA __attribute__((target("avx2,fma")))
#else
#define CDIT_X86 0
#define CDIT_CLONES
#define CDIT_CLONES_AVX2
#endif
