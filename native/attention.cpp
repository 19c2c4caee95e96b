// Attention over short sequences (the bundled model: 53 tokens, head dim 32), written straight into
// the token-major layout the output projections read (docs/kernels.md section 9). At this size
// libtorch's flash-attention path spends most of its time on blocking overhead, and the merge of the
// heads and the split into text and image tokens that follow cost two more copies.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "cachedit_kernels.h"
#include "error.hpp"
#include "isa.hpp"
#include "parallel.hpp"
#include "vmath.hpp"

namespace cachedit {
namespace {

constexpr int kRowGroup = 4;  // query rows the vector path computes together (independent FMA chains)

// Softmax of one row of scores p[0..S) in place, returns 1 / sum; the sum in lane_sum16's order,
// which one 512-bit register gives (softmax_row16 below).
float softmax_row(float* p, int64_t S) {
  float mx = -INFINITY;
  for (int64_t j = 0; j < S; ++j) mx = p[j] > mx ? p[j] : mx;
  for (int64_t j = 0; j < S; ++j) p[j] = exp_clamped(p[j] - mx);
  return 1.0f / lane_sum16(p, S);
}

// One (batch, head), portable: q, k, v [S][D]; out rows token-major, `ldo` floats apart.
// score[i][j] = (sum over d in order of fma(q[i][d], k[j][d], .)) * scale; p = softmax;
// out[i][d] = (sum over j in order of fma(p[j], v[j][d], .)) * (1 / sum p). The vector path below
// performs exactly these operations in this order, so both give the same bits.
void attend_head_portable(const float* q, const float* k, const float* v, int64_t S, int64_t D, float scale,
                          float* p, float* out_a, float* out_b, int64_t split, int64_t ldo) {
  for (int64_t i = 0; i < S; ++i) {
    for (int64_t j = 0; j < S; ++j) {
      float s = 0.0f;
      for (int64_t d = 0; d < D; ++d) s = std::fma(q[i * D + d], k[j * D + d], s);
      p[j] = s * scale;
    }
    const float inv = softmax_row(p, S);
    float* o = i < split ? out_a + i * ldo : out_b + (i - split) * ldo;
    for (int64_t d = 0; d < D; ++d) {
      float acc = 0.0f;
      for (int64_t j = 0; j < S; ++j) acc = std::fma(p[j], v[j * D + d], acc);
      o[d] = acc * inv;
    }
  }
}

#if CDIT_X86
// GCC 12's AVX-512 reduction and extract intrinsics start from an undefined register and warn on it
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// exp_clamped on sixteen lanes, operation for operation (max/min keep a NaN z as the scalar code does).
__attribute__((target("avx512f"))) inline __m512 exp_clamped16(__m512 z) {
  z = _mm512_max_ps(_mm512_set1_ps(-87.0f), z);
  z = _mm512_min_ps(_mm512_set1_ps(88.0f), z);
  const __m512 magic = _mm512_set1_ps(12582912.0f);
  const __m512 n = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(z, _mm512_set1_ps(1.44269504088896341f)), magic), magic);
  __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-0.693359375f), z);
  r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvttps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

// softmax_row on a row padded to Sp (a multiple of 16) floats: the same operations and sum order.
__attribute__((target("avx512f,avx512dq"))) float softmax_row16(float* p, int64_t S, int64_t Sp) {
  __m512 mx = _mm512_set1_ps(-INFINITY);
  for (int64_t j = 0; j < Sp; j += 16) {
    const __mmask16 valid = j + 16 <= S ? __mmask16(0xFFFF) : __mmask16((1u << (S - j)) - 1u);
    mx = _mm512_mask_max_ps(mx, valid, mx, _mm512_loadu_ps(p + j));
  }
  const __m512 vmx = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
  __m512 lane = _mm512_setzero_ps();
  for (int64_t j = 0; j < Sp; j += 16) {
    const __mmask16 valid = j + 16 <= S ? __mmask16(0xFFFF) : __mmask16((1u << (S - j)) - 1u);
    const __m512 e = _mm512_maskz_mov_ps(valid, exp_clamped16(_mm512_sub_ps(_mm512_loadu_ps(p + j), vmx)));
    _mm512_storeu_ps(p + j, e);
    lane = _mm512_add_ps(lane, e);
  }
  __m256 h = _mm256_add_ps(_mm512_castps512_ps256(lane), _mm512_extractf32x8_ps(lane, 1));
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  q = _mm_add_ss(q, _mm_shuffle_ps(q, q, 1));
  return 1.0f / _mm_cvtss_f32(q);
}

