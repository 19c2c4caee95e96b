// Taylor-series extrapolation and divided-difference ladder update (TaylorSeer, docs/algorithms.md section 6.1).
#include <cmath>

#include "cachedit_kernels.h"
#include "error.hpp"
#include "isa.hpp"
#include "numeric.hpp"
#include "parallel.hpp"

namespace cachedit {
namespace {

constexpr int64_t kBlock = 8192;

template <typename Ty, int NT>
CDIT_INLINE void predict_block(typename Ty::T* out, const typename Ty::T* const* terms, const float* coef,
                               int64_t begin, int64_t end) {
  using T = typename Ty::T;
  const T* t0 = terms[0];
  const T* t1 = NT > 1 ? terms[1] : nullptr;
  const T* t2 = NT > 2 ? terms[2] : nullptr;
  const T* t3 = NT > 3 ? terms[3] : nullptr;
  const T* t4 = NT > 4 ? terms[4] : nullptr;
  const float c1 = NT > 1 ? coef[1] : 0.f, c2 = NT > 2 ? coef[2] : 0.f, c3 = NT > 3 ? coef[3] : 0.f,
              c4 = NT > 4 ? coef[4] : 0.f;
#pragma omp simd
  for (int64_t j = begin; j < end; ++j) {
    float acc = Ty::load(t0[j]);
    if (NT > 1) acc += Ty::load(t1[j]) * c1;
    if (NT > 2) acc += Ty::load(t2[j]) * c2;
    if (NT > 3) acc += Ty::load(t3[j]) * c3;
    if (NT > 4) acc += Ty::load(t4[j]) * c4;
    out[j] = Ty::store(acc);
  }
}

template <typename Ty>
CDIT_INLINE void predict_dispatch(typename Ty::T* out, const typename Ty::T* const* terms, int nterms,
                                  const float* coef, int64_t begin, int64_t end) {
  switch (nterms) {
    case 1: predict_block<Ty, 1>(out, terms, coef, begin, end); break;
    case 2: predict_block<Ty, 2>(out, terms, coef, begin, end); break;
    case 3: predict_block<Ty, 3>(out, terms, coef, begin, end); break;
    case 4: predict_block<Ty, 4>(out, terms, coef, begin, end); break;
    default: predict_block<Ty, 5>(out, terms, coef, begin, end); break;
  }
}

// Levels are carried in fp32 between the divided differences; only the stored value is rounded.
template <typename Ty, int C>
CDIT_INLINE void update_block(typename Ty::T* const* ladder, const typename Ty::T* y, float gap, int64_t begin,
                              int64_t end) {
  using T = typename Ty::T;
  T* l0 = ladder[0];
  T* l1 = C > 1 ? ladder[1] : nullptr;
  T* l2 = C > 2 ? ladder[2] : nullptr;
  T* l3 = C > 3 ? ladder[3] : nullptr;
  T* l4 = C > 4 ? ladder[4] : nullptr;
#pragma omp simd
  for (int64_t j = begin; j < end; ++j) {
    float cur = Ty::load(y[j]);
    float old = C > 1 ? Ty::load(l0[j]) : 0.f;
    l0[j] = Ty::store(cur);
    if (C > 1) {
      cur = (cur - old) / gap;
      old = C > 2 ? Ty::load(l1[j]) : 0.f;
      l1[j] = Ty::store(cur);
    }
    if (C > 2) {
      cur = (cur - old) / gap;
      old = C > 3 ? Ty::load(l2[j]) : 0.f;
      l2[j] = Ty::store(cur);
    }
    if (C > 3) {
      cur = (cur - old) / gap;
      old = C > 4 ? Ty::load(l3[j]) : 0.f;
      l3[j] = Ty::store(cur);
    }
    if (C > 4) {
      cur = (cur - old) / gap;
      l4[j] = Ty::store(cur);
    }
  }
}

template <typename Ty>
CDIT_INLINE void update_dispatch(typename Ty::T* const* ladder, int count, const typename Ty::T* y, float gap,
                                 int64_t begin, int64_t end) {
  switch (count) {
    case 1: update_block<Ty, 1>(ladder, y, gap, begin, end); break;
    case 2: update_block<Ty, 2>(ladder, y, gap, begin, end); break;
    case 3: update_block<Ty, 3>(ladder, y, gap, begin, end); break;
    case 4: update_block<Ty, 4>(ladder, y, gap, begin, end); break;
    default: update_block<Ty, 5>(ladder, y, gap, begin, end); break;
  }
}


CDIT_CLONES void predict_f32(float* o, const float* const* t, int nt, const float* c, int64_t b, int64_t e) {
  predict_dispatch<F32>(o, t, nt, c, b, e);
}
CDIT_CLONES void predict_bf16(uint16_t* o, const uint16_t* const* t, int nt, const float* c, int64_t b, int64_t e) {
  predict_dispatch<BF16>(o, t, nt, c, b, e);
}
CDIT_CLONES void predict_f16(uint16_t* o, const uint16_t* const* t, int nt, const float* c, int64_t b, int64_t e) {
  predict_dispatch<F16>(o, t, nt, c, b, e);
}
CDIT_CLONES void update_f32(float* const* l, int c, const float* y, float g, int64_t b, int64_t e) {
  update_dispatch<F32>(l, c, y, g, b, e);
}
CDIT_CLONES void update_bf16(uint16_t* const* l, int c, const uint16_t* y, float g, int64_t b, int64_t e) {
  update_dispatch<BF16>(l, c, y, g, b, e);
}
CDIT_CLONES void update_f16(uint16_t* const* l, int c, const uint16_t* y, float g, int64_t b, int64_t e) {
  update_dispatch<F16>(l, c, y, g, b, e);
}

template <typename T, typename Fn>
int run_predict(Fn fn, void* out, const void* const* terms, int nterms, double k, int64_t n, int nthreads) {
  const T* typed[CDIT_TAYLOR_MAX_TERMS];
  float coef[CDIT_TAYLOR_MAX_TERMS];
  double c = 1.0;
  for (int i = 0; i < nterms; ++i) {
    if (terms[i] == nullptr) return fail(CDIT_ERR_ARGUMENT, "terms[%d] is NULL", i);
    typed[i] = static_cast<const T*>(terms[i]);
    if (i > 0) c = c * k / i;  // k^i / i!
    coef[i] = static_cast<float>(c);
  }
  T* o = static_cast<T*>(out);
  parallel_blocks(n, kBlock, nthreads, nterms + 1,
                  [&](int64_t b, int64_t e) { fn(o, typed, nterms, coef, b, e); });
  return CDIT_OK;
}

template <typename T, typename Fn>
int run_update(Fn fn, void* const* ladder, int count, const void* y, double gap, int64_t n, int nthreads) {
  T* typed[CDIT_TAYLOR_MAX_TERMS];
  for (int i = 0; i < count; ++i) {
    if (ladder[i] == nullptr) return fail(CDIT_ERR_ARGUMENT, "ladder[%d] is NULL", i);
    typed[i] = static_cast<T*>(ladder[i]);
  }
  const T* yy = static_cast<const T*>(y);
  const float g = static_cast<float>(gap);
  parallel_blocks(n, kBlock, nthreads, 2 * count,
                  [&](int64_t b, int64_t e) { fn(typed, count, yy, g, b, e); });
  return CDIT_OK;
}

}  // namespace
}  // namespace cachedit

