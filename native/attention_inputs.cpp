// Attention inputs of joint text + image attention (FLUX-style DiTs): one projection's output goes
// to the [B, H, S, D] layout attention reads, with the per-head RMSNorm and the rotary embedding
// applied on the way (docs/kernels.md section 8). libtorch needs a transpose, a norm, a concatenation
// and about eight element-wise ops with their temporaries for the same result.
#include <cmath>
#include <cstdint>

#include "cachedit_kernels.h"
#include "error.hpp"
#include "isa.hpp"
#include "parallel.hpp"

namespace cachedit {
namespace {

// One head of one token: D values from src to dst, normalised with w (if given), rotated with the
// token's cos/sin rows (if given). Products rounded, then sums, as libtorch's composite does.
CDIT_CLONES void head_row(const float* src, int64_t D, const float* w, float eps, const float* cos, const float* sin,
                          float* dst) {
  float v[1024];
  if (w) {
    float sum = 0.0f;
    for (int64_t i = 0; i < D; ++i) sum += src[i] * src[i];
    const float r = 1.0f / std::sqrt(sum / static_cast<float>(D) + eps);
    for (int64_t i = 0; i < D; ++i) v[i] = src[i] * r * w[i];
  } else {
    for (int64_t i = 0; i < D; ++i) v[i] = src[i];
  }
  if (cos) {
    for (int64_t i = 0; i < D; i += 2) {
      dst[i] = v[i] * cos[i] + (-v[i + 1]) * sin[i];
      dst[i + 1] = v[i + 1] * cos[i + 1] + v[i] * sin[i + 1];
    }
  } else {
    for (int64_t i = 0; i < D; ++i) dst[i] = v[i];
  }
}

int heads_norm_rope_impl(const float* a, int64_t Sa, const float* b, int64_t Sb, int64_t B, int64_t H, int64_t D,
                         const float* wa, const float* wb, float eps, const float* cos, const float* sin, float* out,
                         int nthreads) {
  if (Sa < 0 || Sb < 0 || B < 0 || H <= 0 || D <= 0)
    return fail(CDIT_ERR_ARGUMENT, "Sa, Sb, B must be >= 0 and H, D >= 1, got Sa=%lld Sb=%lld B=%lld H=%lld D=%lld",
                static_cast<long long>(Sa), static_cast<long long>(Sb), static_cast<long long>(B),
                static_cast<long long>(H), static_cast<long long>(D));
  if (D > 1024) return fail(CDIT_ERR_ARGUMENT, "head dimension D must be <= 1024, got %lld", static_cast<long long>(D));
  const int64_t S = Sa + Sb;
  if (B == 0 || S == 0) return CDIT_OK;
  if (!out || (Sa > 0 && !a) || (Sb > 0 && !b)) return fail(CDIT_ERR_ARGUMENT, "a (Sa > 0), b (Sb > 0) and out must not be NULL");
  if ((wa == nullptr && wb != nullptr) || (wa != nullptr && wb == nullptr && Sb > 0))
    return fail(CDIT_ERR_ARGUMENT, "wa and wb must both be given or both be NULL");
  if ((cos == nullptr) != (sin == nullptr)) return fail(CDIT_ERR_ARGUMENT, "cos and sin must both be given or both be NULL");
  if (cos && D % 2 != 0) return fail(CDIT_ERR_ARGUMENT, "the rotary embedding needs an even D, got %lld", static_cast<long long>(D));
  if (!std::isfinite(eps) || eps < 0.0f) return fail(CDIT_ERR_ARGUMENT, "eps must be finite and >= 0, got %g", eps);
  const int64_t HD = H * D;
  // work items: tokens of one batch element; each writes its own rows of out
  parallel_blocks(B * S, 16, nthreads, HD * 8, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t bi = item / S;
      const int64_t t = item % S;
      const bool first = t < Sa;
      const float* row = first ? a + (bi * Sa + t) * HD : b + (bi * Sb + (t - Sa)) * HD;
      const float* w = first ? wa : wb;
      for (int64_t h = 0; h < H; ++h) {
        head_row(row + h * D, D, w, eps, cos ? cos + t * D : nullptr, sin ? sin + t * D : nullptr,
                 out + ((bi * H + h) * S + t) * D);
      }
    }
  });
  return CDIT_OK;
}

}  // namespace
}  // namespace cachedit

extern "C" cdit_status cdit_heads_norm_rope(const float* a, int64_t Sa, const float* b, int64_t Sb, int64_t B,
                                            int64_t H, int64_t D, const float* wa, const float* wb, float eps,
                                            const float* cos, const float* sin, float* out, int nthreads) {
  return cachedit::checked("cdit_heads_norm_rope", cachedit::heads_norm_rope_impl(a, Sa, b, Sb, B, H, D, wa, wb, eps,
                                                                                  cos, sin, out, nthreads));
}
