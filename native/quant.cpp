// Low-bit linear layers: weight quantisation, the kernel's packed weight layout, and the fused
// "quantise activations + integer GEMM + rescale + bias" linear (docs/quantization.md).
//
// Every type runs on one integer micro-kernel: 16-bit x 16-bit products summed in pairs into int32
// (AVX2 vpmaddwd), flushed into fp32 before int32 could overflow. Integer sums are exact, and the fp32
// flush and epilogue are done in one fixed order on every path (AVX2, generic, any thread count,
// CUDA), so the result is bit-identical everywhere.
//   activations  int8 types: the int8 values (|q| <= 127); fp8 types: the e4m3 values in 14-bit fixed
//                point; weight-only types: 15-bit fixed point per row (14-bit next to fp8 weights).
//   weights      int8 exact; int4 exact, group scales applied at each group's flush; fp8 as 13-bit
//                fixed point (4095 = 448), far finer than e4m3's own 3-bit mantissa.
#include <omp.h>

#include <atomic>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "cachedit_kernels.h"
#include "error.hpp"
#include "isa.hpp"
#include "numeric.hpp"
#include "parallel.hpp"
#include "quant_layout.hpp"

namespace cachedit {
namespace {

using quant::act_max;
using quant::flush_pairs;
using quant::kFp8Fixed;
using quant::kPairBlock;
using quant::kPanel;

constexpr int64_t kRowBlock = 96;     // activation rows per work item (a multiple of kMicroRows)
constexpr int kMicroRows = 6;
constexpr int64_t kPanelsPerItem = 4;

inline int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

bool valid_qweight(int q) { return q == CDIT_QW_INT8 || q == CDIT_QW_FP8 || q == CDIT_QW_INT4; }
bool valid_qact(int a) { return a >= CDIT_QA_NONE && a <= CDIT_QA_FP8_TENSOR; }

// ---- weight quantisation (canonical layout) ----------------------------------------------------
template <typename Ty>
CDIT_INLINE float row_absmax(const typename Ty::T* x, int64_t n) {
  float m = 0.f;
#pragma omp simd reduction(max : m)
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(Ty::load(x[i])));
  return m;
}

// False if any value is NaN or infinite (x - x is NaN exactly then).
template <typename Ty>
CDIT_INLINE bool row_finite(const typename Ty::T* x, int64_t n) {
  float z = 0.f;
#pragma omp simd reduction(+ : z)
  for (int64_t i = 0; i < n; ++i) z += Ty::load(x[i]) - Ty::load(x[i]);
  return z == 0.f;
}

template <typename Ty>
int quantize_weight(int qweight, const typename Ty::T* w, int64_t N, int64_t K, int64_t group, int per_tensor,
                    void* q, float* scales, int nthreads) {
  const float qmax = qweight == CDIT_QW_INT8 ? 127.f : kFp8E4m3Max;
  float tensor_scale = 0.f;
  if (per_tensor) {
    float m = 0.f;
    for (int64_t n = 0; n < N; ++n) {
      if (!row_finite<Ty>(w + n * K, K))
        return fail(CDIT_ERR_ARGUMENT, "w row %lld holds a non-finite value", static_cast<long long>(n));
      m = std::max(m, row_absmax<Ty>(w + n * K, K));
    }
    tensor_scale = m > 0.f ? m / qmax : 1.f;
    scales[0] = tensor_scale;
  }
  std::atomic<bool> finite{true};
  parallel_blocks(N, 16, nthreads, K, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      const typename Ty::T* row = w + n * K;
      if (!row_finite<Ty>(row, K)) finite.store(false, std::memory_order_relaxed);
      if (qweight == CDIT_QW_INT4) {
        uint8_t* out = static_cast<uint8_t*>(q) + n * (K / 2);
        for (int64_t g = 0; g < K / group; ++g) {
          // Q4_0-style: the largest-magnitude value maps to -8, so all 16 levels are used.
          float big = 0.f;
          for (int64_t k = g * group; k < (g + 1) * group; ++k) {
            const float v = Ty::load(row[k]);
            if (std::fabs(v) > std::fabs(big)) big = v;
          }
          const float d = big != 0.f ? big / -8.f : 1.f;
          scales[n * (K / group) + g] = d;
          const float inv = 1.f / d;
          for (int64_t k = g * group; k < (g + 1) * group; k += 2) {
            const int lo = static_cast<int>(std::min(7.f, std::max(-8.f, round_even(Ty::load(row[k]) * inv)))) + 8;
            const int hi =
                static_cast<int>(std::min(7.f, std::max(-8.f, round_even(Ty::load(row[k + 1]) * inv)))) + 8;
            out[k / 2] = static_cast<uint8_t>(lo | (hi << 4));
          }
        }
        continue;
      }
      float s = tensor_scale;
      if (!per_tensor) {
        const float m = row_absmax<Ty>(row, K);
        s = m > 0.f ? m / qmax : 1.f;
        scales[n] = s;
      }
      const float inv = 1.f / s;
      if (qweight == CDIT_QW_INT8) {
        int8_t* out = static_cast<int8_t*>(q) + n * K;
        for (int64_t k = 0; k < K; ++k) {
          const float v = round_even(Ty::load(row[k]) * inv);
          out[k] = static_cast<int8_t>(std::min(127.f, std::max(-127.f, v)));
        }
      } else {
        uint8_t* out = static_cast<uint8_t*>(q) + n * K;
        for (int64_t k = 0; k < K; ++k) out[k] = f32_to_fp8_e4m3(Ty::load(row[k]) * inv);
      }
    }
  });
  return finite.load() ? CDIT_OK : CDIT_ERR_ARGUMENT;
}

