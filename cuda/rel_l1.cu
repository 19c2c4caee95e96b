// Relative L1 residual difference on the GPU: sum|a-b| and sum|a| (docs/algorithms.md section 3.5).
// Pass 1: a fixed grid (depends only on n) of grid-stride blocks with 16-byte loads writes one
// fp64 partial pair per block; pass 2: one block folds the partials in a fixed order. Results are
// therefore deterministic for a given n.
#include "cuda_common.cuh"

namespace cachedit {
namespace cuda {
namespace {

constexpr int kMaxBlocks = 1024;

// With Residual, the current value is (b - c) rounded to the storage type (cdit_rel_l1_residual_sums).
template <typename Ty, bool Residual>
__global__ void __launch_bounds__(kThreads) rel_l1_partial(const typename Ty::T* __restrict__ a,
                                                           const typename Ty::T* __restrict__ b,
                                                           const typename Ty::T* __restrict__ c, int64_t n,
                                                           bool vector_ok, double* __restrict__ partial) {
  using T = typename Ty::T;
  constexpr int V = 16 / sizeof(T);
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  double diff = 0.0, abs_a = 0.0;
  int64_t tail_begin = 0;
  if (vector_ok) {
    const int64_t nv = n / V;
    const uint4* va = reinterpret_cast<const uint4*>(a);
    const uint4* vb = reinterpret_cast<const uint4*>(b);
    for (int64_t i = tid; i < nv; i += stride) {
      const uint4 ra = __ldg(va + i), rb = __ldg(vb + i);
      uint4 rc = rb;
      if (Residual) rc = __ldg(reinterpret_cast<const uint4*>(c) + i);
      const T* xa = reinterpret_cast<const T*>(&ra);
      const T* xb = reinterpret_cast<const T*>(&rb);
      const T* xc = reinterpret_cast<const T*>(&rc);
      float d = 0.f, s = 0.f;
#pragma unroll
      for (int k = 0; k < V; ++k) {
        const float x = Ty::load(xa[k]);
        const float y = Residual ? Ty::load(Ty::store(Ty::load(xb[k]) - Ty::load(xc[k]))) : Ty::load(xb[k]);
        d += fabsf(x - y);
        s += fabsf(x);
      }
      diff += d;
      abs_a += s;
    }
    tail_begin = nv * V;
  }
  for (int64_t i = tail_begin + tid; i < n; i += stride) {
    const float x = Ty::load(a[i]);
    const float y = Residual ? Ty::load(Ty::store(Ty::load(b[i]) - Ty::load(c[i]))) : Ty::load(b[i]);
    diff += fabsf(x - y);
    abs_a += fabsf(x);
  }
  diff = block_sum(diff);
  abs_a = block_sum(abs_a);
  if (threadIdx.x == 0) {
    partial[2 * blockIdx.x] = diff;
    partial[2 * blockIdx.x + 1] = abs_a;
  }
}

__global__ void __launch_bounds__(kThreads) rel_l1_final(const double* __restrict__ partial, int nblocks,
                                                         double* __restrict__ out) {
  double diff = 0.0, abs_a = 0.0;
  for (int i = threadIdx.x; i < nblocks; i += blockDim.x) {
    diff += partial[2 * i];
    abs_a += partial[2 * i + 1];
  }
  diff = block_sum(diff);
  abs_a = block_sum(abs_a);
  if (threadIdx.x == 0) {
    out[0] = diff;
    out[1] = abs_a;
  }
}

template <typename Ty, bool Residual>
int run(const void* a, const void* b, const void* c, int64_t n, double* out, cudaStream_t stream) {
  using T = typename Ty::T;
  constexpr int V = 16 / sizeof(T);
  const int64_t want = (n + static_cast<int64_t>(kThreads) * V * 4 - 1) / (static_cast<int64_t>(kThreads) * V * 4);
  const int blocks = static_cast<int>(want < 1 ? 1 : (want > kMaxBlocks ? kMaxBlocks : want));
  double* partial = nullptr;
  int status = record(cudaMallocAsync(reinterpret_cast<void**>(&partial), sizeof(double) * 2 * blocks, stream),
                      "cudaMallocAsync(rel_l1 partials)");
  if (status != CDIT_OK) return status;
  const bool vector_ok = (reinterpret_cast<uintptr_t>(a) % 16 == 0) && (reinterpret_cast<uintptr_t>(b) % 16 == 0) &&
                         (!Residual || reinterpret_cast<uintptr_t>(c) % 16 == 0);
  rel_l1_partial<Ty, Residual><<<blocks, kThreads, 0, stream>>>(static_cast<const T*>(a), static_cast<const T*>(b),
                                                               static_cast<const T*>(c), n, vector_ok, partial);
  status = launched("rel_l1_partial");
  if (status == CDIT_OK) {
    rel_l1_final<<<1, kThreads, 0, stream>>>(partial, blocks, out);
    status = launched("rel_l1_final");
  }
  const int free_status = record(cudaFreeAsync(partial, stream), "cudaFreeAsync(rel_l1 partials)");
  return status != CDIT_OK ? status : free_status;
}

}  // namespace
}  // namespace cuda
}  // namespace cachedit

using namespace cachedit;
using namespace cachedit::cuda;

static int cuda_rel_l1_sums_impl(int dtype, const void* a, const void* b, int64_t n, double* device_out,
                                 void* stream) {
  if (n < 0 || device_out == nullptr || (n > 0 && (a == nullptr || b == nullptr))) return CDIT_ERR_ARGUMENT;
  if (dtype != CDIT_F32 && dtype != CDIT_BF16 && dtype != CDIT_F16) return CDIT_ERR_DTYPE;
  CDIT_CUDA_REQUIRE_DEVICE();
  switch (dtype) {
    case CDIT_F32: return run<F32, false>(a, b, nullptr, n, device_out, as_stream(stream));
    case CDIT_BF16: return run<BF16, false>(a, b, nullptr, n, device_out, as_stream(stream));
    default: return run<F16, false>(a, b, nullptr, n, device_out, as_stream(stream));
  }
}

static int cuda_rel_l1_residual_sums_impl(int dtype, const void* prev, const void* after, const void* before,
                                          int64_t n, double* device_out, void* stream) {
  if (n < 0 || device_out == nullptr || (n > 0 && (prev == nullptr || after == nullptr || before == nullptr)))
    return CDIT_ERR_ARGUMENT;
  if (dtype != CDIT_F32 && dtype != CDIT_BF16 && dtype != CDIT_F16) return CDIT_ERR_DTYPE;
  CDIT_CUDA_REQUIRE_DEVICE();
  switch (dtype) {
    case CDIT_F32: return run<F32, true>(prev, after, before, n, device_out, as_stream(stream));
    case CDIT_BF16: return run<BF16, true>(prev, after, before, n, device_out, as_stream(stream));
    default: return run<F16, true>(prev, after, before, n, device_out, as_stream(stream));
  }
}

// ---- the C ABI ----

extern "C" cdit_status cdit_cuda_rel_l1_sums(int dtype, const void* a, const void* b, int64_t n, double* device_out,
    void* stream) {
  return static_cast<cdit_status>(cuda_rel_l1_sums_impl(dtype, a, b, n, device_out, stream));
}

extern "C" cdit_status cdit_cuda_rel_l1_residual_sums(int dtype, const void* prev, const void* after,
    const void* before, int64_t n, double* device_out, void* stream) {
  return static_cast<cdit_status>(cuda_rel_l1_residual_sums_impl(dtype, prev, after, before, n, device_out, stream));
}
