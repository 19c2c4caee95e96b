// Low-bit linear layers on the GPU: the same packed weights, fixed-point activations, int32 sums and
// fp32 flushes as native/quant.cpp, in the same order per output, so results are bit-identical to
// the CPU library (docs/quantization.md).
#include <cmath>

#include "cuda_common.cuh"
#include "quant_layout.hpp"

namespace cachedit {
namespace cuda {
namespace {

using quant::act_max;
using quant::flush_pairs;
using quant::kFp8Fixed;
using quant::kPanel;

constexpr int kTile = 64;   // outputs per block side
constexpr int kChunk = 16;  // k pairs staged in shared memory at a time

// Largest |x| of the whole input (per-tensor activations): non-negative floats order as their bits.
template <typename Ty>
__global__ void absmax_kernel(const typename Ty::T* __restrict__ x, int64_t n, unsigned* out) {
  float m = 0.f;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    m = fmaxf(m, fabsf(Ty::load(x[i])));
  }
  atomicMax(out, __float_as_uint(m));
}

// One block per row: absmax, scale, fixed-point values (zero padded to Kp), exactly as quantize_row.
template <typename Ty>
__global__ void __launch_bounds__(kThreads) quantize_rows_kernel(const typename Ty::T* __restrict__ x, int64_t K,
                                                                 int64_t Kp, int qact, int32_t amax,
                                                                 const unsigned* tensor_absmax,
                                                                 int16_t* __restrict__ a, float* row_scale) {
  const int64_t m = blockIdx.x;
  const typename Ty::T* row = x + m * K;
  __shared__ float red[kThreads];
  float local = 0.f;
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x) local = fmaxf(local, fabsf(Ty::load(row[k])));
  red[threadIdx.x] = local;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) red[threadIdx.x] = fmaxf(red[threadIdx.x], red[threadIdx.x + s]);
    __syncthreads();
  }
  const bool per_tensor = qact == CDIT_QA_INT8_TENSOR || qact == CDIT_QA_FP8_TENSOR;
  const float absmax = per_tensor ? __uint_as_float(*tensor_absmax) : red[0];
  int16_t* out = a + m * Kp;
  if (qact == CDIT_QA_FP8_ROW || qact == CDIT_QA_FP8_TENSOR) {
    const float s8 = absmax > 0.f ? __fdiv_rn(absmax, kFp8E4m3Max) : 1.f;
    const float inv8 = __fdiv_rn(1.f, s8);
    const float fix = __fdiv_rn(static_cast<float>(amax), kFp8E4m3Max);
    if (threadIdx.x == 0) row_scale[m] = __fdiv_rn(s8, fix);
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) {
      out[k] = static_cast<int16_t>(round_even(__fmul_rn(fp8_round(__fmul_rn(Ty::load(row[k]), inv8)), fix)));
    }
  } else {
    const float s = absmax > 0.f ? __fdiv_rn(absmax, static_cast<float>(amax)) : 1.f;
    const float inv = __fdiv_rn(1.f, s);
    const float lim = static_cast<float>(amax);
    if (threadIdx.x == 0) row_scale[m] = s;
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) {
      const float v = round_even(__fmul_rn(Ty::load(row[k]), inv));
      out[k] = static_cast<int16_t>(fminf(lim, fmaxf(-lim, v)));
    }
  }
  for (int64_t k = K + threadIdx.x; k < Kp; k += blockDim.x) out[k] = 0;
}

__device__ inline int16_t weight_value(int qweight, const uint8_t* __restrict__ packed, int64_t pairs, int64_t n,
                                       int64_t p, int j) {
  const int64_t panel = n / kPanel, c = n % kPanel;
  if (qweight == CDIT_QW_INT4) {
    const uint8_t b = packed[(panel * pairs + p) * kPanel + c];
    return static_cast<int16_t>((j ? b >> 4 : b & 0x0F) - 8);
  }
  const uint8_t b = packed[((panel * pairs + p) * kPanel + c) * 2 + j];
  if (qweight == CDIT_QW_INT8) return static_cast<int8_t>(b);
  const float f = fp8_e4m3_to_f32(b);
  return static_cast<int16_t>(f != f ? 0.f : round_even(__fmul_rn(f, __fdiv_rn(kFp8Fixed, kFp8E4m3Max))));
}