// ---- packed layout -----------------------------------------------------------------------------
// int8 / fp8: [ceil(N/16)][Kp/2][16 columns][2 inputs] bytes; int4: [ceil(N/16)][Kp/2][16] bytes with
// input 2p in the low nibble and 2p+1 in the high nibble. Kp = K rounded up to even; padding is zero
// (int4: the nibble 8, i.e. zero).
int64_t packed_bytes(int qweight, int64_t N, int64_t K) {
  const int64_t panels = (N + kPanel - 1) / kPanel;
  const int64_t pairs = (K + 1) / 2;
  return panels * pairs * kPanel * (qweight == CDIT_QW_INT4 ? 1 : 2);
}

int pack(int qweight, const void* q, int64_t N, int64_t K, void* packed, int nthreads, bool unpack) {
  const int64_t panels = (N + kPanel - 1) / kPanel;
  const int64_t pairs = (K + 1) / 2;
  parallel_blocks(panels, 1, nthreads, pairs * kPanel * 2, [&](int64_t begin, int64_t end) {
    for (int64_t panel = begin; panel < end; ++panel) {
      for (int64_t c = 0; c < kPanel; ++c) {
        const int64_t n = panel * kPanel + c;
        for (int64_t p = 0; p < pairs; ++p) {
          if (qweight == CDIT_QW_INT4) {
            uint8_t* dst = static_cast<uint8_t*>(packed) + (panel * pairs + p) * kPanel + c;
            uint8_t* src = n < N ? static_cast<uint8_t*>(const_cast<void*>(q)) + n * (K / 2) + p : nullptr;
            if (unpack) {
              if (src) *src = *dst;
            } else {
              *dst = src ? *src : 0x88;
            }
            continue;
          }
          uint8_t* dst = static_cast<uint8_t*>(packed) + ((panel * pairs + p) * kPanel + c) * 2;
          for (int j = 0; j < 2; ++j) {
            const int64_t k = 2 * p + j;
            uint8_t* src = n < N && k < K ? static_cast<uint8_t*>(const_cast<void*>(q)) + n * K + k : nullptr;
            if (unpack) {
              if (src) *src = dst[j];
            } else {
              dst[j] = src ? *src : 0;
            }
          }
        }
      }
    }
  });
  return CDIT_OK;
}

// ---- activation quantisation -------------------------------------------------------------------
// Writes rows of fixed-point activations (stride Kp, zero padded) and one scale per row.
// fp32 row -> e4m3 grid values in fixed point, 8 at a time (the scalar loop does not vectorise);
// the same operations as fp8_round and round_even, so the same values. Returns how many it did.
#if CDIT_X86
CDIT_TARGET_AVX2 int64_t fp8_fixed_avx2(const float* row, int64_t K, int16_t* out, float inv8,
                                                       float fix) {
  const __m256 vinv = _mm256_set1_ps(inv8), vfix = _mm256_set1_ps(fix), vmax = _mm256_set1_ps(kFp8E4m3Max);
  const __m256 magic = _mm256_set1_ps(0x1.0p14f), small = _mm256_set1_ps(0x1.0p-6f);
  const __m256i abs_mask = _mm256_set1_epi32(0x7FFFFFFF), round = _mm256_set1_epi32(0x7FFFF),
                one = _mm256_set1_epi32(1), keep = _mm256_set1_epi32(static_cast<int>(0xFFF00000u));
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    __m256i q[2];
    for (int h = 0; h < 2; ++h) {
      const __m256i u = _mm256_castps_si256(_mm256_mul_ps(_mm256_loadu_ps(row + k + 8 * h), vinv));
      const __m256i sign = _mm256_andnot_si256(abs_mask, u);
      const __m256i abs_bits = _mm256_and_si256(u, abs_mask);
      const __m256 a = _mm256_castsi256_ps(abs_bits);
      const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(abs_bits, 20), one);
      const __m256 normal = _mm256_castsi256_ps(
          _mm256_and_si256(_mm256_add_epi32(_mm256_add_epi32(abs_bits, round), lsb), keep));
      const __m256 sub = _mm256_sub_ps(_mm256_add_ps(a, magic), magic);
      __m256 r = _mm256_blendv_ps(normal, sub, _mm256_cmp_ps(a, small, _CMP_LT_OQ));
      r = _mm256_blendv_ps(r, vmax, _mm256_cmp_ps(r, vmax, _CMP_GT_OQ));
      r = _mm256_castsi256_ps(_mm256_or_si256(_mm256_castps_si256(r), sign));
      q[h] = _mm256_cvtps_epi32(_mm256_mul_ps(r, vfix));
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + k),
                        _mm256_permute4x64_epi64(_mm256_packs_epi32(q[0], q[1]), 0xD8));
  }
  return k;
}
#endif

