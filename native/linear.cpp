// Batch-invariant fp32 linear layer: y[M, N] = x[M, K] W[N, K]^T + b (docs/serving.md, "Batching").
//
// Every output element is computed by the same sequence of operations whatever M, the row's position
// in the batch, the thread count or the instruction set: acc = 0; for k = 0..K-1: acc = fma(x[m,k],
// W[n,k], acc); y = acc + b[n]. Rows are never mixed, K is never split, and the AVX2 micro-kernel (one
// fused multiply-add per element and k, rounding once) and the portable loop (std::fma) round alike,
// so a request's rows come out bit-identical alone or batched with others. BLAS libraries choose
// tiles, K blocking and kernels by matrix size, so they do not give that.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cachedit_kernels.h"
#include "error.hpp"
#include "isa.hpp"
#include "linear_common.hpp"
#include "parallel.hpp"

namespace cachedit {
namespace {

constexpr int64_t kCols = 16;      // outputs per packed panel (two AVX2 registers)
constexpr int kRows = 6;           // rows of one micro-kernel call (12 accumulators)
constexpr int64_t kRowBlock = 96;  // rows per work item, a multiple of kRows

// Portable micro-kernel: rows x kCols outputs of one panel, written to out (ldo floats apart).
void micro_generic(const float* x, int64_t K, const float* panel, int rows, float* out, int64_t ldo) {
  for (int r = 0; r < rows; ++r) {
    float acc[kCols] = {};
    const float* xr = x + r * K;
    for (int64_t k = 0; k < K; ++k) {
      const float a = xr[k];
      const float* w = panel + k * kCols;
      for (int j = 0; j < kCols; ++j) acc[j] = std::fma(a, w[j], acc[j]);
    }
    std::memcpy(out + r * ldo, acc, sizeof acc);
  }
}

// Six rows x 16 outputs, twelve named accumulators (GCC keeps an array of vectors on the stack).
#if CDIT_X86
CDIT_TARGET_AVX2_FMA void micro_avx2_6(const float* x, int64_t K, const float* panel, float* out,
                                                      int64_t ldo) {
  __m256 a0l = _mm256_setzero_ps(), a0h = a0l, a1l = a0l, a1h = a0l, a2l = a0l, a2h = a0l;
  __m256 a3l = a0l, a3h = a0l, a4l = a0l, a4h = a0l, a5l = a0l, a5h = a0l;
  const float* x0 = x;
  const float* x1 = x + K;
  const float* x2 = x + 2 * K;
  const float* x3 = x + 3 * K;
  const float* x4 = x + 4 * K;
  const float* x5 = x + 5 * K;
  for (int64_t k = 0; k < K; ++k) {
    const __m256 w0 = _mm256_loadu_ps(panel + k * kCols);
    const __m256 w1 = _mm256_loadu_ps(panel + k * kCols + 8);
    __m256 b = _mm256_broadcast_ss(x0 + k);
    a0l = _mm256_fmadd_ps(b, w0, a0l);
    a0h = _mm256_fmadd_ps(b, w1, a0h);
    b = _mm256_broadcast_ss(x1 + k);
    a1l = _mm256_fmadd_ps(b, w0, a1l);
    a1h = _mm256_fmadd_ps(b, w1, a1h);
    b = _mm256_broadcast_ss(x2 + k);
    a2l = _mm256_fmadd_ps(b, w0, a2l);
    a2h = _mm256_fmadd_ps(b, w1, a2h);
    b = _mm256_broadcast_ss(x3 + k);
    a3l = _mm256_fmadd_ps(b, w0, a3l);
    a3h = _mm256_fmadd_ps(b, w1, a3h);
    b = _mm256_broadcast_ss(x4 + k);
    a4l = _mm256_fmadd_ps(b, w0, a4l);
    a4h = _mm256_fmadd_ps(b, w1, a4h);
    b = _mm256_broadcast_ss(x5 + k);
    a5l = _mm256_fmadd_ps(b, w0, a5l);
    a5h = _mm256_fmadd_ps(b, w1, a5h);
  }
  _mm256_storeu_ps(out, a0l);
  _mm256_storeu_ps(out + 8, a0h);
  _mm256_storeu_ps(out + ldo, a1l);
  _mm256_storeu_ps(out + ldo + 8, a1h);
  _mm256_storeu_ps(out + 2 * ldo, a2l);
  _mm256_storeu_ps(out + 2 * ldo + 8, a2h);
  _mm256_storeu_ps(out + 3 * ldo, a3l);
  _mm256_storeu_ps(out + 3 * ldo + 8, a3h);
  _mm256_storeu_ps(out + 4 * ldo, a4l);
  _mm256_storeu_ps(out + 4 * ldo + 8, a4h);
  _mm256_storeu_ps(out + 5 * ldo, a5l);
  _mm256_storeu_ps(out + 5 * ldo + 8, a5h);
}

// Fewer than six rows run through the same kernel on a zero-padded copy: each computed element sees
// exactly the operations it would see in a full block.
void micro_avx2(const float* x, int64_t K, const float* panel, int rows, float* out, int64_t ldo,
                std::vector<float>& pad) {
  if (rows == kRows) {
    micro_avx2_6(x, K, panel, out, ldo);
    return;
  }
  pad.assign(static_cast<size_t>(kRows * K), 0.0f);
  std::memcpy(pad.data(), x, static_cast<size_t>(rows * K) * sizeof(float));
  micro_avx2_6(pad.data(), K, panel, out, ldo);
}
#endif

bool use_avx2() {
#if CDIT_X86
  __builtin_cpu_init();
  if (portable_path_forced("CACHEDIT_LINEAR_ISA")) return false;
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

int64_t panels(int64_t N) { return (N + kCols - 1) / kCols; }

int linear_impl(bool avx2, const float* x, int64_t M, int64_t K, const float* packed, int64_t N, const float* bias,
                const Epilogue& epilogue, float* y, int nthreads) {
  int st = check_linear_args(x, M, K, packed, N, y);
  if (st == CDIT_OK) st = check_epilogue(epilogue, N);
  if (st != CDIT_OK || M == 0) return st;
  if (nthreads < 1) nthreads = 1;
  const int64_t np = panels(N);
  const int64_t row_blocks = (M + kRowBlock - 1) / kRowBlock;
  // work items: (row block, panel); each writes its own outputs, so any split gives the same bits
  const int64_t rows_per_item = std::min(M, kRowBlock);
  const int store_level = avx2 ? store_tile_level() : 0;
  parallel_blocks(row_blocks * np, 1, nthreads, rows_per_item * K * kCols / 8, [&](int64_t begin, int64_t end) {
    float tile[kRows * kCols];
    std::vector<float> pad;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t rb = item / np;
      const int64_t p = item % np;
      const float* panel = packed + p * kCols * K;
      const int64_t n0 = p * kCols;
      const int64_t cols = std::min(kCols, N - n0);
      const int64_t m_end = std::min(M, (rb + 1) * kRowBlock);
      for (int64_t m = rb * kRowBlock; m < m_end; m += kRows) {
        const int rows = static_cast<int>(std::min<int64_t>(kRows, m_end - m));
#if CDIT_X86
        if (avx2) {
          micro_avx2(x + m * K, K, panel, rows, tile, kCols, pad);
        } else {
          micro_generic(x + m * K, K, panel, rows, tile, kCols);
        }
#else
        (void)avx2;
        micro_generic(x + m * K, K, panel, rows, tile, kCols);
#endif
        store_tile(store_level, tile, rows, kCols, cols, bias, n0, epilogue, m, y, N);
      }
    }
  });
  return CDIT_OK;
}

}  // namespace
}  // namespace cachedit

