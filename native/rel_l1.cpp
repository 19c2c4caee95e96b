// Relative L1 residual difference: sum|a-b| and sum|a| in one pass (SPEC 3.5).
#include <cmath>
#include <limits>
#include <vector>

#include "cachedit_kernels.h"
#include "numeric.hpp"
#include "parallel.hpp"

namespace cachedit {
namespace {

// Partial sums are fp32 within a block of kBlock elements (at most 256 additions per SIMD lane)
// and fp64 across blocks, folded in block order so the result is independent of the thread count.
constexpr int64_t kBlock = 4096;

template <typename Ty>
CDIT_INLINE void rel_l1_block(const typename Ty::T* a, const typename Ty::T* b, int64_t n, double* diff,
                              double* abs_a) {
  float sd = 0.0f, sa = 0.0f;
#pragma omp simd reduction(+ : sd, sa)
  for (int64_t i = 0; i < n; ++i) {
    const float x = Ty::load(a[i]);
    const float y = Ty::load(b[i]);
    sd += fabsf(x - y);
    sa += fabsf(x);
  }
  *diff = sd;
  *abs_a = sa;
}

#define CDIT_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

CDIT_CLONES void rel_l1_block_f32(const float* a, const float* b, int64_t n, double* d, double* s) {
  rel_l1_block<F32>(a, b, n, d, s);
}
CDIT_CLONES void rel_l1_block_bf16(const uint16_t* a, const uint16_t* b, int64_t n, double* d, double* s) {
  rel_l1_block<BF16>(a, b, n, d, s);
}
CDIT_CLONES void rel_l1_block_f16(const uint16_t* a, const uint16_t* b, int64_t n, double* d, double* s) {
  rel_l1_block<F16>(a, b, n, d, s);
}

template <typename T, typename BlockFn>
void rel_l1_sums(BlockFn block_fn, const T* a, const T* b, int64_t n, int nthreads, double* out_diff,
                 double* out_abs) {
  const int64_t nblocks = (n + kBlock - 1) / kBlock;
  double diff = 0.0, abs_a = 0.0;
  if (nthreads <= 1 || n < kParallelMinElements) {
    for (int64_t i = 0; i < nblocks; ++i) {
      const int64_t begin = i * kBlock, len = begin + kBlock < n ? kBlock : n - begin;
      double d, s;
      block_fn(a + begin, b + begin, len, &d, &s);
      diff += d;
      abs_a += s;
    }
  } else {
    std::vector<double> partial(static_cast<size_t>(2 * nblocks));
    double* p = partial.data();
    parallel_blocks(nblocks, 1, nthreads, kBlock, [&](int64_t i, int64_t) {
      const int64_t begin = i * kBlock, len = begin + kBlock < n ? kBlock : n - begin;
      block_fn(a + begin, b + begin, len, &p[2 * i], &p[2 * i + 1]);
    });
    for (int64_t i = 0; i < nblocks; ++i) {
      diff += p[2 * i];
      abs_a += p[2 * i + 1];
    }
  }
  *out_diff = diff;
  *out_abs = abs_a;
}

}  // namespace
}  // namespace cachedit

using namespace cachedit;

extern "C" int cdit_rel_l1_sums(int dtype, const void* a, const void* b, int64_t n, int nthreads,
                                double* sum_abs_diff, double* sum_abs_a) {
  if (n < 0 || sum_abs_diff == nullptr || sum_abs_a == nullptr) return CDIT_ERR_ARGUMENT;
  if (n > 0 && (a == nullptr || b == nullptr)) return CDIT_ERR_ARGUMENT;
  switch (dtype) {
    case CDIT_F32:
      rel_l1_sums(rel_l1_block_f32, static_cast<const float*>(a), static_cast<const float*>(b), n, nthreads,
                  sum_abs_diff, sum_abs_a);
      return CDIT_OK;
    case CDIT_BF16:
      rel_l1_sums(rel_l1_block_bf16, static_cast<const uint16_t*>(a), static_cast<const uint16_t*>(b), n,
                  nthreads, sum_abs_diff, sum_abs_a);
      return CDIT_OK;
    case CDIT_F16:
      rel_l1_sums(rel_l1_block_f16, static_cast<const uint16_t*>(a), static_cast<const uint16_t*>(b), n,
                  nthreads, sum_abs_diff, sum_abs_a);
      return CDIT_OK;
    default:
      return CDIT_ERR_DTYPE;
  }
}

extern "C" int cdit_rel_l1(int dtype, const void* a, const void* b, int64_t n, int nthreads, double* diff) {
  if (diff == nullptr) return CDIT_ERR_ARGUMENT;
  double num = 0.0, den = 0.0;
  const int status = cdit_rel_l1_sums(dtype, a, b, n, nthreads, &num, &den);
  if (status != CDIT_OK) return status;
  if (den == 0.0) {
    // identical all-zero inputs are "no change"; NaN inputs stay NaN
    *diff = num == 0.0 ? 0.0 : (num != num ? num : std::numeric_limits<double>::infinity());
  } else {
    *diff = num / den;
  }
  return CDIT_OK;
}