template <typename Ty>
CDIT_CLONES_AVX2 void quantize_row(bool avx2, bool fp8, int32_t amax,
                                                                     const typename Ty::T* row,
                                                                     int64_t K, int64_t Kp, int16_t* out, float absmax,
                                                                     float* row_scale) {
  (void)avx2;  // only the x86-64 build has the AVX2 path
  if (fp8) {
    // e4m3 scale as the reference's dynamic fp8: absmax / 448, then the grid value in fixed point
    const float s8 = absmax > 0.f ? absmax / kFp8E4m3Max : 1.f;
    const float inv8 = 1.f / s8;
    const float fix = static_cast<float>(amax) / kFp8E4m3Max;
    *row_scale = s8 / fix;
    int64_t done = 0;
    if constexpr (Ty::kDtype == CDIT_F32) {
#if CDIT_X86
      if (avx2) done = fp8_fixed_avx2(row, K, out, inv8, fix);
#endif
    }
    for (int64_t k = done; k < K; ++k) {
      out[k] = static_cast<int16_t>(round_even(fp8_round(Ty::load(row[k]) * inv8) * fix));
    }
  } else {
    const float s = absmax > 0.f ? absmax / static_cast<float>(amax) : 1.f;
    const float inv = 1.f / s;
    const float lim = static_cast<float>(amax);
    *row_scale = s;
#pragma omp simd
    for (int64_t k = 0; k < K; ++k) {
      const float v = round_even(Ty::load(row[k]) * inv);
      out[k] = static_cast<int16_t>(std::min(lim, std::max(-lim, v)));
    }
  }
  for (int64_t k = K; k < Kp; ++k) out[k] = 0;
}

template <typename Ty>
void quantize_rows(bool avx2, int qact, int32_t amax, const typename Ty::T* x, int64_t M, int64_t K, int64_t Kp,
                   int16_t* a, float* row_scale, float tensor_absmax, int nthreads) {
  const bool fp8 = qact == CDIT_QA_FP8_ROW || qact == CDIT_QA_FP8_TENSOR;
  const bool per_tensor = qact == CDIT_QA_INT8_TENSOR || qact == CDIT_QA_FP8_TENSOR;
  parallel_blocks(M, 8, nthreads, K * 3, [&](int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; ++m) {
      const typename Ty::T* row = x + m * K;
      int16_t* out = a + m * Kp;
      const float absmax = per_tensor ? tensor_absmax : row_absmax<Ty>(row, K);
      quantize_row<Ty>(avx2, fp8, amax, row, K, Kp, out, absmax, row_scale + m);
    }
  });
}

// ---- B tile: one panel's weights for a block of pairs, as 16-bit values in micro-kernel order ----
// Also fills, for int4, the per-column group scales of the block: gscale[g][16].
// The AVX2 form of the weight part of dequant_tile (same values): 32 16-bit weights per step.
#if CDIT_X86
CDIT_TARGET_AVX2 void dequant_weights_avx2(int qweight, const uint8_t* src, int64_t np,
                                                           int16_t* tile) {
  if (qweight == CDIT_QW_INT8) {
    for (int64_t i = 0; i < np * kPanel * 2; i += 16) {
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(tile + i), _mm256_cvtepi8_epi16(b));
    }
  } else if (qweight == CDIT_QW_INT4) {
    const __m128i low = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
    for (int64_t i = 0; i < np * kPanel; i += 16) {
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
      const __m128i lo = _mm_sub_epi8(_mm_and_si128(b, low), eight);
      const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(b, 4), low), eight);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(tile + 2 * i), _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(lo, hi)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(tile + 2 * i + 16),
                          _mm256_cvtepi8_epi16(_mm_unpackhi_epi8(lo, hi)));
    }
  } else {
    // e4m3 -> fp32 exactly (normal: re-biased exponent; subnormal: m * 2^-9), x 4095/448, round to
    // nearest even; the NaN codes give 0, as the table of the portable path.
    const __m256i seven = _mm256_set1_epi32(7), mant_shift_bias = _mm256_set1_epi32(120), nan = _mm256_set1_epi32(0x7F);
    const __m256 sub_scale = _mm256_set1_ps(0x1.0p-9f), fix = _mm256_set1_ps(kFp8Fixed / kFp8E4m3Max);
    for (int64_t i = 0; i < np * kPanel * 2; i += 16) {
      __m256i out[2];
      for (int h = 0; h < 2; ++h) {
        const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(src + i + 8 * h)));
        const __m256i mag = _mm256_and_si256(v, nan);
        const __m256i e = _mm256_srli_epi32(mag, 3), m = _mm256_and_si256(mag, seven);
        const __m256 normal = _mm256_castsi256_ps(_mm256_or_si256(
            _mm256_slli_epi32(_mm256_add_epi32(e, mant_shift_bias), 23), _mm256_slli_epi32(m, 20)));
        const __m256 subnormal = _mm256_mul_ps(_mm256_cvtepi32_ps(m), sub_scale);
        const __m256 is_sub = _mm256_castsi256_ps(_mm256_cmpeq_epi32(e, _mm256_setzero_si256()));
        __m256 f = _mm256_blendv_ps(normal, subnormal, is_sub);
        const __m256i sign = _mm256_slli_epi32(_mm256_srli_epi32(v, 7), 31);
        f = _mm256_castsi256_ps(_mm256_or_si256(_mm256_castps_si256(f), sign));
        __m256i q = _mm256_cvtps_epi32(_mm256_mul_ps(f, fix));
        q = _mm256_andnot_si256(_mm256_cmpeq_epi32(mag, nan), q);
        out[h] = q;
      }
      const __m256i packed = _mm256_permute4x64_epi64(_mm256_packs_epi32(out[0], out[1]), 0xD8);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(tile + i), packed);
    }
  }
}
#endif

