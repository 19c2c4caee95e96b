// Independent reference conversions and typed buffers for the kernel tests.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cachedit_kernels.h"

namespace cdit_test {

inline uint32_t bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline float from_bits(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

// bf16: pick the nearer of the two truncation neighbours in double; ties to the even one.
inline uint16_t ref_bf16(float f) {
  if (std::isnan(f)) return 0x7FC0;
  const uint32_t lo = bits(f) & 0xFFFF0000u, hi = lo + 0x10000u;
  // IEEE rounding treats the infinity above the largest finite value as 2^128 (overflow rounds to inf)
  const double vhi = std::isinf(from_bits(hi)) ? std::copysign(std::ldexp(1.0, 128), f) : from_bits(hi);
  const double dl = std::fabs((double)from_bits(lo) - f), dh = std::fabs(vhi - f);
  if (dl < dh) return lo >> 16;
  if (dh < dl) return hi >> 16;
  return ((lo >> 16) & 1) ? hi >> 16 : lo >> 16;
}
inline float bf16f(uint16_t h) { return from_bits((uint32_t)h << 16); }

#if defined(__CUDACC__)
// nvcc: the CUDA tests compare against the CPU library, so the library's own conversion will do.
}  // namespace cdit_test
#include "numeric.hpp"
namespace cdit_test {
inline uint16_t ref_f16(float f) { return cachedit::f32_to_f16(f); }
inline float f16f(uint16_t u) { return cachedit::f16_to_f32(u); }
#elif defined(__aarch64__)
// fp16 through the hardware's IEEE half conversions (GCC's C++ front end has no _Float16 on aarch64).
inline uint16_t ref_f16(float f) { __fp16 h = (__fp16)f; uint16_t u; std::memcpy(&u, &h, 2); return u; }
inline float f16f(uint16_t u) { __fp16 h; std::memcpy(&h, &u, 2); return (float)h; }
#else
// fp16 through the compiler's correctly rounded _Float16 conversions.
inline uint16_t ref_f16(float f) { _Float16 h = (_Float16)f; uint16_t u; std::memcpy(&u, &h, 2); return u; }
inline float f16f(uint16_t u) { _Float16 h; std::memcpy(&h, &u, 2); return (float)h; }
#endif

// fp8 e4m3fn by brute force over all finite codes; ties to the even code; saturating.
inline double fp8_value(int code) {
  const int e = (code >> 3) & 0xF, m = code & 7;
  const double mag = e == 0 ? m * std::ldexp(1.0, -9) : (1.0 + m / 8.0) * std::ldexp(1.0, e - 7);
  return (code & 0x80) ? -mag : mag;
}
inline uint8_t ref_fp8(float f) {
  if (std::isnan(f)) return (bits(f) >> 24 & 0x80) | 0x7F;
  const int sign = std::signbit(f) ? 0x80 : 0;
  const double a = std::fabs((double)f);
  if (a >= 448.0) return sign | 0x7E;
  int best = 0;
  double bestd = a;
  for (int c = 1; c <= 0x7E; ++c) {
    const double d = std::fabs(fp8_value(c) - a);
    if (d < bestd || (d == bestd && (c & 1) == 0 && (best & 1) == 1)) { best = c; bestd = d; }
  }
  return sign | best;
}

// A buffer of n elements of a cachedit dtype, written from floats with the reference rounding.
struct Typed {
  int dtype;
  std::vector<uint8_t> bytes;
  Typed(int dt, size_t n) : dtype(dt), bytes(n * cdit_dtype_size(dt)) {}
  Typed(int dt, const std::vector<float>& v) : Typed(dt, v.size()) {
    for (size_t i = 0; i < v.size(); ++i) set(i, v[i]);
  }
  size_t size() const { return bytes.size() / cdit_dtype_size(dtype); }
  void* data() { return bytes.data(); }
  const void* data() const { return bytes.data(); }
  void set(size_t i, float f) {
    if (dtype == CDIT_F32) std::memcpy(&bytes[4 * i], &f, 4);
    else { uint16_t h = dtype == CDIT_BF16 ? ref_bf16(f) : ref_f16(f); std::memcpy(&bytes[2 * i], &h, 2); }
  }
  double get(size_t i) const {
    if (dtype == CDIT_F32) { float f; std::memcpy(&f, &bytes[4 * i], 4); return f; }
    uint16_t h; std::memcpy(&h, &bytes[2 * i], 2);
    return dtype == CDIT_BF16 ? bf16f(h) : f16f(h);
  }
  std::vector<double> values() const {
    std::vector<double> v(size());
    for (size_t i = 0; i < v.size(); ++i) v[i] = get(i);
    return v;
  }
  // round a float the way this dtype stores it
  double round(float f) const {
    if (dtype == CDIT_F32) return f;
    return dtype == CDIT_BF16 ? bf16f(ref_bf16(f)) : f16f(ref_f16(f));
  }
};

inline const char* dtype_name(int dt) { return dt == CDIT_F32 ? "f32" : dt == CDIT_BF16 ? "bf16" : "f16"; }
inline const char* wire_name(int w) { return w == CDIT_WIRE_RAW ? "raw" : w == CDIT_WIRE_FP8_F32_SCALE ? "fp8/f32" : "fp8/bf16"; }

// Expected per-element bound of a wire round trip relative to the row's scale.
inline double fp8_bound(double x, double scale) {
  // e4m3: 3 mantissa bits -> half-ulp 2^-4 relative in the normal range, 2^-10 * scale absolute below.
  return std::max(std::fabs(x) * 0.0625, scale * std::ldexp(1.0, -10)) * 1.0001;
}

}  // namespace cdit_test
