// bf16-compute fp32 linear layer: y[M, N] = bf16(x)[M, K] bf16(W)[N, K]^T + b, fp32 accumulation
// (docs/kernels.md section 6; the opt-in bf16 compute mode of docs/runtime.md).
//
// Inputs and weights are rounded to bf16 (round to nearest even); every product of two bf16 values is
// exact in fp32 and is added to an fp32 accumulator, two inputs at a time in the order of AVX-512
// BF16's vdpbf16ps (the odd input of a pair first). Rows are never mixed and K is never split, so a
// row's result does not depend on the batch or the thread count. On CPUs with AVX-512 BF16 the
// micro-kernel is vdpbf16ps (twice the multiply-adds of an fp32 FMA per instruction); elsewhere a
// portable loop does the same arithmetic, which agrees with the hardware except where vdpbf16ps
// flushes a denormal (it treats denormal inputs and results as zero).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cachedit_kernels.h"
#include "error.hpp"
#include "isa.hpp"
#include "linear_common.hpp"
#include "numeric.hpp"
#include "parallel.hpp"

namespace cachedit {
namespace {

constexpr int64_t kCols = 16;       // outputs per packed panel: one zmm of fp32 accumulators per row
constexpr int kRows = 12;           // rows per micro-kernel call (12 accumulators)
constexpr int64_t kRowBlock = 96;   // rows per work item, a multiple of kRows

int64_t panels(int64_t N) { return (N + kCols - 1) / kCols; }
int64_t pairs(int64_t K) { return (K + 1) / 2; }

// x rows [rows][K] fp32 -> [rows][2 * pairs] bf16, the odd tail input zero.
CDIT_CLONES void round_rows(const float* x, int rows, int64_t K, uint16_t* out) {
  const int64_t Kp = 2 * pairs(K);
  for (int r = 0; r < rows; ++r) {
    const float* xr = x + r * K;
    uint16_t* o = out + r * Kp;
    for (int64_t k = 0; k < K; ++k) o[k] = f32_to_bf16(xr[k]);
    if (Kp != K) o[K] = 0;
  }
}

// Portable micro-kernel: rows x 16 outputs of one panel. panel: [pairs][16][2] bf16. Not
// loop-vectorised: GCC 12's loop vectorizer miscompiles this loop nest at -O3 (on x86-64 and aarch64
// alike; a wrong sum, not a rounding difference), and the vector path is vdpbf16ps anyway.
__attribute__((optimize("no-tree-loop-vectorize"))) void micro_generic(const uint16_t* xb, int64_t Kp,
                                                                       const uint16_t* panel, int rows, float* out) {
  for (int r = 0; r < rows; ++r) {
    float acc[kCols] = {};
    const uint16_t* xr = xb + r * Kp;
    for (int64_t p = 0; p < Kp / 2; ++p) {
      const float x0 = bf16_to_f32(xr[2 * p]), x1 = bf16_to_f32(xr[2 * p + 1]);
      const uint16_t* w = panel + p * kCols * 2;
      for (int j = 0; j < kCols; ++j) {
        acc[j] = acc[j] + x1 * bf16_to_f32(w[2 * j + 1]);  // exact products, one rounding per add
        acc[j] = acc[j] + x0 * bf16_to_f32(w[2 * j]);
      }
    }
    std::memcpy(out + r * kCols, acc, sizeof acc);
  }
}

#if CDIT_X86
// Twelve rows x 16 outputs: per input pair one 512-bit weight load, twelve broadcasts, twelve vdpbf16ps.
__attribute__((target("avx512f,avx512bf16"))) void micro_bf16_12(const uint16_t* xb, int64_t Kp,
                                                                  const uint16_t* panel, float* out) {
  __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
  __m512 c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
  const int64_t np = Kp / 2;
  const uint32_t* x32 = reinterpret_cast<const uint32_t*>(xb);  // one pair of bf16 inputs per word
  const int64_t ld = Kp / 2;                                     // words per row
  for (int64_t p = 0; p < np; ++p) {
    const __m512bh w = (__m512bh)_mm512_loadu_si512(panel + p * kCols * 2);
#define CDIT_DP(r) c##r = _mm512_dpbf16_ps(c##r, (__m512bh)_mm512_set1_epi32(static_cast<int>(x32[r * ld + p])), w);
    CDIT_DP(0) CDIT_DP(1) CDIT_DP(2) CDIT_DP(3) CDIT_DP(4) CDIT_DP(5)
    CDIT_DP(6) CDIT_DP(7) CDIT_DP(8) CDIT_DP(9) CDIT_DP(10) CDIT_DP(11)
#undef CDIT_DP
  }
  _mm512_storeu_ps(out + 0 * kCols, c0);
  _mm512_storeu_ps(out + 1 * kCols, c1);
  _mm512_storeu_ps(out + 2 * kCols, c2);
  _mm512_storeu_ps(out + 3 * kCols, c3);
  _mm512_storeu_ps(out + 4 * kCols, c4);
  _mm512_storeu_ps(out + 5 * kCols, c5);
  _mm512_storeu_ps(out + 6 * kCols, c6);
  _mm512_storeu_ps(out + 7 * kCols, c7);
  _mm512_storeu_ps(out + 8 * kCols, c8);
  _mm512_storeu_ps(out + 9 * kCols, c9);
  _mm512_storeu_ps(out + 10 * kCols, c10);
  _mm512_storeu_ps(out + 11 * kCols, c11);
}

// Twelve rows x 32 outputs (two panels side by side): per input pair two weight loads, twelve
// broadcasts, 24 vdpbf16ps, so each broadcast feeds two dot products. Same arithmetic per output as
// micro_bf16_12 on each panel.
__attribute__((target("avx512f,avx512bf16"))) void micro_bf16_12x2(const uint16_t* xb, int64_t Kp,
                                                                    const uint16_t* panel0, const uint16_t* panel1,
                                                                    float* out) {
  __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
  __m512 c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
  __m512 d0 = c0, d1 = c0, d2 = c0, d3 = c0, d4 = c0, d5 = c0;
  __m512 d6 = c0, d7 = c0, d8 = c0, d9 = c0, d10 = c0, d11 = c0;
  const int64_t np = Kp / 2;
  const uint32_t* x32 = reinterpret_cast<const uint32_t*>(xb);
  const int64_t ld = Kp / 2;
  for (int64_t p = 0; p < np; ++p) {
    const __m512bh w0 = (__m512bh)_mm512_loadu_si512(panel0 + p * kCols * 2);
    const __m512bh w1 = (__m512bh)_mm512_loadu_si512(panel1 + p * kCols * 2);
#define CDIT_DP2(r)                                                              \
  {                                                                              \
    const __m512bh b = (__m512bh)_mm512_set1_epi32(static_cast<int>(x32[r * ld + p])); \
    c##r = _mm512_dpbf16_ps(c##r, b, w0);                                        \
    d##r = _mm512_dpbf16_ps(d##r, b, w1);                                        \
  }
    CDIT_DP2(0) CDIT_DP2(1) CDIT_DP2(2) CDIT_DP2(3) CDIT_DP2(4) CDIT_DP2(5)
    CDIT_DP2(6) CDIT_DP2(7) CDIT_DP2(8) CDIT_DP2(9) CDIT_DP2(10) CDIT_DP2(11)
#undef CDIT_DP2
  }
#define CDIT_ST2(r)                                      \
  _mm512_storeu_ps(out + r * 2 * kCols, c##r);           \
  _mm512_storeu_ps(out + r * 2 * kCols + kCols, d##r);
  CDIT_ST2(0) CDIT_ST2(1) CDIT_ST2(2) CDIT_ST2(3) CDIT_ST2(4) CDIT_ST2(5)
  CDIT_ST2(6) CDIT_ST2(7) CDIT_ST2(8) CDIT_ST2(9) CDIT_ST2(10) CDIT_ST2(11)
#undef CDIT_ST2
}
#endif

bool use_bf16_isa() {
#if CDIT_X86
  __builtin_cpu_init();
  if (portable_path_forced("CACHEDIT_LINEAR_ISA")) return false;
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

int linear_bf16_impl(bool vec, const float* x, int64_t M, int64_t K, const uint16_t* packed, int64_t N,
                     const float* bias, const Epilogue& epilogue, float* y, int nthreads) {
  int st = check_linear_args(x, M, K, packed, N, y);
  if (st == CDIT_OK) st = check_epilogue(epilogue, N);
  if (st != CDIT_OK || M == 0) return st;
  if (nthreads < 1) nthreads = 1;
  const int64_t np = panels(N);
  const int64_t Kp = 2 * pairs(K);
  const int64_t row_blocks = (M + kRowBlock - 1) / kRowBlock;
  const int64_t rows_per_item = std::min(M, kRowBlock);
  const int store_level = vec ? store_tile_level() : 0;
  // work items: row blocks; each rounds its rows once and runs all panels over them
  parallel_blocks(row_blocks, 1, nthreads, rows_per_item * K * np * kCols / 8, [&](int64_t begin, int64_t end) {
    std::vector<uint16_t> xb(static_cast<size_t>(kRowBlock * Kp));
    float tile[kRows * kCols];
#if CDIT_X86
    float tile2[kRows * 2 * kCols];
#endif
    for (int64_t rb = begin; rb < end; ++rb) {
      const int64_t m0 = rb * kRowBlock;
      const int64_t m_end = std::min(M, m0 + kRowBlock);
      const int block_rows = static_cast<int>(m_end - m0);
      // rows past the block's end stay zero: a short tail runs through the same kernel
      std::fill(xb.begin(), xb.end(), uint16_t{0});
      round_rows(x + m0 * K, block_rows, K, xb.data());
      for (int64_t p = 0; p < np;) {
        const int64_t n0 = p * kCols;
#if CDIT_X86
        if (vec && p + 1 < np) {  // two panels at once
          const int64_t cols = std::min(2 * kCols, N - n0);
          for (int m = 0; m < block_rows; m += kRows) {
            const int rows = std::min(kRows, block_rows - m);
            micro_bf16_12x2(xb.data() + m * Kp, Kp, packed + p * kCols * Kp, packed + (p + 1) * kCols * Kp, tile2);
            store_tile(store_level, tile2, rows, 2 * kCols, cols, bias, n0, epilogue, m0 + m, y, N);
          }
          p += 2;
          continue;
        }
#endif
        const uint16_t* panel = packed + p * kCols * Kp;
        const int64_t cols = std::min(kCols, N - n0);
        for (int m = 0; m < block_rows; m += kRows) {
          const int rows = std::min(kRows, block_rows - m);
#if CDIT_X86
          if (vec) {
            micro_bf16_12(xb.data() + m * Kp, Kp, panel, tile);
          } else {
            micro_generic(xb.data() + m * Kp, Kp, panel, rows, tile);
          }
#else
          (void)vec;
          micro_generic(xb.data() + m * Kp, Kp, panel, rows, tile);
#endif
          store_tile(store_level, tile, rows, kCols, cols, bias, n0, epilogue, m0 + m, y, N);
        }
        ++p;
      }
    }
  });
  return CDIT_OK;
}

}  // namespace
}  // namespace cachedit

using namespace cachedit;

extern "C" int64_t cdit_linear_bf16_packed_elements(int64_t N, int64_t K) {
  if (N <= 0 || K <= 0) return -1;
  return panels(N) * kCols * 2 * pairs(K);
}

static int linear_bf16_pack_impl(const float* w, int64_t N, int64_t K, uint16_t* packed, int nthreads) {
  const int st = check_pack_args(w, N, K, packed);
  if (st != CDIT_OK) return st;
  if (nthreads < 1) nthreads = 1;
  const int64_t np = pairs(K);
  parallel_blocks(panels(N), 1, nthreads, kCols * K, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      uint16_t* dst = packed + p * kCols * 2 * np;
      for (int64_t q = 0; q < np; ++q) {
        for (int64_t j = 0; j < kCols; ++j) {
          const int64_t n = p * kCols + j;
          for (int64_t h = 0; h < 2; ++h) {
            const int64_t k = 2 * q + h;
            dst[(q * kCols + j) * 2 + h] = n < N && k < K ? f32_to_bf16(w[n * K + k]) : uint16_t{0};
          }
        }
      }
    }
  });
  return CDIT_OK;
}

extern "C" cdit_status cdit_linear_bf16_pack(const float* w, int64_t N, int64_t K, uint16_t* packed, int nthreads) {
  return checked("cdit_linear_bf16_pack", linear_bf16_pack_impl(w, N, K, packed, nthreads));
}

extern "C" cdit_status cdit_linear_bf16(const float* x, int64_t M, int64_t K, const uint16_t* packed, int64_t N,
                                        const float* bias, float* y, int nthreads) {
  return checked("cdit_linear_bf16",
                 linear_bf16_impl(use_bf16_isa(), x, M, K, packed, N, bias, Epilogue{}, y, nthreads));
}

extern "C" cdit_status cdit_linear_bf16_act(const float* x, int64_t M, int64_t K, const uint16_t* packed, int64_t N,
                                            const float* bias, int activation, float* y, int nthreads) {
  Epilogue e;
  e.activation = activation;
  return checked("cdit_linear_bf16_act", linear_bf16_impl(use_bf16_isa(), x, M, K, packed, N, bias, e, y, nthreads));
}

extern "C" cdit_status cdit_linear_bf16_gated(const float* x, int64_t M, int64_t K, const uint16_t* packed, int64_t N,
                                              const float* bias, const float* residual, const float* gate,
                                              int64_t rows_per_gate, int64_t gate_stride, float* y, int nthreads) {
  if (!residual) return checked("cdit_linear_bf16_gated", fail(CDIT_ERR_ARGUMENT, "residual must not be NULL"));
  const Epilogue e = gated_epilogue(residual, gate, rows_per_gate, gate_stride);
  return checked("cdit_linear_bf16_gated", linear_bf16_impl(use_bf16_isa(), x, M, K, packed, N, bias, e, y, nthreads));
}

extern "C" const char* cdit_linear_bf16_isa(void) { return use_bf16_isa() ? "avx512bf16" : "default"; }