void dequant_tile(bool avx2, int qweight, const uint8_t* panel_base, int64_t p0, int64_t p1, int64_t group,
                  const float* scales, int64_t N, int64_t K, int64_t n0, const int16_t* fp8_lut, int16_t* tile,
                  float* gscale) {
  const int64_t np = p1 - p0;
#if !CDIT_X86
  avx2 = false;
#endif
  if (avx2) {
#if CDIT_X86
    dequant_weights_avx2(qweight, panel_base + p0 * kPanel * (qweight == CDIT_QW_INT4 ? 1 : 2), np, tile);
#endif
  } else if (qweight == CDIT_QW_INT8) {
    const int8_t* src = reinterpret_cast<const int8_t*>(panel_base) + p0 * kPanel * 2;
#pragma omp simd
    for (int64_t i = 0; i < np * kPanel * 2; ++i) tile[i] = src[i];
  } else if (qweight == CDIT_QW_FP8) {
    const uint8_t* src = panel_base + p0 * kPanel * 2;
    for (int64_t i = 0; i < np * kPanel * 2; ++i) tile[i] = fp8_lut[src[i]];
  } else {
    const uint8_t* src = panel_base + p0 * kPanel;
#pragma omp simd
    for (int64_t i = 0; i < np * kPanel; ++i) {
      tile[2 * i] = static_cast<int16_t>((src[i] & 0x0F) - 8);
      tile[2 * i + 1] = static_cast<int16_t>((src[i] >> 4) - 8);
    }
  }
  if (qweight == CDIT_QW_INT4) {
    const int64_t groups = K / group;
    const int64_t g0 = 2 * p0 / group, g1 = 2 * p1 / group;
    for (int64_t g = g0; g < g1; ++g) {
      for (int64_t c = 0; c < kPanel; ++c) {
        const int64_t n = n0 + c;
        gscale[(g - g0) * kPanel + c] = n < N ? scales[n * groups + g] : 0.f;
      }
    }
  }
}

// ---- micro-kernels: C[MR][16] += sum over flushes of float(int32 pair sums) (* group scale) -------
// Where a micro-kernel's last flush goes when it finishes a panel of fp32 outputs: straight into y
// (rescaled, biased) instead of the accumulation tile. Same operations in the same order as the
// separate epilogue, so fused and unfused results are identical.
struct Epilogue {
  const float* row_scale;  // [MR]
  const float* col_scale;  // [16]
  const float* bias;       // [16]
  float* y;                // row 0, column 0 of the panel
  int64_t ldy;
};

template <int MR>
void micro_generic(const int16_t* a, int64_t lda, const int16_t* tile, int64_t np, int64_t flush,
                   const float* gscale, float* c, const Epilogue* ep) {
  for (int64_t f0 = 0; f0 < np; f0 += flush) {
    int32_t acc[MR][kPanel] = {};
    const int64_t f1 = std::min(np, f0 + flush);
    for (int64_t p = f0; p < f1; ++p) {
      const int16_t* b = tile + p * kPanel * 2;
      for (int r = 0; r < MR; ++r) {
        const int32_t a0 = a[r * lda + 2 * p], a1 = a[r * lda + 2 * p + 1];
        for (int j = 0; j < kPanel; ++j) acc[r][j] += a0 * b[2 * j] + a1 * b[2 * j + 1];
      }
    }
    const float* g = gscale ? gscale + (f0 / flush) * kPanel : nullptr;
    const bool last = ep && f1 == np;
    for (int r = 0; r < MR; ++r) {
      for (int j = 0; j < kPanel; ++j) {
        const float v = static_cast<float>(acc[r][j]);
        const float t = c[r * kPanel + j] + (g ? v * g[j] : v);
        if (last) {
          ep->y[r * ep->ldy + j] = t * (ep->row_scale[r] * ep->col_scale[j]) + ep->bias[j];
        } else {
          c[r * kPanel + j] = t;
        }
      }
    }
  }
}

// Accumulators live in named registers (12 of the 16 ymm): arrays of vectors get spilled by GCC.
#define CDIT_Q_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)