// A 64 x 64 output tile per block, 4 x 4 per thread. Each output: c = 0; for each flush group of k
// pairs, c += float(int32 sum) (* group scale); y = c * (row scale * column scale) + bias.
template <typename Ty>
__global__ void __launch_bounds__(256) gemm_kernel(const int16_t* __restrict__ a, int64_t M, int64_t Kp,
                                                   const uint8_t* __restrict__ packed, const float* __restrict__ scales,
                                                   int64_t N, int64_t K, int64_t group, int per_tensor_w, int qweight,
                                                   int64_t flush, const float* __restrict__ row_scale,
                                                   const typename Ty::T* __restrict__ bias, typename Ty::T* y) {
  __shared__ int32_t as[kTile][kChunk + 1];  // a row's pair (two int16) as one int32
  __shared__ int32_t bs[kChunk][kTile + 1];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kTile, n0 = static_cast<int64_t>(blockIdx.x) * kTile;
  const int64_t pairs = Kp / 2;
  const int64_t chunk = flush < kChunk ? flush : kChunk;  // both powers of two: chunks never straddle a flush
  float c[4][4] = {};
  int32_t acc[4][4] = {};
  for (int64_t p0 = 0; p0 < pairs; p0 += chunk) {
    const int64_t np = pairs - p0 < chunk ? pairs - p0 : chunk;
    for (int i = threadIdx.x; i < kTile * kChunk; i += blockDim.x) {
      const int r = i / kChunk, q = i % kChunk;
      const int64_t m = m0 + r;
      int32_t v = 0;
      if (m < M && q < np) {
        const int16_t* src = a + m * Kp + 2 * (p0 + q);
        v = static_cast<int32_t>(static_cast<uint16_t>(src[0])) | (static_cast<int32_t>(src[1]) << 16);
      }
      as[r][q] = v;
      const int q2 = i / kTile, col = i % kTile;
      const int64_t n = n0 + col;
      int32_t w = 0;
      if (n < N && q2 < np) {
        const int16_t w0 = weight_value(qweight, packed, pairs, n, p0 + q2, 0);
        const int16_t w1 = weight_value(qweight, packed, pairs, n, p0 + q2, 1);
        w = static_cast<int32_t>(static_cast<uint16_t>(w0)) | (static_cast<int32_t>(w1) << 16);
      }
      bs[q2][col] = w;
    }
    __syncthreads();
    for (int q = 0; q < np; ++q) {
      int32_t av[4], bv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        av[i] = as[ty * 4 + i][q];
        bv[i] = bs[q][tx * 4 + i];
      }
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int32_t a0 = static_cast<int16_t>(av[i] & 0xFFFF), a1 = av[i] >> 16;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int32_t b0 = static_cast<int16_t>(bv[j] & 0xFFFF), b1 = bv[j] >> 16;
          acc[i][j] += a0 * b0 + a1 * b1;
        }
      }
    }
    __syncthreads();
    const int64_t p1 = p0 + np;
    if (p1 % flush == 0 || p1 == pairs) {
      const int64_t g = (2 * (p1 - 1)) / (group > 0 ? group : 1);
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int64_t n = n0 + tx * 4 + j;
          const float v = static_cast<float>(acc[i][j]);
          if (qweight == CDIT_QW_INT4) {
            const float gs = n < N ? scales[n * (K / group) + g] : 0.f;
            c[i][j] = __fadd_rn(c[i][j], __fmul_rn(v, gs));
          } else {
            c[i][j] = __fadd_rn(c[i][j], v);
          }
          acc[i][j] = 0;
        }
    }
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t m = m0 + ty * 4 + i;
    if (m >= M) continue;
    const float rs = row_scale[m];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t n = n0 + tx * 4 + j;
      if (n >= N) continue;
      float cs = 1.f;
      if (qweight != CDIT_QW_INT4) {
        const float s = per_tensor_w ? scales[0] : scales[n];
        cs = qweight == CDIT_QW_FP8 ? __fmul_rn(s, __fdiv_rn(kFp8E4m3Max, kFp8Fixed)) : s;
      }
      const float b = bias ? Ty::load(bias[n]) : 0.f;
      y[m * N + n] = Ty::store(__fadd_rn(__fmul_rn(c[i][j], __fmul_rn(rs, cs)), b));
    }
  }
}

