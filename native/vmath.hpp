// Vectorisable scalar math shared by the CPU kernels: IEEE basic operations and explicit fused
// multiply-adds only, so a loop's vector clones compute exactly what its scalar code computes (the
// same bits on every instruction set). Internal header.
#pragma once

#include <cmath>
#include <cstdint>

#include "numeric.hpp"

namespace cachedit {

// exp(z) for z clamped to [-87, 88]: z = n ln2 + r with |r| <= ln2 / 2 (Cody-Waite split of ln2),
// a degree-6 polynomial for e^r (Cephes' expf coefficients, about 1 ulp), times 2^n built in the
// exponent bits (n in -126..127, so 2^n is a normal float). n is rounded to nearest by adding and
// subtracting 1.5 * 2^23 (floor would keep GCC from vectorising the loops); NaN stays NaN.
CDIT_INLINE float exp_clamped(float z) {
  z = z < -87.0f ? -87.0f : z;
  z = z > 88.0f ? 88.0f : z;
  const float n = (z * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = std::fma(n, -0.693359375f, z);
  r = std::fma(n, 2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = std::fma(p, r, 1.3981999507e-3f);
  p = std::fma(p, r, 8.3334519073e-3f);
  p = std::fma(p, r, 4.1665795894e-2f);
  p = std::fma(p, r, 1.6666665459e-1f);
  p = std::fma(p, r, 5.0000001201e-1f);
  p = std::fma(p, r * r, r + 1.0f);
  return p * bits_f32(static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23);
}

// sum of x[0..n) in a fixed order that vectorises: sixteen lanes (lane l adds x[l], x[l + 16], ...
// in order), then lanes added pairwise, l + 8, l + 4, l + 2, l + 1 (a 512-bit register's reduction).
CDIT_INLINE float lane_sum16(const float* x, int64_t n) {
  float lane[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; ++l) lane[l] += x[i + l];
  for (int l = 0; i < n; ++i, ++l) lane[l] += x[i];
  for (int width = 8; width >= 1; width /= 2)
    for (int l = 0; l < width; ++l) lane[l] += lane[l + width];
  return lane[0];
}

}  // namespace cachedit