#if CDIT_X86
template <int MR>
CDIT_TARGET_AVX2 void micro_avx2(const int16_t* a, int64_t lda, const int16_t* tile, int64_t np,
                                                 int64_t flush, const float* gscale, float* c, const Epilogue* ep) {
  for (int64_t f0 = 0; f0 < np; f0 += flush) {
#define CDIT_Q_ZERO(r) __m256i acc##r##0 = _mm256_setzero_si256(), acc##r##1 = _mm256_setzero_si256();
    CDIT_Q_ROWS(CDIT_Q_ZERO)
#undef CDIT_Q_ZERO
    const int64_t f1 = std::min(np, f0 + flush);
    const int16_t* b = tile + f0 * kPanel * 2;
    const int16_t* ap = a + 2 * f0;
    for (int64_t p = f0; p < f1; ++p, b += kPanel * 2, ap += 2) {
      const __m256i b0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b));
      const __m256i b1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b + 16));
#define CDIT_Q_STEP(r)                                                         \
  if (r < MR) {                                                                \
    int32_t pair;                                                              \
    std::memcpy(&pair, ap + r * lda, 4);                                       \
    const __m256i av = _mm256_set1_epi32(pair);                                \
    acc##r##0 = _mm256_add_epi32(acc##r##0, _mm256_madd_epi16(av, b0));        \
    acc##r##1 = _mm256_add_epi32(acc##r##1, _mm256_madd_epi16(av, b1));        \
    __asm__("" : "+x"(acc##r##0), "+x"(acc##r##1)); /* keeps rows in order: no spills */ \
  }
      CDIT_Q_ROWS(CDIT_Q_STEP)
#undef CDIT_Q_STEP
    }
    const float* g = gscale ? gscale + (f0 / flush) * kPanel : nullptr;
    const bool last = ep && f1 == np;
#define CDIT_Q_FLUSH(r)                                                        \
  if (r < MR) {                                                                \
    __m256 v0 = _mm256_cvtepi32_ps(acc##r##0), v1 = _mm256_cvtepi32_ps(acc##r##1); \
    if (g) {                                                                   \
      v0 = _mm256_mul_ps(v0, _mm256_loadu_ps(g));                              \
      v1 = _mm256_mul_ps(v1, _mm256_loadu_ps(g + 8));                          \
    }                                                                          \
    float* dst = c + r * kPanel;                                               \
    const __m256 t0 = _mm256_add_ps(_mm256_loadu_ps(dst), v0);                 \
    const __m256 t1 = _mm256_add_ps(_mm256_loadu_ps(dst + 8), v1);             \
    if (last) {                                                                \
      const __m256 rs = _mm256_set1_ps(ep->row_scale[r]);                      \
      float* out = ep->y + r * ep->ldy;                                        \
      _mm256_storeu_ps(out, _mm256_add_ps(_mm256_mul_ps(t0, _mm256_mul_ps(rs, _mm256_loadu_ps(ep->col_scale))), \
                                          _mm256_loadu_ps(ep->bias)));         \
      _mm256_storeu_ps(out + 8, _mm256_add_ps(_mm256_mul_ps(t1, _mm256_mul_ps(rs, _mm256_loadu_ps(ep->col_scale + 8))), \
                                              _mm256_loadu_ps(ep->bias + 8))); \
    } else {                                                                   \
      _mm256_storeu_ps(dst, t0);                                               \
      _mm256_storeu_ps(dst + 8, t1);                                           \
    }                                                                          \
  }
    CDIT_Q_ROWS(CDIT_Q_FLUSH)
#undef CDIT_Q_FLUSH
  }
}
#undef CDIT_Q_ROWS
#endif

using MicroFn = void (*)(const int16_t*, int64_t, const int16_t*, int64_t, int64_t, const float*, float*,
                         const Epilogue*);

MicroFn micro_for(bool avx2, int rows) {
  static constexpr MicroFn generic[] = {nullptr, micro_generic<1>, micro_generic<2>, micro_generic<3>,
                                        micro_generic<4>, micro_generic<5>, micro_generic<6>};
#if CDIT_X86
  static constexpr MicroFn vec[] = {nullptr, micro_avx2<1>, micro_avx2<2>, micro_avx2<3>,
                                    micro_avx2<4>, micro_avx2<5>, micro_avx2<6>};
  return avx2 ? vec[rows] : generic[rows];
#else
  (void)avx2;
  return generic[rows];
#endif
}

