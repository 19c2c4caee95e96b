// adaLN's normalise-and-modulate in one pass (docs/kernels.md section 10):
// y = layer_norm(x) * (1 + scale[b]) + shift[b] for the rows of batch element b. libtorch needs a
// layer norm, an add and an addcmul, each a pass over the activations with its own temporary.
#include <cmath>
#include <cstdint>

#include "cachedit_kernels.h"
#include "error.hpp"
#include "isa.hpp"
#include "parallel.hpp"
#include "vmath.hpp"

namespace cachedit {
namespace {

// One row: mean and variance in fp32 (lane_sum16 order; the row is in L1), then
// ((x - mean) * rstd) * (1 + scale) + shift, each operation rounded as written.
CDIT_CLONES void norm_modulate_row(const float* x, int64_t C, const float* scale, const float* shift, float eps,
                                   float* y) {
  const float mean = lane_sum16(x, C) / static_cast<float>(C);
  for (int64_t c = 0; c < C; ++c) y[c] = (x[c] - mean) * (x[c] - mean);  // y as scratch
  const float rstd = 1.0f / std::sqrt(lane_sum16(y, C) / static_cast<float>(C) + eps);
  for (int64_t c = 0; c < C; ++c) y[c] = ((x[c] - mean) * rstd) * (1.0f + scale[c]) + shift[c];
}

int norm_modulate_impl(const float* x, int64_t B, int64_t S, int64_t C, const float* scale, const float* shift,
                       int64_t mod_stride, float eps, float* y, int nthreads) {
  if (B < 0 || S < 0 || C <= 0 || mod_stride < C)
    return fail(CDIT_ERR_ARGUMENT, "B, S must be >= 0, C >= 1 and mod_stride >= C, got B=%lld S=%lld C=%lld "
                "mod_stride=%lld", static_cast<long long>(B), static_cast<long long>(S), static_cast<long long>(C),
                static_cast<long long>(mod_stride));
  if (!std::isfinite(eps) || eps < 0.0f) return fail(CDIT_ERR_ARGUMENT, "eps must be finite and >= 0, got %g", eps);
  if (B == 0 || S == 0) return CDIT_OK;
  if (!x || !scale || !shift || !y) return fail(CDIT_ERR_ARGUMENT, "x, scale, shift and y must not be NULL");
  parallel_blocks(B * S, 16, nthreads, 4 * C, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / S;
      norm_modulate_row(x + r * C, C, scale + b * mod_stride, shift + b * mod_stride, eps, y + r * C);
    }
  });
  return CDIT_OK;
}

}  // namespace
}  // namespace cachedit

extern "C" cdit_status cdit_layer_norm_modulate(const float* x, int64_t B, int64_t S, int64_t C, const float* scale,
                                                const float* shift, int64_t mod_stride, float eps, float* y,
                                                int nthreads) {
  return cachedit::checked("cdit_layer_norm_modulate",
                           cachedit::norm_modulate_impl(x, B, S, C, scale, shift, mod_stride, eps, y, nthreads));
}
