// Ulysses all-to-all packing: fused permute + head padding + optional fp8 row quantisation
// (docs/parallelism.md, "What runs where"). Every output row is produced from exactly one input row (or zeros), so the
// kernels are row-parallel gathers; D values of a row are contiguous on both sides.
#include <cstring>
#include <initializer_list>

#include "cachedit_kernels.h"
#include "error.hpp"
#include "isa.hpp"
#include "numeric.hpp"
#include "parallel.hpp"
#include "ulysses_layout.hpp"

namespace cachedit {
namespace {


template <typename Ty>
CDIT_INLINE float row_absmax(const typename Ty::T* src, int64_t D) {
  float m = 0.0f;
#pragma omp simd reduction(max : m)
  for (int64_t i = 0; i < D; ++i) {
    const float a = fabsf(Ty::load(src[i]));
    m = a > m ? a : m;
  }
  return m;
}

template <typename Ty>
CDIT_INLINE void quantize_row(const typename Ty::T* src, uint8_t* dst, int64_t D, float scale) {
#pragma omp simd
  for (int64_t i = 0; i < D; ++i) dst[i] = f32_to_fp8_e4m3(Ty::load(src[i]) / scale);
}

// Encodes one row of D values (src == nullptr: a zero row) in the wire format.
template <typename Ty, int Wire>
CDIT_INLINE void encode_row(const typename Ty::T* src, uint8_t* dst, int64_t D) {
  using T = typename Ty::T;
  if (Wire == CDIT_WIRE_RAW) {
    if (src == nullptr) std::memset(dst, 0, D * sizeof(T));
    else std::memcpy(dst, src, D * sizeof(T));
  } else if (Wire == CDIT_WIRE_FP8_F32_SCALE) {
    float scale = src == nullptr ? 0.0f : row_absmax<Ty>(src, D) / kFp8E4m3Max;
    scale = scale > kF32ScaleFloor ? scale : kF32ScaleFloor;
    if (src == nullptr) std::memset(dst, 0, D);
    else quantize_row<Ty>(src, dst, D, scale);
    std::memcpy(dst + D, &scale, 4);
  } else {
    float absmax = src == nullptr ? 0.0f : row_absmax<Ty>(src, D);
    absmax = absmax > kBf16AbsmaxFloor ? absmax : kBf16AbsmaxFloor;
    // Quantise with the bf16-rounded scale that travels, so dequantisation is consistent;
    // saturation absorbs the (at most 2^-8 relative) rounding of the scale.
    const uint16_t scale_bits = f32_to_bf16(absmax / kFp8E4m3Max);
    if (src == nullptr) std::memset(dst, 0, D);
    else quantize_row<Ty>(src, dst, D, bf16_to_f32(scale_bits));
    std::memcpy(dst + D, &scale_bits, 2);
  }
}

template <typename Ty, int Wire>
CDIT_INLINE void decode_row(const uint8_t* src, typename Ty::T* dst, int64_t D) {
  using T = typename Ty::T;
  if (Wire == CDIT_WIRE_RAW) {
    std::memcpy(dst, src, D * sizeof(T));
    return;
  }
  float scale;
  if (Wire == CDIT_WIRE_FP8_F32_SCALE) {
    std::memcpy(&scale, src + D, 4);
  } else {
    uint16_t bits;
    std::memcpy(&bits, src + D, 2);
    scale = bf16_to_f32(bits);
  }
#pragma omp simd
  for (int64_t i = 0; i < D; ++i) dst[i] = Ty::store(fp8_e4m3_to_f32(src[i]) * scale);
}

int64_t row_bytes(int dtype, int wire, int64_t D) {
  const int es = cdit_dtype_size(dtype);
  if (es == 0 || D < 0) return -1;
  switch (wire) {
    case CDIT_WIRE_RAW: return D * es;
    case CDIT_WIRE_FP8_F32_SCALE: return D + 4;
    case CDIT_WIRE_FP8_BF16_SCALE: return D + 2;
    default: return -1;
  }
}

template <Op O, typename Ty, int Wire>
CDIT_INLINE void rows_typed(const Layout& g, void* out, const void* in, int64_t r0, int64_t r1) {
  using T = typename Ty::T;
  constexpr bool kPack = O == Op::kPackHeads || O == Op::kPackSeq;
  const int64_t wire_bytes = row_bytes(Ty::kDtype, Wire, g.D);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t src = src_row<O>(g, r);
    if (kPack) {
      const T* row = src < 0 ? nullptr : static_cast<const T*>(in) + src * g.D;
      encode_row<Ty, Wire>(row, static_cast<uint8_t*>(out) + r * wire_bytes, g.D);
    } else {
      decode_row<Ty, Wire>(static_cast<const uint8_t*>(in) + src * wire_bytes, static_cast<T*>(out) + r * g.D,
                           g.D);
    }
  }
}

template <Op O>
CDIT_INLINE void rows(int dtype, int wire, const Layout& g, void* out, const void* in, int64_t r0, int64_t r1) {
#define CDIT_WIRES(TY)                                                                          \
  switch (wire) {                                                                               \
    case CDIT_WIRE_RAW: rows_typed<O, TY, CDIT_WIRE_RAW>(g, out, in, r0, r1); break;            \
    case CDIT_WIRE_FP8_F32_SCALE: rows_typed<O, TY, CDIT_WIRE_FP8_F32_SCALE>(g, out, in, r0, r1); break; \
    default: rows_typed<O, TY, CDIT_WIRE_FP8_BF16_SCALE>(g, out, in, r0, r1); break;           \
  }
  switch (dtype) {
    case CDIT_F32: CDIT_WIRES(F32) break;
    case CDIT_BF16: CDIT_WIRES(BF16) break;
    default: CDIT_WIRES(F16) break;
  }
#undef CDIT_WIRES
}

CDIT_CLONES void rows_pack_heads(int dt, int w, const Layout& g, void* o, const void* i, int64_t a, int64_t b) {
  rows<Op::kPackHeads>(dt, w, g, o, i, a, b);
}
CDIT_CLONES void rows_unpack_heads(int dt, int w, const Layout& g, void* o, const void* i, int64_t a, int64_t b) {
  rows<Op::kUnpackHeads>(dt, w, g, o, i, a, b);
}
CDIT_CLONES void rows_pack_seq(int dt, int w, const Layout& g, void* o, const void* i, int64_t a, int64_t b) {
  rows<Op::kPackSeq>(dt, w, g, o, i, a, b);
}
CDIT_CLONES void rows_unpack_seq(int dt, int w, const Layout& g, void* o, const void* i, int64_t a, int64_t b) {
  rows<Op::kUnpackSeq>(dt, w, g, o, i, a, b);
}

using RowsFn = void (*)(int, int, const Layout&, void*, const void*, int64_t, int64_t);

int run(RowsFn fn, int dtype, int wire, const Layout& g, void* out, const void* in, int64_t out_rows,
        int nthreads) {
  if (row_bytes(dtype, wire, g.D) < 0)
    return fail(CDIT_ERR_DTYPE, "dtype %d with wire %d is not a supported combination (cdit_dtype x cdit_wire)",
                dtype, wire);
  if (out_rows == 0 || g.D == 0) return CDIT_OK;
  if (out == nullptr || in == nullptr) return fail(CDIT_ERR_ARGUMENT, "out and in must not be NULL");
  const int64_t rows_per_block = g.D >= 4096 ? 1 : 4096 / g.D;
  parallel_blocks(out_rows, rows_per_block, nthreads, g.D,
                  [&](int64_t r0, int64_t r1) { fn(dtype, wire, g, out, in, r0, r1); });
  return CDIT_OK;
}

bool dims_ok(std::initializer_list<int64_t> dims) {
  for (int64_t d : dims)
    if (d < 0) return false;
  return true;
}

}  // namespace
}  // namespace cachedit