template <typename Ty>
int qlinear_typed(bool avx2, int qact, int qweight, const typename Ty::T* x, int64_t M, int64_t K,
                  const uint8_t* packed, const float* scales, int64_t N, int64_t group, int per_tensor_w,
                  const typename Ty::T* bias, typename Ty::T* y, int nthreads) {
  const int64_t Kp = round_up(K, 2);
  const int64_t pairs = Kp / 2;
  const int32_t amax = act_max(qweight, qact);
  const int64_t flush = flush_pairs(qweight, qact, group);
  const int64_t panels = (N + kPanel - 1) / kPanel;
  const int64_t panel_stride = pairs * kPanel * (qweight == CDIT_QW_INT4 ? 1 : 2);
  // Serial below ~8 M multiply-adds: waking the pool costs more than it saves.
  const int threads = M * N * K < (int64_t{1} << 23) ? 1 : std::max(1, nthreads);

  int16_t* a = static_cast<int16_t*>(std::malloc(static_cast<size_t>(M * Kp) * sizeof(int16_t) + 64));
  float* row_scale = static_cast<float*>(std::malloc(static_cast<size_t>(M) * sizeof(float) + 64));
  if (!a || !row_scale) {
    std::free(a);
    std::free(row_scale);
    return fail(CDIT_ERR_MEMORY, "cannot allocate %lld bytes of activation scratch",
                static_cast<long long>(M * Kp * 2 + M * 4));
  }
  float tensor_absmax = 0.f;
  if (qact == CDIT_QA_INT8_TENSOR || qact == CDIT_QA_FP8_TENSOR) {
    for (int64_t m = 0; m < M; ++m) tensor_absmax = std::max(tensor_absmax, row_absmax<Ty>(x + m * K, K));
  }

  int16_t fp8_lut[256];
  if (qweight == CDIT_QW_FP8) {
    for (int v = 0; v < 256; ++v) {
      const float f = fp8_e4m3_to_f32(static_cast<uint8_t>(v));
      fp8_lut[v] = static_cast<int16_t>(f != f ? 0 : round_even(f * (kFp8Fixed / kFp8E4m3Max)));
    }
  }
  // Per-column factor of the epilogue (besides the row scale).
  auto col_scale = [&](int64_t n) -> float {
    if (qweight == CDIT_QW_INT4) return 1.f;
    const float s = per_tensor_w ? scales[0] : scales[n];
    return qweight == CDIT_QW_FP8 ? s * (kFp8E4m3Max / kFp8Fixed) : s;
  };

  // Rows sharing one dequantised weight tile: as many 96-row blocks as keep their activations of one
  // tile (up to 512 inputs) in about 192 KiB of L2, but no fewer row blocks than threads.
  int64_t group_blocks = std::max<int64_t>(1, std::min<int64_t>(8, 196608 / (kRowBlock * std::min<int64_t>(Kp, 2 * kPairBlock) * 2)));
  const int64_t blocks96 = (M + kRowBlock - 1) / kRowBlock;
  for (; group_blocks > 1; --group_blocks) {  // ... and shared out evenly: the busiest thread within 1/8
    const int64_t groups = (blocks96 + group_blocks - 1) / group_blocks;
    const int64_t per_thread = (groups + threads - 1) / threads * group_blocks;
    if (groups >= threads && per_thread * threads * 8 <= blocks96 * 9) break;
  }
  const int64_t row_block = kRowBlock * group_blocks;
  const int64_t row_blocks = (M + row_block - 1) / row_block;
  const int64_t col_items = (panels + kPanelsPerItem - 1) / kPanelsPerItem;
  const int64_t items = row_blocks * col_items;
  bool oom = false;
  auto run_items = [&](int64_t begin, int64_t end) {
    int16_t* tile = static_cast<int16_t*>(std::aligned_alloc(64, kPairBlock * kPanel * 2 * sizeof(int16_t)));
    float* gscale = static_cast<float*>(std::aligned_alloc(64, (2 * kPairBlock) * kPanel * sizeof(float)));
    float* ctile = static_cast<float*>(std::aligned_alloc(64, row_block * kPanel * sizeof(float)));
    if (!tile || !gscale || !ctile) {
      std::free(tile);
      std::free(gscale);
      std::free(ctile);
      oom = true;
      return;
    }
    for (int64_t item = begin; item < end; ++item) {
      const int64_t rb = item / col_items, cb = item % col_items;
      const int64_t m0 = rb * row_block, m1 = std::min(M, m0 + row_block);
      for (int64_t panel = cb * kPanelsPerItem; panel < std::min(panels, (cb + 1) * kPanelsPerItem); ++panel) {
        const int64_t n0 = panel * kPanel;
        const int64_t ncols = std::min(kPanel, N - n0);
        float cs[kPanel] = {}, bs[kPanel] = {};
        for (int64_t j = 0; j < ncols; ++j) {
          cs[j] = col_scale(n0 + j);
          bs[j] = bias ? Ty::load(bias[n0 + j]) : 0.f;
        }
        // fp32 output and a whole panel: the last flush writes y directly
        const bool fuse = Ty::kDtype == CDIT_F32 && ncols == kPanel;
        std::memset(ctile, 0, sizeof(float) * row_block * kPanel);
        for (int64_t p0 = 0; p0 < pairs; p0 += kPairBlock) {
          const int64_t p1 = std::min(pairs, p0 + kPairBlock);
          dequant_tile(avx2, qweight, packed + panel * panel_stride, p0, p1, group, scales, N, K, n0, fp8_lut, tile,
                       gscale);
          for (int64_t m = m0; m < m1; m += kMicroRows) {
            const int rows = static_cast<int>(std::min<int64_t>(kMicroRows, m1 - m));
            Epilogue ep{row_scale + m, cs, bs, reinterpret_cast<float*>(y + m * N + n0), N};
            micro_for(avx2, rows)(a + m * Kp + 2 * p0, Kp, tile, p1 - p0, flush,
                                  qweight == CDIT_QW_INT4 ? gscale : nullptr, ctile + (m - m0) * kPanel,
                                  fuse && p1 == pairs ? &ep : nullptr);
          }
        }
        if (fuse) continue;
        for (int64_t m = m0; m < m1; ++m) {
          const float rs = row_scale[m];
          const float* src = ctile + (m - m0) * kPanel;
          typename Ty::T* dst = y + m * N + n0;
          for (int64_t j = 0; j < ncols; ++j) dst[j] = Ty::store(src[j] * (rs * cs[j]) + bs[j]);
        }
      }
    }
    std::free(tile);
    std::free(gscale);
    std::free(ctile);
  };
  // One parallel region: with enough rows each thread quantises the rows of its own row blocks and
  // multiplies them (no barrier); with few rows the rows are quantised first and the columns split.
  auto quantize = [&](int64_t rb0, int64_t rb1) {
    const int64_t m0 = rb0 * row_block, m1 = std::min(M, rb1 * row_block);
    if (m1 > m0) {
      quantize_rows<Ty>(avx2, qact, amax, x + m0 * K, m1 - m0, K, Kp, a + m0 * Kp, row_scale + m0, tensor_absmax, 1);
    }
  };
  const int nt = static_cast<int>(std::min<int64_t>(items, threads));
  if (nt <= 1) {
    quantize(0, row_blocks);
    run_items(0, items);
  } else if (row_blocks >= nt) {
#pragma omp parallel num_threads(nt)
    {
      const int t = omp_get_thread_num();
      const int64_t per = (row_blocks + nt - 1) / nt;
      const int64_t rb0 = std::min(row_blocks, t * per), rb1 = std::min(row_blocks, (t + 1) * per);
      quantize(rb0, rb1);
      run_items(rb0 * col_items, rb1 * col_items);
    }
  } else {
    quantize(0, row_blocks);
#pragma omp parallel num_threads(nt)
    {
      const int t = omp_get_thread_num();
      const int64_t per = (items + nt - 1) / nt;
      run_items(std::min(items, t * per), std::min(items, (t + 1) * per));
    }
  }
  std::free(a);
  std::free(row_scale);
  return oom ? CDIT_ERR_MEMORY : CDIT_OK;
}

