// Ulysses all-to-all packing on the GPU (docs/parallelism.md, "What runs where"): one warp per row of D values, fused
// permute + head padding + optional fp8 quantisation with the row scale appended. Row geometry and
// conversions come from the same headers as the CPU kernels, so the bytes are identical.
#include <cstring>

#include "cuda_common.cuh"
#include "ulysses_layout.hpp"

namespace cachedit {
namespace cuda {
namespace {

constexpr int kWarpsPerBlock = kThreads / 32;

__device__ inline float warp_max(float v) {
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

template <Op O, typename Ty, int Wire>
__global__ void __launch_bounds__(kThreads) rows_kernel(Layout g, uint8_t* __restrict__ out,
                                                        const uint8_t* __restrict__ in, int64_t out_rows,
                                                        int64_t wire_bytes) {
  using T = typename Ty::T;
  constexpr bool kPack = O == Op::kPackHeads || O == Op::kPackSeq;
  const int lane = threadIdx.x & 31;
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int64_t nwarps = (static_cast<int64_t>(gridDim.x) * blockDim.x) >> 5;
  const int64_t D = g.D;
  for (int64_t r = warp; r < out_rows; r += nwarps) {
    const int64_t src = src_row<O>(g, r);
    if (kPack) {
      const T* row = src < 0 ? nullptr : reinterpret_cast<const T*>(in) + src * D;
      uint8_t* dst = out + r * wire_bytes;
      if (Wire == CDIT_WIRE_RAW) {
        T* d = reinterpret_cast<T*>(dst);
        for (int64_t i = lane; i < D; i += 32) d[i] = row == nullptr ? T(0) : row[i];
        continue;
      }
      float absmax = 0.f;
      if (row != nullptr)
        for (int64_t i = lane; i < D; i += 32) absmax = fmaxf(absmax, fabsf(Ty::load(row[i])));
      absmax = warp_max(absmax);
      float scale;
      if (Wire == CDIT_WIRE_FP8_F32_SCALE) {
        scale = absmax / kFp8E4m3Max;
        scale = scale > kF32ScaleFloor ? scale : kF32ScaleFloor;
        if (lane == 0) memcpy(dst + D, &scale, 4);
      } else {
        absmax = absmax > kBf16AbsmaxFloor ? absmax : kBf16AbsmaxFloor;
        const uint16_t bits = f32_to_bf16(absmax / kFp8E4m3Max);
        scale = bf16_to_f32(bits);
        if (lane == 0) memcpy(dst + D, &bits, 2);
      }
      for (int64_t i = lane; i < D; i += 32) dst[i] = row == nullptr ? 0 : f32_to_fp8_e4m3(Ty::load(row[i]) / scale);
    } else {
      const uint8_t* s = in + src * wire_bytes;
      T* d = reinterpret_cast<T*>(out) + r * D;
      if (Wire == CDIT_WIRE_RAW) {
        const T* sv = reinterpret_cast<const T*>(s);
        for (int64_t i = lane; i < D; i += 32) d[i] = sv[i];
        continue;
      }
      float scale;
      if (Wire == CDIT_WIRE_FP8_F32_SCALE) {
        memcpy(&scale, s + D, 4);
      } else {
        uint16_t bits;
        memcpy(&bits, s + D, 2);
        scale = bf16_to_f32(bits);
      }
      for (int64_t i = lane; i < D; i += 32) d[i] = Ty::store(fp8_e4m3_to_f32(s[i]) * scale);
    }
  }
}

// Same as cdit_wire_row_bytes (kept local so this library does not link the CPU one).
int64_t row_bytes(int dtype, int wire, int64_t D) {
  const int es = dtype == CDIT_F32 ? 4 : (dtype == CDIT_BF16 || dtype == CDIT_F16) ? 2 : 0;
  if (es == 0 || D < 0) return -1;
  switch (wire) {
    case CDIT_WIRE_RAW: return D * es;
    case CDIT_WIRE_FP8_F32_SCALE: return D + 4;
    case CDIT_WIRE_FP8_BF16_SCALE: return D + 2;
    default: return -1;
  }
}

template <Op O, typename Ty>
int launch_wire(int wire, const Layout& g, void* out, const void* in, int64_t rows, int64_t wb, cudaStream_t st) {
  const int64_t want = (rows + kWarpsPerBlock - 1) / kWarpsPerBlock;
  const unsigned grid = static_cast<unsigned>(want < 1 ? 1 : (want > 65535 * 8 ? 65535 * 8 : want));
  auto o = static_cast<uint8_t*>(out);
  auto i = static_cast<const uint8_t*>(in);
  switch (wire) {
    case CDIT_WIRE_RAW: rows_kernel<O, Ty, CDIT_WIRE_RAW><<<grid, kThreads, 0, st>>>(g, o, i, rows, wb); break;
    case CDIT_WIRE_FP8_F32_SCALE:
      rows_kernel<O, Ty, CDIT_WIRE_FP8_F32_SCALE><<<grid, kThreads, 0, st>>>(g, o, i, rows, wb);
      break;
    default: rows_kernel<O, Ty, CDIT_WIRE_FP8_BF16_SCALE><<<grid, kThreads, 0, st>>>(g, o, i, rows, wb); break;
  }
  return launched("ulysses rows_kernel");
}

template <Op O>
int run(int dtype, int wire, const Layout& g, void* out, const void* in, int64_t rows, void* stream) {
  const int64_t wb = row_bytes(dtype, wire, g.D);
  if (wb < 0) return CDIT_ERR_DTYPE;
  CDIT_CUDA_REQUIRE_DEVICE();
  if (rows == 0 || g.D == 0) return CDIT_OK;
  if (out == nullptr || in == nullptr) return CDIT_ERR_ARGUMENT;
  cudaStream_t st = as_stream(stream);
  switch (dtype) {
    case CDIT_F32: return launch_wire<O, F32>(wire, g, out, in, rows, wb, st);
    case CDIT_BF16: return launch_wire<O, BF16>(wire, g, out, in, rows, wb, st);
    default: return launch_wire<O, F16>(wire, g, out, in, rows, wb, st);
  }
}

bool dims_ok(int64_t a, int64_t b, int64_t c, int64_t d, int64_t e = 0) {
  return a >= 0 && b >= 0 && c >= 0 && d >= 0 && e >= 0;
}

}  // namespace
}  // namespace cuda
}  // namespace cachedit

using namespace cachedit;
using namespace cachedit::cuda;

static int cuda_ulysses_pack_heads_impl(int dtype, int wire, void* out, const void* in, int64_t B, int64_t S,
                                        int64_t H, int64_t D, int64_t P, void* stream) {
  if (!dims_ok(B, S, H, D) || P < 1) return CDIT_ERR_ARGUMENT;
  const Layout g{B, S, H, D, P, (H + P - 1) / P, 0};
  return run<Op::kPackHeads>(dtype, wire, g, out, in, P * S * B * g.Hl, stream);
}

static int cuda_ulysses_unpack_heads_impl(int dtype, int wire, void* out, const void* in, int64_t B,
                                          int64_t S, int64_t H, int64_t D, int64_t P, void* stream) {
  if (!dims_ok(B, S, H, D) || P < 1) return CDIT_ERR_ARGUMENT;
  const Layout g{B, S, H, D, P, (H + P - 1) / P, 0};
  return run<Op::kUnpackHeads>(dtype, wire, g, out, in, B * S * H, stream);
}

static int cuda_ulysses_pack_seq_impl(int dtype, int wire, void* out, const void* in, int64_t B, int64_t S,
                                      int64_t Hk, int64_t Hl, int64_t D, void* stream) {
  if (!dims_ok(B, S, Hk, Hl, D) || Hk > Hl) return CDIT_ERR_ARGUMENT;
  const Layout g{B, S, 0, D, 1, Hl, Hk};
  return run<Op::kPackSeq>(dtype, wire, g, out, in, S * B * Hl, stream);
}

static int cuda_ulysses_unpack_seq_impl(int dtype, int wire, void* out, const void* in, int64_t B, int64_t S,
                                        int64_t Hk, int64_t Hl, int64_t D, void* stream) {
  if (!dims_ok(B, S, Hk, Hl, D) || Hk > Hl) return CDIT_ERR_ARGUMENT;
  const Layout g{B, S, 0, D, 1, Hl, Hk};
  return run<Op::kUnpackSeq>(dtype, wire, g, out, in, B * S * Hk, stream);
}

// ---- the C ABI ----

extern "C" cdit_status cdit_cuda_ulysses_pack_heads(int dtype, int wire, void* out, const void* in, int64_t B,
    int64_t S, int64_t H, int64_t D, int64_t P, void* stream) {
  return static_cast<cdit_status>(cuda_ulysses_pack_heads_impl(dtype, wire, out, in, B, S, H, D, P, stream));
}

extern "C" cdit_status cdit_cuda_ulysses_unpack_heads(int dtype, int wire, void* out, const void* in, int64_t B,
    int64_t S, int64_t H, int64_t D, int64_t P, void* stream) {
  return static_cast<cdit_status>(cuda_ulysses_unpack_heads_impl(dtype, wire, out, in, B, S, H, D, P, stream));
}

extern "C" cdit_status cdit_cuda_ulysses_pack_seq(int dtype, int wire, void* out, const void* in, int64_t B, int64_t S,
    int64_t Hk, int64_t Hl, int64_t D, void* stream) {
  return static_cast<cdit_status>(cuda_ulysses_pack_seq_impl(dtype, wire, out, in, B, S, Hk, Hl, D, stream));
}

extern "C" cdit_status cdit_cuda_ulysses_unpack_seq(int dtype, int wire, void* out, const void* in, int64_t B,
    int64_t S, int64_t Hk, int64_t Hl, int64_t D, void* stream) {
  return static_cast<cdit_status>(cuda_ulysses_unpack_seq_impl(dtype, wire, out, in, B, S, Hk, Hl, D, stream));
}