using namespace cachedit;

static int taylor_predict_impl(int dtype, void* out, const void* const* terms, int nterms, double k,
                               int64_t n, int nthreads) {
  if (n < 0) return fail(CDIT_ERR_ARGUMENT, "n must be >= 0, got %lld", static_cast<long long>(n));
  if (nterms < 1 || nterms > CDIT_TAYLOR_MAX_TERMS)
    return fail(CDIT_ERR_ARGUMENT, "nterms must be 1..%d, got %d", CDIT_TAYLOR_MAX_TERMS, nterms);
  if (terms == nullptr) return fail(CDIT_ERR_ARGUMENT, "terms must not be NULL");
  if (!std::isfinite(k)) return fail(CDIT_ERR_ARGUMENT, "k must be finite, got %g", k);
  if (n == 0) return CDIT_OK;
  if (out == nullptr) return fail(CDIT_ERR_ARGUMENT, "out must not be NULL when n > 0");
  switch (dtype) {
    case CDIT_F32: return run_predict<float>(predict_f32, out, terms, nterms, k, n, nthreads);
    case CDIT_BF16: return run_predict<uint16_t>(predict_bf16, out, terms, nterms, k, n, nthreads);
    case CDIT_F16: return run_predict<uint16_t>(predict_f16, out, terms, nterms, k, n, nthreads);
    default: return fail(CDIT_ERR_DTYPE, "dtype %d is not CDIT_F32, CDIT_BF16 or CDIT_F16", dtype);
  }
}

static int taylor_update_impl(int dtype, void* const* ladder, int nvalid, int nlevels, const void* y,
                              double gap, int64_t n, int nthreads) {
  if (n < 0) return fail(CDIT_ERR_ARGUMENT, "n must be >= 0, got %lld", static_cast<long long>(n));
  if (ladder == nullptr) return fail(CDIT_ERR_ARGUMENT, "ladder must not be NULL");
  if (nlevels < 1 || nlevels > CDIT_TAYLOR_MAX_TERMS)
    return fail(CDIT_ERR_ARGUMENT, "nlevels must be 1..%d, got %d", CDIT_TAYLOR_MAX_TERMS, nlevels);
  if (nvalid < 0 || nvalid > nlevels)
    return fail(CDIT_ERR_ARGUMENT, "nvalid must be 0..nlevels (%d), got %d", nlevels, nvalid);
  const int count = nvalid + 1 < nlevels ? nvalid + 1 : nlevels;
  if (count > 1 && (!std::isfinite(gap) || gap == 0.0))
    return fail(CDIT_ERR_ARGUMENT, "gap must be finite and non-zero when nvalid > 0, got %g", gap);
  if (n == 0) return CDIT_OK;
  if (y == nullptr) return fail(CDIT_ERR_ARGUMENT, "y must not be NULL when n > 0");
  switch (dtype) {
    case CDIT_F32: return run_update<float>(update_f32, ladder, count, y, gap, n, nthreads);
    case CDIT_BF16: return run_update<uint16_t>(update_bf16, ladder, count, y, gap, n, nthreads);
    case CDIT_F16: return run_update<uint16_t>(update_f16, ladder, count, y, gap, n, nthreads);
    default: return fail(CDIT_ERR_DTYPE, "dtype %d is not CDIT_F32, CDIT_BF16 or CDIT_F16", dtype);
  }
}

// ---- the C ABI: each entry point records why it failed (cdit_last_error) ----

extern "C" cdit_status cdit_taylor_predict(int dtype, void* out, const void* const* terms, int nterms, double k,
                                           int64_t n, int nthreads) {
  return checked("cdit_taylor_predict", taylor_predict_impl(dtype, out, terms, nterms, k, n, nthreads));
}

extern "C" cdit_status cdit_taylor_update(int dtype, void* const* ladder, int nvalid, int nlevels, const void* y,
                                          double gap, int64_t n, int nthreads) {
  return checked("cdit_taylor_update", taylor_update_impl(dtype, ladder, nvalid, nlevels, y, gap, n, nthreads));
}
