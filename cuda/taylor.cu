// Taylor extrapolation and divided-difference ladder update on the GPU (TaylorSeer, docs/algorithms.md section 6.1).
// Same arithmetic, in the same order, as native/taylor.cpp, so results are bit-identical.
#include <cmath>

#include "cuda_common.cuh"

namespace cachedit {
namespace cuda {
namespace {

template <typename T>
struct Ptrs {
  T p[CDIT_TAYLOR_MAX_TERMS];
};

template <typename Ty, int NT>
__global__ void __launch_bounds__(kThreads) predict_kernel(typename Ty::T* __restrict__ out,
                                                           Ptrs<const typename Ty::T*> terms,
                                                           Ptrs<float> coef, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < n; j += stride) {
    float acc = Ty::load(terms.p[0][j]);
#pragma unroll
    for (int i = 1; i < NT; ++i) acc += Ty::load(terms.p[i][j]) * coef.p[i];
    out[j] = Ty::store(acc);
  }
}

template <typename Ty, int C>
__global__ void __launch_bounds__(kThreads) update_kernel(Ptrs<typename Ty::T*> ladder,
                                                          const typename Ty::T* __restrict__ y, float gap,
                                                          int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < n; j += stride) {
    float cur = Ty::load(y[j]);
#pragma unroll
    for (int i = 0; i < C; ++i) {
      const float old = i + 1 < C ? Ty::load(ladder.p[i][j]) : 0.f;
      ladder.p[i][j] = Ty::store(cur);
      if (i + 1 < C) cur = (cur - old) / gap;
    }
  }
}

template <typename Ty>
int predict(void* out, const void* const* terms, int nterms, double k, int64_t n, cudaStream_t stream) {
  using T = typename Ty::T;
  Ptrs<const T*> t{};
  Ptrs<float> coef{};
  double c = 1.0;
  for (int i = 0; i < nterms; ++i) {
    if (terms[i] == nullptr) return CDIT_ERR_ARGUMENT;
    t.p[i] = static_cast<const T*>(terms[i]);
    if (i > 0) c = c * k / i;
    coef.p[i] = static_cast<float>(c);
  }
  T* o = static_cast<T*>(out);
  const unsigned grid = grid_for(n, 4);
  switch (nterms) {
    case 1: predict_kernel<Ty, 1><<<grid, kThreads, 0, stream>>>(o, t, coef, n); break;
    case 2: predict_kernel<Ty, 2><<<grid, kThreads, 0, stream>>>(o, t, coef, n); break;
    case 3: predict_kernel<Ty, 3><<<grid, kThreads, 0, stream>>>(o, t, coef, n); break;
    case 4: predict_kernel<Ty, 4><<<grid, kThreads, 0, stream>>>(o, t, coef, n); break;
    default: predict_kernel<Ty, 5><<<grid, kThreads, 0, stream>>>(o, t, coef, n); break;
  }
  return launched("taylor_predict");
}

template <typename Ty>
int update(void* const* ladder, int count, const void* y, double gap, int64_t n, cudaStream_t stream) {
  using T = typename Ty::T;
  Ptrs<T*> l{};
  for (int i = 0; i < count; ++i) {
    if (ladder[i] == nullptr) return CDIT_ERR_ARGUMENT;
    l.p[i] = static_cast<T*>(ladder[i]);
  }
  const T* yy = static_cast<const T*>(y);
  const float g = static_cast<float>(gap);
  const unsigned grid = grid_for(n, 4);
  switch (count) {
    case 1: update_kernel<Ty, 1><<<grid, kThreads, 0, stream>>>(l, yy, g, n); break;
    case 2: update_kernel<Ty, 2><<<grid, kThreads, 0, stream>>>(l, yy, g, n); break;
    case 3: update_kernel<Ty, 3><<<grid, kThreads, 0, stream>>>(l, yy, g, n); break;
    case 4: update_kernel<Ty, 4><<<grid, kThreads, 0, stream>>>(l, yy, g, n); break;
    default: update_kernel<Ty, 5><<<grid, kThreads, 0, stream>>>(l, yy, g, n); break;
  }
  return launched("taylor_update");
}

}  // namespace
}  // namespace cuda
}  // namespace cachedit

using namespace cachedit;
using namespace cachedit::cuda;

static int cuda_taylor_predict_impl(int dtype, void* out, const void* const* terms, int nterms, double k,
                                    int64_t n, void* stream) {
  if (n < 0 || nterms < 1 || nterms > CDIT_TAYLOR_MAX_TERMS || terms == nullptr || !std::isfinite(k))
    return CDIT_ERR_ARGUMENT;
  if (dtype != CDIT_F32 && dtype != CDIT_BF16 && dtype != CDIT_F16) return CDIT_ERR_DTYPE;
  CDIT_CUDA_REQUIRE_DEVICE();
  if (n == 0) return CDIT_OK;
  if (out == nullptr) return CDIT_ERR_ARGUMENT;
  switch (dtype) {
    case CDIT_F32: return predict<F32>(out, terms, nterms, k, n, as_stream(stream));
    case CDIT_BF16: return predict<BF16>(out, terms, nterms, k, n, as_stream(stream));
    default: return predict<F16>(out, terms, nterms, k, n, as_stream(stream));
  }
}

static int cuda_taylor_update_impl(int dtype, void* const* ladder, int nvalid, int nlevels, const void* y,
                                   double gap, int64_t n, void* stream) {
  if (n < 0 || ladder == nullptr || nlevels < 1 || nlevels > CDIT_TAYLOR_MAX_TERMS || nvalid < 0 ||
      nvalid > nlevels)
    return CDIT_ERR_ARGUMENT;
  const int count = nvalid + 1 < nlevels ? nvalid + 1 : nlevels;
  if (count > 1 && (!std::isfinite(gap) || gap == 0.0)) return CDIT_ERR_ARGUMENT;
  if (dtype != CDIT_F32 && dtype != CDIT_BF16 && dtype != CDIT_F16) return CDIT_ERR_DTYPE;
  CDIT_CUDA_REQUIRE_DEVICE();
  if (n == 0) return CDIT_OK;
  if (y == nullptr) return CDIT_ERR_ARGUMENT;
  switch (dtype) {
    case CDIT_F32: return update<F32>(ladder, count, y, gap, n, as_stream(stream));
    case CDIT_BF16: return update<BF16>(ladder, count, y, gap, n, as_stream(stream));
    default: return update<F16>(ladder, count, y, gap, n, as_stream(stream));
  }
}

// ---- the C ABI ----

extern "C" cdit_status cdit_cuda_taylor_predict(int dtype, void* out, const void* const* terms, int nterms, double k,
    int64_t n, void* stream) {
  return static_cast<cdit_status>(cuda_taylor_predict_impl(dtype, out, terms, nterms, k, n, stream));
}

extern "C" cdit_status cdit_cuda_taylor_update(int dtype, void* const* ladder, int nvalid, int nlevels, const void* y,
    double gap, int64_t n, void* stream) {
  return static_cast<cdit_status>(cuda_taylor_update_impl(dtype, ladder, nvalid, nlevels, y, gap, n, stream));
}