using namespace cachedit;

extern "C" int64_t cdit_wire_row_bytes(int dtype, int wire, int64_t D) { return row_bytes(dtype, wire, D); }

static int ulysses_pack_heads_impl(int dtype, int wire, void* out, const void* in, int64_t B, int64_t S,
                                   int64_t H, int64_t D, int64_t P, int nthreads) {
  if (!dims_ok({B, S, H, D}) || P < 1)
    return fail(CDIT_ERR_ARGUMENT, "B, S, H, D must be >= 0 and P >= 1, got B=%lld S=%lld H=%lld D=%lld P=%lld",
                static_cast<long long>(B), static_cast<long long>(S), static_cast<long long>(H),
                static_cast<long long>(D), static_cast<long long>(P));
  const Layout g{B, S, H, D, P, (H + P - 1) / P, 0};
  return run(rows_pack_heads, dtype, wire, g, out, in, P * S * B * g.Hl, nthreads);
}

static int ulysses_unpack_heads_impl(int dtype, int wire, void* out, const void* in, int64_t B, int64_t S,
                                     int64_t H, int64_t D, int64_t P, int nthreads) {
  if (!dims_ok({B, S, H, D}) || P < 1)
    return fail(CDIT_ERR_ARGUMENT, "B, S, H, D must be >= 0 and P >= 1, got B=%lld S=%lld H=%lld D=%lld P=%lld",
                static_cast<long long>(B), static_cast<long long>(S), static_cast<long long>(H),
                static_cast<long long>(D), static_cast<long long>(P));
  const Layout g{B, S, H, D, P, (H + P - 1) / P, 0};
  return run(rows_unpack_heads, dtype, wire, g, out, in, B * S * H, nthreads);
}