using namespace cachedit;

extern "C" int64_t cdit_linear_f32_packed_floats(int64_t N, int64_t K) {
  if (N <= 0 || K <= 0) return -1;
  return panels(N) * kCols * K;
}

static int linear_f32_pack_impl(const float* w, int64_t N, int64_t K, float* packed, int nthreads) {
  const int st = check_pack_args(w, N, K, packed);
  if (st != CDIT_OK) return st;
  if (nthreads < 1) nthreads = 1;
  parallel_blocks(panels(N), 1, nthreads, kCols * K, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      float* dst = packed + p * kCols * K;
      for (int64_t k = 0; k < K; ++k) {
        for (int64_t j = 0; j < kCols; ++j) {
          const int64_t n = p * kCols + j;
          dst[k * kCols + j] = n < N ? w[n * K + k] : 0.0f;
        }
      }
    }
  });
  return CDIT_OK;
}

static int linear_f32_impl(const float* x, int64_t M, int64_t K, const float* packed, int64_t N,
                           const float* bias, const Epilogue& epilogue, float* y, int nthreads) {
  return linear_impl(use_avx2(), x, M, K, packed, N, bias, epilogue, y, nthreads);
}

extern "C" const char* cdit_linear_f32_isa(void) { return use_avx2() ? "avx2" : "default"; }

// ---- the C ABI: each entry point records why it failed (cdit_last_error) ----

extern "C" cdit_status cdit_linear_f32_pack(const float* w, int64_t N, int64_t K, float* packed, int nthreads) {
  return checked("cdit_linear_f32_pack", linear_f32_pack_impl(w, N, K, packed, nthreads));
}

extern "C" cdit_status cdit_linear_f32(const float* x, int64_t M, int64_t K, const float* packed, int64_t N,
                                       const float* bias, float* y, int nthreads) {
  return checked("cdit_linear_f32", linear_f32_impl(x, M, K, packed, N, bias, Epilogue{}, y, nthreads));
}

extern "C" cdit_status cdit_linear_f32_act(const float* x, int64_t M, int64_t K, const float* packed, int64_t N,
                                           const float* bias, int activation, float* y, int nthreads) {
  Epilogue e;
  e.activation = activation;
  return checked("cdit_linear_f32_act", linear_f32_impl(x, M, K, packed, N, bias, e, y, nthreads));
}

extern "C" cdit_status cdit_linear_f32_gated(const float* x, int64_t M, int64_t K, const float* packed, int64_t N,
                                             const float* bias, const float* residual, const float* gate,
                                             int64_t rows_per_gate, int64_t gate_stride, float* y, int nthreads) {
  if (!residual) return checked("cdit_linear_f32_gated", fail(CDIT_ERR_ARGUMENT, "residual must not be NULL"));
  const Epilogue e = gated_epilogue(residual, gate, rows_per_gate, gate_stride);
  return checked("cdit_linear_f32_gated", linear_f32_impl(x, M, K, packed, N, bias, e, y, nthreads));
}
