// Scalar conversions between fp32 and bf16 / fp16 / fp8 e4m3fn, written with integer and float ops
// only so that the compiler vectorises them inside `#pragma omp simd` loops. Internal header.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "cachedit_kernels.h"

namespace cachedit {

#if defined(__CUDACC__)
// Shared with the CUDA kernels so that both produce bit-identical conversions.
#define CDIT_INLINE __host__ __device__ inline __attribute__((always_inline))
#else
#define CDIT_INLINE inline __attribute__((always_inline))
#endif

CDIT_INLINE uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
CDIT_INLINE float bits_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// ---- bfloat16 -------------------------------------------------------------------------------
CDIT_INLINE float bf16_to_f32(uint16_t h) { return bits_f32(static_cast<uint32_t>(h) << 16); }

// Round to nearest even; NaN stays a (quiet) NaN.
CDIT_INLINE uint16_t f32_to_bf16(float f) {
  uint32_t u = f32_bits(f);
  uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  uint32_t nan = (u >> 16) | 0x40u;
  return static_cast<uint16_t>(f != f ? nan : rounded);
}

// ---- IEEE half (after M. Dukhan's FP16 library: exact, branch-free) -----------------------------
CDIT_INLINE float f16_to_f32(uint16_t h) {
  const uint32_t w = static_cast<uint32_t>(h) << 16;
  const uint32_t sign = w & 0x80000000u;
  const uint32_t two_w = w + w;
  const uint32_t exp_offset = 0xE0u << 23;
  const float exp_scale = 0x1.0p-112f;
  const float normalized = bits_f32((two_w >> 4) + exp_offset) * exp_scale;
  const uint32_t magic_mask = 126u << 23;
  const float magic_bias = 0.5f;
  const float denormalized = bits_f32((two_w >> 17) | magic_mask) - magic_bias;
  const uint32_t denormalized_cutoff = 1u << 27;
  const uint32_t result =
      sign | (two_w < denormalized_cutoff ? f32_bits(denormalized) : f32_bits(normalized));
  return bits_f32(result);
}

// Round to nearest even, overflow to infinity, NaN to NaN.
CDIT_INLINE uint16_t f32_to_f16(float f) {
  const float scale_to_inf = 0x1.0p+112f;
  const float scale_to_zero = 0x1.0p-110f;
  float base = (fabsf(f) * scale_to_inf) * scale_to_zero;
  const uint32_t w = f32_bits(f);
  const uint32_t shl1_w = w + w;
  const uint32_t sign = w & 0x80000000u;
  uint32_t bias = shl1_w & 0xFF000000u;
  if (bias < 0x71000000u) bias = 0x71000000u;
  base = bits_f32((bias >> 1) + 0x07800000u) + base;
  const uint32_t bits = f32_bits(base);
  const uint32_t exp_bits = (bits >> 13) & 0x00007C00u;
  const uint32_t mantissa_bits = bits & 0x00000FFFu;
  const uint32_t nonsign = exp_bits + mantissa_bits;
  return static_cast<uint16_t>((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

// ---- float8 e4m3fn (bias 7, no infinities, NaN = S.1111.111, max 448) ---------------------------
constexpr float kFp8E4m3Max = 448.0f;

// Round to nearest even with saturation to +-448. Written without data-dependent branches.
CDIT_INLINE uint8_t f32_to_fp8_e4m3(float f) {
  const uint32_t u = f32_bits(f);
  const uint32_t sign = (u >> 24) & 0x80u;
  const uint32_t abs_bits = u & 0x7FFFFFFFu;
  const float a = bits_f32(abs_bits);
  // Normal range [2^-6, 448): round the fp32 mantissa to 3 bits, re-bias the exponent 127 -> 7.
  const uint32_t lsb = (abs_bits >> 20) & 1u;
  const uint32_t rounded = abs_bits + 0x7FFFFu + lsb;  // carry may bump the exponent: that is correct
  const uint32_t normal = ((rounded >> 20) - ((127u - 7u) << 3)) & 0xFFu;
  // Subnormal range [0, 2^-6): value = m * 2^-9 with m in 0..8 (8 is the smallest normal, 0x08).
  // In [2^14, 2^15) one fp32 ulp is 2^-9, so the FPU's own round-to-nearest-even does the work.
  const float magic = 0x1.0p14f;
  const uint32_t sub = f32_bits(a + magic) - f32_bits(magic);
  uint32_t r = a < 0x1.0p-6f ? sub : normal;
  r = a >= kFp8E4m3Max ? 0x7Eu : r;
  r = a != a ? 0x7Fu : r;
  return static_cast<uint8_t>(sign | r);
}

CDIT_INLINE float fp8_e4m3_to_f32(uint8_t v) {
  const uint32_t sign = (static_cast<uint32_t>(v) & 0x80u) << 24;
  const uint32_t e = (v >> 3) & 0xFu;
  const uint32_t m = v & 0x7u;
  // normal: exponent e-7 -> e+120; subnormal: m * 2^-9
  const float normal = bits_f32(((e + 120u) << 23) | (m << 20));
  const float subnormal = static_cast<float>(m) * 0x1.0p-9f;
  float r = e == 0 ? subnormal : normal;
  r = (v & 0x7Fu) == 0x7Fu ? bits_f32(0x7FC00000u) : r;
  return bits_f32(f32_bits(r) | sign);
}

// Round to nearest even for |x| < 2^22 without libm (vectorises on every ISA; no SSE4.1 needed):
// x + 1.5 * 2^23 lies in [2^23, 2^24), where one ulp is 1.
CDIT_INLINE float round_even(float x) {
  const float magic = 0x1.8p23f;
  return (x + magic) - magic;
}

// fp8 grid rounding in fp32 (the value an e4m3fn byte would hold, saturated to +-448).
CDIT_INLINE float fp8_round(float x) {
  const uint32_t u = f32_bits(x);
  const uint32_t sign = u & 0x80000000u;
  const uint32_t abs_bits = u & 0x7FFFFFFFu;
  const float a = bits_f32(abs_bits);
  const uint32_t lsb = (abs_bits >> 20) & 1u;
  const float normal = bits_f32((abs_bits + 0x7FFFFu + lsb) & 0xFFF00000u);
  const float magic = 0x1.0p14f;
  const float sub = (a + magic) - magic;  // multiples of 2^-9 below 2^-6
  float r = a < 0x1.0p-6f ? sub : normal;
  r = r > kFp8E4m3Max ? kFp8E4m3Max : r;
  return bits_f32(f32_bits(r) | sign);
}

// ---- typed loads/stores ----------------------------------------------------------------------
struct F32 {
  using T = float;
  static constexpr int kDtype = CDIT_F32;
  static CDIT_INLINE float load(float x) { return x; }
  static CDIT_INLINE float store(float x) { return x; }
};
struct BF16 {
  using T = uint16_t;
  static constexpr int kDtype = CDIT_BF16;
  static CDIT_INLINE float load(uint16_t x) { return bf16_to_f32(x); }
  static CDIT_INLINE uint16_t store(float x) { return f32_to_bf16(x); }
};
struct F16 {
  using T = uint16_t;
  static constexpr int kDtype = CDIT_F16;
  static CDIT_INLINE float load(uint16_t x) { return f16_to_f32(x); }
  static CDIT_INLINE uint16_t store(float x) { return f32_to_f16(x); }
};

}  // namespace cachedit