static int ulysses_pack_seq_impl(int dtype, int wire, void* out, const void* in, int64_t B, int64_t S,
                                 int64_t Hk, int64_t Hl, int64_t D, int nthreads) {
  if (!dims_ok({B, S, Hk, Hl, D}) || Hk > Hl)
    return fail(CDIT_ERR_ARGUMENT,
                "B, S, Hk, Hl, D must be >= 0 with Hk <= Hl, got B=%lld S=%lld Hk=%lld Hl=%lld D=%lld",
                static_cast<long long>(B), static_cast<long long>(S), static_cast<long long>(Hk),
                static_cast<long long>(Hl), static_cast<long long>(D));
  const Layout g{B, S, 0, D, 1, Hl, Hk};
  return run(rows_pack_seq, dtype, wire, g, out, in, S * B * Hl, nthreads);
}

static int ulysses_unpack_seq_impl(int dtype, int wire, void* out, const void* in, int64_t B, int64_t S,
                                   int64_t Hk, int64_t Hl, int64_t D, int nthreads) {
  if (!dims_ok({B, S, Hk, Hl, D}) || Hk > Hl)
    return fail(CDIT_ERR_ARGUMENT,
                "B, S, Hk, Hl, D must be >= 0 with Hk <= Hl, got B=%lld S=%lld Hk=%lld Hl=%lld D=%lld",
                static_cast<long long>(B), static_cast<long long>(S), static_cast<long long>(Hk),
                static_cast<long long>(Hl), static_cast<long long>(D));
  const Layout g{B, S, 0, D, 1, Hl, Hk};
  return run(rows_unpack_seq, dtype, wire, g, out, in, B * S * Hk, nthreads);
}

extern "C" uint8_t cdit_fp8_e4m3_from_float(float x) { return f32_to_fp8_e4m3(x); }
extern "C" float cdit_fp8_e4m3_to_float(uint8_t v) { return fp8_e4m3_to_f32(v); }

// ---- the C ABI: each entry point records why it failed (cdit_last_error) ----

extern "C" cdit_status cdit_ulysses_pack_heads(int dtype, int wire, void* out, const void* in, int64_t B, int64_t S,
                                               int64_t H, int64_t D, int64_t P, int nthreads) {
  return checked("cdit_ulysses_pack_heads", ulysses_pack_heads_impl(dtype, wire, out, in, B, S, H, D, P, nthreads));
}

extern "C" cdit_status cdit_ulysses_unpack_heads(int dtype, int wire, void* out, const void* in, int64_t B, int64_t S,
                                                 int64_t H, int64_t D, int64_t P, int nthreads) {
  return checked("cdit_ulysses_unpack_heads", ulysses_unpack_heads_impl(dtype, wire, out, in, B, S, H, D, P, nthreads));
}

extern "C" cdit_status cdit_ulysses_pack_seq(int dtype, int wire, void* out, const void* in, int64_t B, int64_t S,
                                             int64_t Hk, int64_t Hl, int64_t D, int nthreads) {
  return checked("cdit_ulysses_pack_seq", ulysses_pack_seq_impl(dtype, wire, out, in, B, S, Hk, Hl, D, nthreads));
}

extern "C" cdit_status cdit_ulysses_unpack_seq(int dtype, int wire, void* out, const void* in, int64_t B, int64_t S,
                                               int64_t Hk, int64_t Hl, int64_t D, int nthreads) {
  return checked("cdit_ulysses_unpack_seq", ulysses_unpack_seq_impl(dtype, wire, out, in, B, S, Hk, Hl, D, nthreads));
}