template <typename Ty>
int run(int qact, int qweight, const void* x, int64_t M, int64_t K, const void* packed, const float* scales, int64_t N,
        int64_t group, int per_tensor_w, const void* bias, void* y, cudaStream_t stream) {
  const int64_t Kp = (K + 1) / 2 * 2;
  const int32_t amax = act_max(qweight, qact);
  const int64_t flush = flush_pairs(qweight, qact, group);
  void* scratch = nullptr;
  const size_t a_bytes = static_cast<size_t>(M * Kp) * sizeof(int16_t);
  const size_t bytes = a_bytes + static_cast<size_t>(M) * sizeof(float) + 64;
  int st = record(cudaMallocAsync(&scratch, bytes, stream), "cdit_cuda_qlinear scratch");
  if (st != CDIT_OK) return st;
  auto* a = static_cast<int16_t*>(scratch);
  auto* row_scale = reinterpret_cast<float*>(static_cast<uint8_t*>(scratch) + a_bytes);
  auto* tensor_absmax = reinterpret_cast<unsigned*>(row_scale + M);
  const auto* xt = static_cast<const typename Ty::T*>(x);
  if (qact == CDIT_QA_INT8_TENSOR || qact == CDIT_QA_FP8_TENSOR) {
    cudaMemsetAsync(tensor_absmax, 0, sizeof(unsigned), stream);
    absmax_kernel<Ty><<<grid_for(M * K, 8), kThreads, 0, stream>>>(xt, M * K, tensor_absmax);
  }
  quantize_rows_kernel<Ty><<<static_cast<unsigned>(M), kThreads, 0, stream>>>(xt, K, Kp, qact, amax, tensor_absmax, a,
                                                                             row_scale);
  const dim3 grid(static_cast<unsigned>((N + kTile - 1) / kTile), static_cast<unsigned>((M + kTile - 1) / kTile));
  gemm_kernel<Ty><<<grid, 256, 0, stream>>>(a, M, Kp, static_cast<const uint8_t*>(packed), scales, N, K, group,
                                            per_tensor_w, qweight, flush, row_scale,
                                            static_cast<const typename Ty::T*>(bias), static_cast<typename Ty::T*>(y));
  st = launched("cdit_cuda_qlinear");
  const int freed = record(cudaFreeAsync(scratch, stream), "cdit_cuda_qlinear free");
  return st != CDIT_OK ? st : freed;
}

}  // namespace
}  // namespace cuda
}  // namespace cachedit

using namespace cachedit;

static int cuda_qlinear_impl(int dtype, int qact, int qweight, const void* x, int64_t M, int64_t K,
                             const void* packed, const float* scales, int64_t N, int64_t group, int per_tensor_w,
                             const void* bias, void* y, void* stream) {
  CDIT_CUDA_REQUIRE_DEVICE();
  if (qact < CDIT_QA_NONE || qact > CDIT_QA_FP8_TENSOR) return CDIT_ERR_DTYPE;
  if (qweight != CDIT_QW_INT8 && qweight != CDIT_QW_FP8 && qweight != CDIT_QW_INT4) return CDIT_ERR_DTYPE;
  if (M < 0 || N <= 0 || K <= 0) return CDIT_ERR_ARGUMENT;
  if (qweight == CDIT_QW_INT4 && (group < 2 || group % 2 || 512 % group || K % group || per_tensor_w)) {
    return CDIT_ERR_ARGUMENT;
  }
  if (M == 0) return CDIT_OK;
  if (!x || !packed || !scales || !y) return CDIT_ERR_ARGUMENT;
  cudaStream_t s = cuda::as_stream(stream);
  switch (dtype) {
    case CDIT_F32: return cuda::run<F32>(qact, qweight, x, M, K, packed, scales, N, group, per_tensor_w, bias, y, s);
    case CDIT_BF16: return cuda::run<BF16>(qact, qweight, x, M, K, packed, scales, N, group, per_tensor_w, bias, y, s);
    case CDIT_F16: return cuda::run<F16>(qact, qweight, x, M, K, packed, scales, N, group, per_tensor_w, bias, y, s);
    default: return CDIT_ERR_DTYPE;
  }
}

// ---- the C ABI ----

extern "C" cdit_status cdit_cuda_qlinear(int dtype, int qact, int qweight, const void* x, int64_t M, int64_t K,
    const void* packed, const float* scales, int64_t N, int64_t group, int per_tensor_w, const void* bias, void* y,
    void* stream) {
  return static_cast<cdit_status>(cuda_qlinear_impl(dtype, qact, qweight, x, M, K, packed, scales, N, group,
      per_tensor_w, bias, y, stream));
}