// The vector path: four query rows at a time, sixteen keys (scores) or sixteen d (output) per
// register, k transposed and zero-padded to Sp keys (kt [D][Sp]); rows, d and tails the blocks do not
// cover go through the portable loops' arithmetic.
__attribute__((target("avx512f,avx512dq"))) void attend_head_avx512(const float* q, const float* k, const float* v, int64_t S,
                                                           int64_t D, float scale, float* kt, float* p,
                                                           float* out_a, float* out_b, int64_t split, int64_t ldo) {
  const int64_t Sp = (S + 15) / 16 * 16;
  for (int64_t d = 0; d < D; ++d) {
    for (int64_t j = 0; j < S; ++j) kt[d * Sp + j] = k[j * D + d];
    for (int64_t j = S; j < Sp; ++j) kt[d * Sp + j] = 0.0f;
  }
  const __m512 vscale = _mm512_set1_ps(scale);
  for (int64_t i0 = 0; i0 < S; i0 += kRowGroup) {
    const int rows = static_cast<int>(S - i0 < kRowGroup ? S - i0 : kRowGroup);
    float* pr[kRowGroup];
    for (int r = 0; r < kRowGroup; ++r) pr[r] = p + r * Sp;
    // scores of up to four rows; missing rows repeat the last one (computed, not stored)
    const float* qr[kRowGroup];
    for (int r = 0; r < kRowGroup; ++r) qr[r] = q + (i0 + (r < rows ? r : rows - 1)) * D;
    for (int64_t j0 = 0; j0 < Sp; j0 += 16) {
      __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
      for (int64_t d = 0; d < D; ++d) {
        const __m512 kd = _mm512_loadu_ps(kt + d * Sp + j0);
        s0 = _mm512_fmadd_ps(_mm512_set1_ps(qr[0][d]), kd, s0);
        s1 = _mm512_fmadd_ps(_mm512_set1_ps(qr[1][d]), kd, s1);
        s2 = _mm512_fmadd_ps(_mm512_set1_ps(qr[2][d]), kd, s2);
        s3 = _mm512_fmadd_ps(_mm512_set1_ps(qr[3][d]), kd, s3);
      }
      _mm512_storeu_ps(pr[0] + j0, _mm512_mul_ps(s0, vscale));
      _mm512_storeu_ps(pr[1] + j0, _mm512_mul_ps(s1, vscale));
      _mm512_storeu_ps(pr[2] + j0, _mm512_mul_ps(s2, vscale));
      _mm512_storeu_ps(pr[3] + j0, _mm512_mul_ps(s3, vscale));
    }
    float inv[kRowGroup];
    for (int r = 0; r < kRowGroup; ++r) inv[r] = softmax_row16(pr[r], S, Sp);
    float* o[kRowGroup];
    for (int r = 0; r < kRowGroup; ++r) {
      const int64_t i = i0 + (r < rows ? r : rows - 1);
      o[r] = i < split ? out_a + i * ldo : out_b + (i - split) * ldo;
    }
    int64_t d0 = 0;
    for (; d0 + 16 <= D; d0 += 16) {
      __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      for (int64_t j = 0; j < S; ++j) {
        const __m512 vj = _mm512_loadu_ps(v + j * D + d0);
        a0 = _mm512_fmadd_ps(_mm512_set1_ps(pr[0][j]), vj, a0);
        a1 = _mm512_fmadd_ps(_mm512_set1_ps(pr[1][j]), vj, a1);
        a2 = _mm512_fmadd_ps(_mm512_set1_ps(pr[2][j]), vj, a2);
        a3 = _mm512_fmadd_ps(_mm512_set1_ps(pr[3][j]), vj, a3);
      }
      const __m512 acc[kRowGroup] = {a0, a1, a2, a3};
      for (int r = 0; r < rows; ++r) _mm512_storeu_ps(o[r] + d0, _mm512_mul_ps(acc[r], _mm512_set1_ps(inv[r])));
    }
    for (; d0 < D; ++d0) {
      for (int r = 0; r < rows; ++r) {
        float acc = 0.0f;
        for (int64_t j = 0; j < S; ++j) acc = std::fma(pr[r][j], v[j * D + d0], acc);
        o[r][d0] = acc * inv[r];
      }
    }
  }
}
#pragma GCC diagnostic pop
#endif

