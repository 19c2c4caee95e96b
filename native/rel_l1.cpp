// Relative L1 residual difference: sum|a-b| and sum|a| in one pass (docs/algorithms.md section 3.5).
#include <cmath>
#include <limits>
#include <vector>

#include "cachedit_kernels.h"
#include "error.hpp"
#include "isa.hpp"
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

// prev vs (after - before), the residual rounded to the storage type as a materialised one would be
template <typename Ty>
CDIT_INLINE void rel_l1_residual_block(const typename Ty::T* p, const typename Ty::T* a, const typename Ty::T* b,
                                       int64_t n, double* diff, double* abs_p) {
  float sd = 0.0f, sp = 0.0f;
#pragma omp simd reduction(+ : sd, sp)
  for (int64_t i = 0; i < n; ++i) {
    const float x = Ty::load(p[i]);
    const float r = Ty::load(Ty::store(Ty::load(a[i]) - Ty::load(b[i])));
    sd += fabsf(x - r);
    sp += fabsf(x);
  }
  *diff = sd;
  *abs_p = sp;
}


CDIT_CLONES void rel_l1_residual_block_f32(const float* p, const float* a, const float* b, int64_t n, double* d,
                                           double* s) {
  rel_l1_residual_block<F32>(p, a, b, n, d, s);
}
CDIT_CLONES void rel_l1_residual_block_bf16(const uint16_t* p, const uint16_t* a, const uint16_t* b, int64_t n,
                                            double* d, double* s) {
  rel_l1_residual_block<BF16>(p, a, b, n, d, s);
}
CDIT_CLONES void rel_l1_residual_block_f16(const uint16_t* p, const uint16_t* a, const uint16_t* b, int64_t n,
                                           double* d, double* s) {
  rel_l1_residual_block<F16>(p, a, b, n, d, s);
}

CDIT_CLONES void rel_l1_block_f32(const float* a, const float* b, int64_t n, double* d, double* s) {
  rel_l1_block<F32>(a, b, n, d, s);
}
CDIT_CLONES void rel_l1_block_bf16(const uint16_t* a, const uint16_t* b, int64_t n, double* d, double* s) {
  rel_l1_block<BF16>(a, b, n, d, s);
}
CDIT_CLONES void rel_l1_block_f16(const uint16_t* a, const uint16_t* b, int64_t n, double* d, double* s) {
  rel_l1_block<F16>(a, b, n, d, s);
}

// Runs block_fn(begin, len, &diff, &abs) over fixed 4096-element blocks and folds in block order.
template <typename BlockFn>
void fold_blocks(BlockFn block_fn, int64_t n, int nthreads, double* out_diff, double* out_abs) {
  const int64_t nblocks = (n + kBlock - 1) / kBlock;
  double diff = 0.0, abs_a = 0.0;
  if (nthreads <= 1 || n < kParallelMinElements) {
    for (int64_t i = 0; i < nblocks; ++i) {
      const int64_t begin = i * kBlock, len = begin + kBlock < n ? kBlock : n - begin;
      double d, s;
      block_fn(begin, len, &d, &s);
      diff += d;
      abs_a += s;
    }
  } else {
    std::vector<double> partial(static_cast<size_t>(2 * nblocks));
    double* p = partial.data();
    parallel_blocks(nblocks, 1, nthreads, kBlock, [&](int64_t i, int64_t) {
      const int64_t begin = i * kBlock, len = begin + kBlock < n ? kBlock : n - begin;
      block_fn(begin, len, &p[2 * i], &p[2 * i + 1]);
    });
    for (int64_t i = 0; i < nblocks; ++i) {
      diff += p[2 * i];
      abs_a += p[2 * i + 1];
    }
  }
  *out_diff = diff;
  *out_abs = abs_a;
}

template <typename T, typename Fn>
void rel_l1_sums(Fn fn, const T* a, const T* b, int64_t n, int nthreads, double* d, double* s) {
  fold_blocks([&](int64_t i, int64_t len, double* bd, double* bs) { fn(a + i, b + i, len, bd, bs); }, n, nthreads,
              d, s);
}

template <typename T, typename Fn>
void rel_l1_residual_sums(Fn fn, const T* p, const T* a, const T* b, int64_t n, int nthreads, double* d,
                          double* s) {
  fold_blocks([&](int64_t i, int64_t len, double* bd, double* bs) { fn(p + i, a + i, b + i, len, bd, bs); }, n,
              nthreads, d, s);
}

}  // namespace
}  // namespace cachedit