int check_weight_args(int qweight, int64_t N, int64_t K, int64_t group) {
  if (!valid_qweight(qweight)) return fail(CDIT_ERR_DTYPE, "qweight %d is not a cdit_qweight", qweight);
  if (N <= 0 || K <= 0)
    return fail(CDIT_ERR_ARGUMENT, "N and K must be >= 1, got N=%lld K=%lld", static_cast<long long>(N),
                static_cast<long long>(K));
  if (qweight == CDIT_QW_INT4 && (group < 2 || group % 2 != 0 || group > 2 * kPairBlock ||
                                  kPairBlock * 2 % group != 0 || K % group != 0)) {
    return fail(CDIT_ERR_ARGUMENT, "int4 group must be even, divide %lld and divide K=%lld, got %lld",
                static_cast<long long>(2 * kPairBlock), static_cast<long long>(K), static_cast<long long>(group));
  }
  return CDIT_OK;
}

}  // namespace

int qlinear_impl(bool avx2, int dtype, int qact, int qweight, const void* x, int64_t M, int64_t K,
                 const void* packed, const float* scales, int64_t N, int64_t group, int per_tensor_w,
                 const void* bias, void* y, int nthreads) {
  if (!valid_qact(qact)) return fail(CDIT_ERR_DTYPE, "qact %d is not a cdit_qact", qact);
  const int st = check_weight_args(qweight, N, K, group);
  if (st != CDIT_OK) return st;
  if (qweight == CDIT_QW_INT4 && per_tensor_w)
    return fail(CDIT_ERR_ARGUMENT, "int4 weights have group scales, not per_tensor_w");
  if (M < 0) return fail(CDIT_ERR_ARGUMENT, "M must be >= 0, got %lld", static_cast<long long>(M));
  if (M == 0) return CDIT_OK;
  if (!x || !packed || !scales || !y)
    return fail(CDIT_ERR_ARGUMENT, "x, packed, scales and y must not be NULL when M > 0");
  const auto* p = static_cast<const uint8_t*>(packed);
  switch (dtype) {
    case CDIT_F32:
      return qlinear_typed<F32>(avx2, qact, qweight, static_cast<const float*>(x), M, K, p, scales, N, group,
                                per_tensor_w, static_cast<const float*>(bias), static_cast<float*>(y), nthreads);
    case CDIT_BF16:
      return qlinear_typed<BF16>(avx2, qact, qweight, static_cast<const uint16_t*>(x), M, K, p, scales, N, group,
                                 per_tensor_w, static_cast<const uint16_t*>(bias), static_cast<uint16_t*>(y),
                                 nthreads);
    case CDIT_F16:
      return qlinear_typed<F16>(avx2, qact, qweight, static_cast<const uint16_t*>(x), M, K, p, scales, N, group,
                                per_tensor_w, static_cast<const uint16_t*>(bias), static_cast<uint16_t*>(y),
                                nthreads);
    default:
      return fail(CDIT_ERR_DTYPE, "dtype %d is not CDIT_F32, CDIT_BF16 or CDIT_F16", dtype);
  }
}

// The vector path unless CACHEDIT_QLINEAR_ISA=default asks for the portable one (tests, debugging).
bool use_avx2() {
#if CDIT_X86
  __builtin_cpu_init();
  if (portable_path_forced("CACHEDIT_QLINEAR_ISA")) return false;
  return __builtin_cpu_supports("avx2");
#else
  return false;
#endif
}

}  // namespace cachedit

