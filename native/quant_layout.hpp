// What the CPU and CUDA low-bit linear kernels must agree on to give bit-identical results: the
// packed weight layout, the fixed-point ranges and when int32 sums are flushed to fp32. Internal header.
#pragma once

#include <cstdint>

#include "cachedit_kernels.h"
#include "numeric.hpp"

namespace cachedit {
namespace quant {

constexpr int64_t kPanel = 16;       // output columns per packed panel (two 8-lane int32 vectors)
constexpr int64_t kPairBlock = 256;  // k pairs per weight tile: 512 inputs; flush groups never straddle it
constexpr int32_t kFp8Fixed = 4095;  // fp8 weight 448 -> 4095

// Largest activation magnitude in fixed point for a (weights, activations) pair.
CDIT_INLINE int32_t act_max(int qweight, int qact) {
  if (qact == CDIT_QA_INT8_ROW || qact == CDIT_QA_INT8_TENSOR) return 127;
  if (qact == CDIT_QA_FP8_ROW || qact == CDIT_QA_FP8_TENSOR) return 8191;
  return qweight == CDIT_QW_FP8 ? 8191 : 16383;
}

CDIT_INLINE int32_t weight_max(int qweight) {
  return qweight == CDIT_QW_INT8 ? 127 : qweight == CDIT_QW_INT4 ? 8 : kFp8Fixed;
}

// k pairs summed in int32 between flushes: a power of two that keeps |sum| < 2^31 and divides
// kPairBlock (int4: one group, whose scale is applied at its flush).
inline int64_t flush_pairs(int qweight, int qact, int64_t group) {
  if (qweight == CDIT_QW_INT4) return group / 2;
  const int64_t bound = INT32_MAX / (2LL * act_max(qweight, qact) * weight_max(qweight));
  int64_t f = 1;
  while (f * 2 <= bound && f * 2 <= kPairBlock) f *= 2;
  return f;
}

}  // namespace quant
}  // namespace cachedit