using namespace cachedit;

static int rel_l1_sums_impl(int dtype, const void* a, const void* b, int64_t n, int nthreads,
                            double* sum_abs_diff, double* sum_abs_a) {
  if (n < 0) return fail(CDIT_ERR_ARGUMENT, "n must be >= 0, got %lld", static_cast<long long>(n));
  if (sum_abs_diff == nullptr || sum_abs_a == nullptr)
    return fail(CDIT_ERR_ARGUMENT, "sum_abs_diff and sum_abs_a must not be NULL");
  if (n > 0 && (a == nullptr || b == nullptr)) return fail(CDIT_ERR_ARGUMENT, "a and b must not be NULL when n > 0");
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
      return fail(CDIT_ERR_DTYPE, "dtype %d is not CDIT_F32, CDIT_BF16 or CDIT_F16", dtype);
  }
}

static int rel_l1_residual_sums_impl(int dtype, const void* prev, const void* after, const void* before,
                                     int64_t n, int nthreads, double* sum_abs_diff, double* sum_abs_prev) {
  if (n < 0) return fail(CDIT_ERR_ARGUMENT, "n must be >= 0, got %lld", static_cast<long long>(n));
  if (sum_abs_diff == nullptr || sum_abs_prev == nullptr)
    return fail(CDIT_ERR_ARGUMENT, "sum_abs_diff and sum_abs_prev must not be NULL");
  if (n > 0 && (prev == nullptr || after == nullptr || before == nullptr))
    return fail(CDIT_ERR_ARGUMENT, "prev, after and before must not be NULL when n > 0");
  using U = uint16_t;
  switch (dtype) {
    case CDIT_F32:
      rel_l1_residual_sums(rel_l1_residual_block_f32, static_cast<const float*>(prev), static_cast<const float*>(after),
                           static_cast<const float*>(before), n, nthreads, sum_abs_diff, sum_abs_prev);
      return CDIT_OK;
    case CDIT_BF16:
      rel_l1_residual_sums(rel_l1_residual_block_bf16, static_cast<const U*>(prev), static_cast<const U*>(after),
                           static_cast<const U*>(before), n, nthreads, sum_abs_diff, sum_abs_prev);
      return CDIT_OK;
    case CDIT_F16:
      rel_l1_residual_sums(rel_l1_residual_block_f16, static_cast<const U*>(prev), static_cast<const U*>(after),
                           static_cast<const U*>(before), n, nthreads, sum_abs_diff, sum_abs_prev);
      return CDIT_OK;
    default:
      return fail(CDIT_ERR_DTYPE, "dtype %d is not CDIT_F32, CDIT_BF16 or CDIT_F16", dtype);
  }
}

static int rel_l1_impl(int dtype, const void* a, const void* b, int64_t n, int nthreads, double* diff) {
  if (diff == nullptr) return fail(CDIT_ERR_ARGUMENT, "diff must not be NULL");
  double num = 0.0, den = 0.0;
  const int status = rel_l1_sums_impl(dtype, a, b, n, nthreads, &num, &den);
  if (status != CDIT_OK) return status;
  if (den == 0.0) {
    // identical all-zero inputs are "no change"; NaN inputs stay NaN
    *diff = num == 0.0 ? 0.0 : (num != num ? num : std::numeric_limits<double>::infinity());
  } else {
    *diff = num / den;
  }
  return CDIT_OK;
}

// ---- the C ABI: each entry point records why it failed (cdit_last_error) ----

extern "C" cdit_status cdit_rel_l1_sums(int dtype, const void* a, const void* b, int64_t n, int nthreads,
                                        double* sum_abs_diff, double* sum_abs_a) {
  return checked("cdit_rel_l1_sums", rel_l1_sums_impl(dtype, a, b, n, nthreads, sum_abs_diff, sum_abs_a));
}

extern "C" cdit_status cdit_rel_l1_residual_sums(int dtype, const void* prev, const void* after, const void* before,
                                                 int64_t n, int nthreads, double* sum_abs_diff, double* sum_abs_prev) {
  return checked("cdit_rel_l1_residual_sums",
                 rel_l1_residual_sums_impl(dtype, prev, after, before, n, nthreads, sum_abs_diff, sum_abs_prev));
}

extern "C" cdit_status cdit_rel_l1(int dtype, const void* a, const void* b, int64_t n, int nthreads, double* diff) {
  return checked("cdit_rel_l1", rel_l1_impl(dtype, a, b, n, nthreads, diff));
}
