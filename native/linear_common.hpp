// What the fp32 and bf16-compute linear kernels share: argument checks and the tile epilogue.
// Internal header.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "cachedit_kernels.h"
#include "error.hpp"
#include "isa.hpp"

namespace cachedit {

// y = x W^T (+ bias) shapes: M rows may be 0, K inputs and N outputs at least 1.
inline int check_linear_args(const void* x, int64_t M, int64_t K, const void* packed, int64_t N, const void* y) {
  if (M < 0 || K <= 0 || N <= 0)
    return fail(CDIT_ERR_ARGUMENT, "M must be >= 0 and K, N >= 1, got M=%lld K=%lld N=%lld", static_cast<long long>(M),
                static_cast<long long>(K), static_cast<long long>(N));
  if (M > 0 && (!x || !packed || !y)) return fail(CDIT_ERR_ARGUMENT, "x, packed and y must not be NULL when M > 0");
  return CDIT_OK;
}

// Weight packing: w and packed given, N and K at least 1.
inline int check_pack_args(const float* w, int64_t N, int64_t K, const void* packed) {
  if (!w || !packed) return fail(CDIT_ERR_ARGUMENT, "w and packed must not be NULL");
  if (N <= 0 || K <= 0)
    return fail(CDIT_ERR_ARGUMENT, "N and K must be >= 1, got N=%lld K=%lld", static_cast<long long>(N),
                static_cast<long long>(K));
  return CDIT_OK;
}

// CDIT_ACT_* check (activation.cpp).
int check_activation(int activation);

// Applies CDIT_ACT_* `activation` to y[0..n) in place; CDIT_ACT_NONE leaves it (activation.cpp).
void apply_activation(int activation, float* y, int64_t n);

// What a linear layer does to its sums as it writes them: bias, then the activation, then (with a
// residual) y = fma(gate, value, residual), gate row m / rows_per_gate (adaLN's gated residual).
struct Epilogue {
  int activation = CDIT_ACT_NONE;
  const float* residual = nullptr;  // [M][N]
  const float* gate = nullptr;      // rows gate_stride floats apart
  int64_t rows_per_gate = 1;
  int64_t gate_stride = 0;
};

// The epilogue of the *_gated entry points.
inline Epilogue gated_epilogue(const float* residual, const float* gate, int64_t rows_per_gate, int64_t gate_stride) {
  Epilogue e;
  e.residual = residual;
  e.gate = gate;
  e.rows_per_gate = rows_per_gate;
  e.gate_stride = gate_stride;
  return e;
}

inline int check_epilogue(const Epilogue& e, int64_t N) {
  const int st = check_activation(e.activation);
  if (st != CDIT_OK) return st;
  if (e.residual && (!e.gate || e.rows_per_gate < 1 || e.gate_stride < N))
    return fail(CDIT_ERR_ARGUMENT, "a gated residual needs gate, rows_per_gate >= 1 and gate_stride >= N (%lld), got "
                "rows_per_gate=%lld gate_stride=%lld", static_cast<long long>(N),
                static_cast<long long>(e.rows_per_gate), static_cast<long long>(e.gate_stride));
  return CDIT_OK;
}

// Writes rows x cols of a micro-kernel tile (tile_cols floats per row; rows m.. of y [.][N], column
// n0) through the epilogue: sum + bias[n0 + j] (the one rounding after the dot product), then the
// activation, then fma(gate, value, residual) (one rounding, as libtorch's vectorised addcmul).
// The tile is scratch. The body is compiled per instruction set below: at the baseline std::fma is a
// libm call per element, which cost as much as the tile's dot products; every version rounds alike.
__attribute__((always_inline)) inline void store_tile_body(float* tile, int rows, int64_t tile_cols, int64_t cols,
                                                           const float* bias, int64_t n0, const Epilogue& e,
                                                           int64_t m, float* y, int64_t N) {
  if (e.activation != CDIT_ACT_NONE) {
    if (bias) {
      for (int r = 0; r < rows; ++r) {
        float* t = tile + r * tile_cols;
        for (int64_t j = 0; j < cols; ++j) t[j] += bias[n0 + j];
      }
    }
    apply_activation(e.activation, tile, rows * tile_cols);
    bias = nullptr;
  }
  for (int r = 0; r < rows; ++r) {
    float* yr = y + (m + r) * N + n0;
    const float* t = tile + r * tile_cols;
    if (e.residual) {
      const float* res = e.residual + (m + r) * N + n0;
      const float* g = e.gate + (m + r) / e.rows_per_gate * e.gate_stride + n0;
      if (bias) {
        for (int64_t j = 0; j < cols; ++j) yr[j] = std::fma(g[j], t[j] + bias[n0 + j], res[j]);
      } else {
        for (int64_t j = 0; j < cols; ++j) yr[j] = std::fma(g[j], t[j], res[j]);
      }
    } else if (bias) {
      for (int64_t j = 0; j < cols; ++j) yr[j] = t[j] + bias[n0 + j];
    } else {
      std::memcpy(yr, t, static_cast<size_t>(cols) * sizeof(float));
    }
  }
}

#if CDIT_X86
__attribute__((target("avx512f"))) inline void store_tile_avx512(float* tile, int rows, int64_t tile_cols,
                                                                  int64_t cols, const float* bias, int64_t n0,
                                                                  const Epilogue& e, int64_t m, float* y, int64_t N) {
  store_tile_body(tile, rows, tile_cols, cols, bias, n0, e, m, y, N);
}
CDIT_TARGET_AVX2_FMA inline void store_tile_avx2(float* tile, int rows, int64_t tile_cols, int64_t cols,
                                                 const float* bias, int64_t n0, const Epilogue& e, int64_t m,
                                                 float* y, int64_t N) {
  store_tile_body(tile, rows, tile_cols, cols, bias, n0, e, m, y, N);
}
#endif

// Which store_tile version this CPU runs: 2 AVX-512F, 1 AVX2 + FMA, 0 the baseline.
// CACHEDIT_LINEAR_ISA=avx2 stops at 1, so that tests reach the AVX2 version on AVX-512 machines.
inline int store_tile_level() {
#if CDIT_X86
  __builtin_cpu_init();
  if (!avx2_path_forced("CACHEDIT_LINEAR_ISA") && __builtin_cpu_supports("avx512f")) return 2;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#endif
  return 0;
}

// level: store_tile_level(), read once per kernel call.
inline void store_tile(int level, float* tile, int rows, int64_t tile_cols, int64_t cols, const float* bias,
                       int64_t n0, const Epilogue& e, int64_t m, float* y, int64_t N) {
#if CDIT_X86
  if (level == 2) return store_tile_avx512(tile, rows, tile_cols, cols, bias, n0, e, m, y, N);
  if (level == 1) return store_tile_avx2(tile, rows, tile_cols, cols, bias, n0, e, m, y, N);
#else
  (void)level;
#endif
  store_tile_body(tile, rows, tile_cols, cols, bias, n0, e, m, y, N);
}

}  // namespace cachedit
