// Row geometry of the Ulysses all-to-all layouts, shared by the CPU and CUDA kernels. Internal header.
#pragma once

#include <cstdint>

#include "numeric.hpp"

namespace cachedit {

constexpr float kF32ScaleFloor = 1e-6f;   // Q/V: floor on the scale (docs/parallelism.md)
constexpr float kBf16AbsmaxFloor = 1e-4f;  // O: floor on the absmax (docs/parallelism.md)

// Geometry of one call; `src_row(r)` maps an output row to an input row index or -1 (zeros).
struct Layout {
  int64_t B, S, H, D, P, Hl;  // pack/unpack_heads
  int64_t Hk;                 // pack/unpack_seq: real heads on this rank
};

// pack_heads: out [P, S, B, Hl] <- in [B, S, H]
CDIT_INLINE int64_t pack_heads_src(const Layout& g, int64_t r) {
  const int64_t hl = r % g.Hl;
  int64_t t = r / g.Hl;
  const int64_t b = t % g.B;
  t /= g.B;
  const int64_t s = t % g.S;
  const int64_t p = t / g.S;
  const int64_t h = p * g.Hl + hl;
  return h < g.H ? (b * g.S + s) * g.H + h : -1;
}
// unpack_heads: out [B, S, H] <- in [P, S, B, Hl]
CDIT_INLINE int64_t unpack_heads_src(const Layout& g, int64_t r) {
  const int64_t h = r % g.H;
  const int64_t t = r / g.H;
  const int64_t s = t % g.S;
  const int64_t b = t / g.S;
  const int64_t p = h / g.Hl, hl = h % g.Hl;
  return ((p * g.S + s) * g.B + b) * g.Hl + hl;
}
// pack_seq: out [S, B, Hl] <- in [B, S, Hk]
CDIT_INLINE int64_t pack_seq_src(const Layout& g, int64_t r) {
  const int64_t hl = r % g.Hl;
  const int64_t t = r / g.Hl;
  const int64_t b = t % g.B;
  const int64_t s = t / g.B;
  return hl < g.Hk ? (b * g.S + s) * g.Hk + hl : -1;
}
// unpack_seq: out [B, S, Hk] <- in [S, B, Hl]
CDIT_INLINE int64_t unpack_seq_src(const Layout& g, int64_t r) {
  const int64_t h = r % g.Hk;
  const int64_t t = r / g.Hk;
  const int64_t s = t % g.S;
  const int64_t b = t / g.S;
  return (s * g.B + b) * g.Hl + h;
}

enum class Op { kPackHeads, kUnpackHeads, kPackSeq, kUnpackSeq };

template <Op O>
CDIT_INLINE int64_t src_row(const Layout& g, int64_t r) {
  if (O == Op::kPackHeads) return pack_heads_src(g, r);
  if (O == Op::kUnpackHeads) return unpack_heads_src(g, r);
  if (O == Op::kPackSeq) return pack_seq_src(g, r);
  return unpack_seq_src(g, r);
}

}  // namespace cachedit