using namespace cachedit;

static int qweight_quantize_impl(int dtype, int qweight, const void* w, int64_t N, int64_t K, int64_t group,
                                 int per_tensor, void* q, float* scales, int nthreads) {
  const int st = check_weight_args(qweight, N, K, group);
  if (st != CDIT_OK) return st;
  if (!w || !q || !scales) return fail(CDIT_ERR_ARGUMENT, "w, q and scales must not be NULL");
  if (qweight == CDIT_QW_INT4 && per_tensor)
    return fail(CDIT_ERR_ARGUMENT, "int4 weights take group scales, not per_tensor");
  switch (dtype) {
    case CDIT_F32:
      return quantize_weight<F32>(qweight, static_cast<const float*>(w), N, K, group, per_tensor, q, scales, nthreads);
    case CDIT_BF16:
      return quantize_weight<BF16>(qweight, static_cast<const uint16_t*>(w), N, K, group, per_tensor, q, scales,
                                   nthreads);
    case CDIT_F16:
      return quantize_weight<F16>(qweight, static_cast<const uint16_t*>(w), N, K, group, per_tensor, q, scales,
                                  nthreads);
    default:
      return fail(CDIT_ERR_DTYPE, "dtype %d is not CDIT_F32, CDIT_BF16 or CDIT_F16", dtype);
  }
}

extern "C" int64_t cdit_qweight_packed_bytes(int qweight, int64_t N, int64_t K) {
  if (!valid_qweight(qweight) || N <= 0 || K <= 0 || (qweight == CDIT_QW_INT4 && K % 2 != 0)) return -1;
  return packed_bytes(qweight, N, K);
}

static int qweight_pack_impl(int qweight, const void* q, int64_t N, int64_t K, void* packed, int nthreads) {
  if (!valid_qweight(qweight)) return fail(CDIT_ERR_DTYPE, "qweight %d is not a cdit_qweight", qweight);
  if (!q || !packed) return fail(CDIT_ERR_ARGUMENT, "q and packed must not be NULL");
  if (N <= 0 || K <= 0 || (qweight == CDIT_QW_INT4 && K % 2 != 0))
    return fail(CDIT_ERR_ARGUMENT, "N and K must be >= 1 (K even for int4), got N=%lld K=%lld",
                static_cast<long long>(N), static_cast<long long>(K));
  return pack(qweight, q, N, K, packed, nthreads, false);
}

static int qweight_unpack_impl(int qweight, const void* packed, int64_t N, int64_t K, void* q, int nthreads) {
  if (!valid_qweight(qweight)) return fail(CDIT_ERR_DTYPE, "qweight %d is not a cdit_qweight", qweight);
  if (!q || !packed) return fail(CDIT_ERR_ARGUMENT, "q and packed must not be NULL");
  if (N <= 0 || K <= 0 || (qweight == CDIT_QW_INT4 && K % 2 != 0))
    return fail(CDIT_ERR_ARGUMENT, "N and K must be >= 1 (K even for int4), got N=%lld K=%lld",
                static_cast<long long>(N), static_cast<long long>(K));
  return pack(qweight, q, N, K, const_cast<void*>(packed), nthreads, true);
}

static int qlinear_impl(int dtype, int qact, int qweight, const void* x, int64_t M, int64_t K,
                        const void* packed, const float* scales, int64_t N, int64_t group, int per_tensor_w,
                        const void* bias, void* y, int nthreads) {
  return qlinear_impl(use_avx2(), dtype, qact, qweight, x, M, K, packed, scales, N, group, per_tensor_w, bias, y,
                      nthreads);
}

extern "C" const char* cdit_qlinear_isa(void) { return use_avx2() ? "avx2" : "default"; }

// ---- the C ABI: each entry point records why it failed (cdit_last_error) ----

extern "C" cdit_status cdit_qweight_quantize(int dtype, int qweight, const void* w, int64_t N, int64_t K, int64_t group,
                                             int per_tensor, void* q, float* scales, int nthreads) {
  return checked("cdit_qweight_quantize",
                 qweight_quantize_impl(dtype, qweight, w, N, K, group, per_tensor, q, scales, nthreads));
}

extern "C" cdit_status cdit_qweight_pack(int qweight, const void* q, int64_t N, int64_t K, void* packed, int nthreads) {
  return checked("cdit_qweight_pack", qweight_pack_impl(qweight, q, N, K, packed, nthreads));
}

extern "C" cdit_status cdit_qweight_unpack(int qweight, const void* packed, int64_t N, int64_t K, void* q,
    int nthreads) {
  return checked("cdit_qweight_unpack", qweight_unpack_impl(qweight, packed, N, K, q, nthreads));
}

extern "C" cdit_status cdit_qlinear(int dtype, int qact, int qweight, const void* x, int64_t M, int64_t K,
    const void* packed, const float* scales, int64_t N, int64_t group, int per_tensor_w, const void* bias, void* y,
    int nthreads) {
  return checked("cdit_qlinear", qlinear_impl(dtype, qact, qweight, x, M, K, packed, scales, N, group, per_tensor_w,
      bias, y, nthreads));
}