bool use_avx512() {
#if CDIT_X86
  __builtin_cpu_init();
  if (portable_path_forced("CACHEDIT_ATTENTION_ISA")) return false;
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
#else
  return false;
#endif
}

int attention_impl(const float* q, const float* k, const float* v, int64_t B, int64_t H, int64_t S, int64_t D,
                   float scale, int64_t split, float* out_a, float* out_b, int nthreads) {
  if (B < 0 || H <= 0 || S < 0 || D <= 0 || split < 0 || split > S)
    return fail(CDIT_ERR_ARGUMENT,
                "B, S must be >= 0, H, D >= 1 and 0 <= split <= S, got B=%lld H=%lld S=%lld D=%lld split=%lld",
                static_cast<long long>(B), static_cast<long long>(H), static_cast<long long>(S),
                static_cast<long long>(D), static_cast<long long>(split));
  if (S > CDIT_ATTENTION_MAX_TOKENS)
    return fail(CDIT_ERR_ARGUMENT, "S must be <= %d (CDIT_ATTENTION_MAX_TOKENS), got %lld", CDIT_ATTENTION_MAX_TOKENS,
                static_cast<long long>(S));
  if (!std::isfinite(scale)) return fail(CDIT_ERR_ARGUMENT, "scale must be finite, got %g", scale);
  if (B == 0 || S == 0) return CDIT_OK;
  if (!q || !k || !v || (split > 0 && !out_a) || (split < S && !out_b))
    return fail(CDIT_ERR_ARGUMENT, "q, k, v, out_a (split > 0) and out_b (split < S) must not be NULL");
  const int64_t HD = H * D;
  const bool vec = use_avx512();
  parallel_blocks(B * H, 1, nthreads, 2 * S * S * D, [&](int64_t begin, int64_t end) {
    const int64_t Sp = (S + 15) / 16 * 16;
    std::vector<float> kt(static_cast<size_t>(vec ? Sp * D : 0)), p(static_cast<size_t>(kRowGroup * Sp));
    for (int64_t item = begin; item < end; ++item) {
      const int64_t b = item / H, h = item % H;
      const int64_t base = item * S * D;
      float* oa = out_a ? out_a + b * split * HD + h * D : nullptr;
      float* ob = out_b ? out_b + b * (S - split) * HD + h * D : nullptr;
#if CDIT_X86
      if (vec) {
        attend_head_avx512(q + base, k + base, v + base, S, D, scale, kt.data(), p.data(), oa, ob, split, HD);
        continue;
      }
#endif
      attend_head_portable(q + base, k + base, v + base, S, D, scale, p.data(), oa, ob, split, HD);
    }
  });
  return CDIT_OK;
}

}  // namespace
}  // namespace cachedit

extern "C" cdit_status cdit_attention_f32(const float* q, const float* k, const float* v, int64_t B, int64_t H, int64_t S,
                                          int64_t D, float scale, int64_t split, float* out_a, float* out_b,
                                          int nthreads) {
  return cachedit::checked("cdit_attention_f32",
                           cachedit::attention_impl(q, k, v, B, H, S, D, scale, split, out_a, out_b, nthreads));
}
