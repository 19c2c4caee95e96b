// Element-wise activations that linear layers apply to their outputs as they write them, and the
// same functions on their own (cdit_gelu_tanh). One scalar definition per function, written with
// IEEE basic operations and explicit fused multiply-adds only: the vector clones the compiler makes
// of the loops below compute exactly what the scalar code computes, so results do not depend on the
// instruction set (docs/kernels.md section 7).
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "cachedit_kernels.h"
#include "error.hpp"
#include "isa.hpp"
#include "linear_common.hpp"
#include "parallel.hpp"
#include "vmath.hpp"

namespace cachedit {
namespace {

// gelu(v) with the tanh approximation, 0.5 v (1 + tanh(u)), u = sqrt(2/pi) (v + 0.044715 v^3),
// computed as v / (1 + exp(-2u)) (the same function: 0.5 (1 + tanh(u)) = 1 / (1 + exp(-2u))), which
// needs one exponential and no cancellation near zero. Within a few ulp of libtorch's gelu(tanh).
CDIT_INLINE float gelu_tanh(float v) {
  const float u = 0.7978845608028654f * (v + 0.044715f * (v * v * v));
  return v / (1.0f + exp_clamped(-2.0f * u));
}

}  // namespace

// Sixteen at a time (one AVX-512 register, two AVX2 ones): linear layers call this on small tiles,
// where a loop the compiler vectorises by 64 would run most of them in its scalar tail.
CDIT_CLONES void gelu_tanh_inplace(float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    for (int j = 0; j < 16; ++j) y[i + j] = gelu_tanh(y[i + j]);
  }
  for (; i < n; ++i) y[i] = gelu_tanh(y[i]);
}

void apply_activation(int activation, float* y, int64_t n) {
  if (activation == CDIT_ACT_GELU_TANH) gelu_tanh_inplace(y, n);
}

int check_activation(int activation) {
  if (activation != CDIT_ACT_NONE && activation != CDIT_ACT_GELU_TANH)
    return fail(CDIT_ERR_ARGUMENT, "activation must be CDIT_ACT_NONE (0) or CDIT_ACT_GELU_TANH (1), got %d",
                activation);
  return CDIT_OK;
}

}  // namespace cachedit

using namespace cachedit;

static int gelu_tanh_impl(const float* x, int64_t n, float* y, int nthreads) {
  if (n < 0) return fail(CDIT_ERR_ARGUMENT, "n must be >= 0, got %lld", static_cast<long long>(n));
  if (n > 0 && (!x || !y)) return fail(CDIT_ERR_ARGUMENT, "x and y must not be NULL when n > 0");
  // about 20 operations per element
  parallel_blocks(n, 4096, nthreads, 20, [&](int64_t begin, int64_t end) {
    if (x != y) std::copy(x + begin, x + end, y + begin);
    gelu_tanh_inplace(y + begin, end - begin);
  });
  return CDIT_OK;
}

extern "C" cdit_status cdit_gelu_tanh(const float* x, int64_t n, float* y, int nthreads) {
  return checked("cdit_gelu_tanh", gelu_tanh_impl(x, n, y, nthreads));
}
