// CPU kernel tests: every kernel against a straightforward fp64 reference, every dtype, sizes that
// hit the serial path, block remainders and the parallel path, plus the error contract.
// Run: ctest (or ./test_kernels [name-filter]).
#include <algorithm>
#include <limits>
#include <string>
#include <thread>

#include "cachedit_kernels.h"
#include "numeric.hpp"
#include "ref.hpp"
#include "test_util.hpp"

using namespace cdit_test;

static const int kDtypes[] = {CDIT_F32, CDIT_BF16, CDIT_F16};
static const int64_t kSizes[] = {0, 1, 17, 8193, 1000003};

CDIT_CASE(fp8_decode_encode_all_codes) {
  for (int c = 0; c < 256; ++c) {
    const float v = cdit_fp8_e4m3_to_float((uint8_t)c);
    if ((c & 0x7F) == 0x7F) {
      CDIT_CHECK(std::isnan(v), "code %02x must decode to NaN", c);
      CDIT_CHECK((cdit_fp8_e4m3_from_float(v) & 0x7F) == 0x7F, "NaN must encode to NaN");
      continue;
    }
    CDIT_CHECK(v == (float)fp8_value(c), "code %02x decodes to %g, want %g", c, v, fp8_value(c));
    const uint8_t back = cdit_fp8_e4m3_from_float(v);
    CDIT_CHECK(back == c || (c == 0x80 && back == 0x80), "code %02x round trip gave %02x", c, back);
  }
}

CDIT_CASE(fp8_encode_matches_bruteforce_rne) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<float> exp(-14.0f, 10.0f);
  int mismatches = 0;
  for (int i = 0; i < 200000; ++i) {
    float f = std::ldexp(1.0f + (rng() % 1000000) / 1e6f, (int)exp(rng)) * ((rng() & 1) ? -1.f : 1.f);
    if (cdit_fp8_e4m3_from_float(f) != ref_fp8(f)) ++mismatches;
  }
  // exact midpoints between neighbouring codes must round to the even code
  for (int c = 0; c < 0x7D; ++c) {
    const float mid = (float)((fp8_value(c) + fp8_value(c + 1)) / 2);
    CDIT_CHECK(cdit_fp8_e4m3_from_float(mid) == ref_fp8(mid), "midpoint after %02x", c);
  }
  CDIT_CHECK(mismatches == 0, "%d of 200000 random values differ from brute-force RNE", mismatches);
  CDIT_CHECK(cdit_fp8_e4m3_from_float(448.f) == 0x7E, "448");
  CDIT_CHECK(cdit_fp8_e4m3_from_float(500.f) == 0x7E, "500 saturates");
  CDIT_CHECK(cdit_fp8_e4m3_from_float(-1e30f) == 0xFE, "-1e30 saturates");
  CDIT_CHECK(cdit_fp8_e4m3_from_float(INFINITY) == 0x7E, "inf saturates");
  CDIT_CHECK(cdit_fp8_e4m3_from_float(1e-30f) == 0x00, "tiny flushes to +0");
}

CDIT_CASE(rel_l1_matches_reference_and_is_thread_independent) {
  for (int dt : kDtypes) {
    for (int64_t n : kSizes) {
      auto av = randn(n, 1 + n), noise = randn(n, 2 + n, 0.05f);
      std::vector<float> bv(n);
      for (int64_t i = 0; i < n; ++i) bv[i] = av[i] + noise[i];
      Typed a(dt, av), b(dt, bv);
      double num_ref = 0, den_ref = 0;
      for (int64_t i = 0; i < n; ++i) {
        num_ref += std::fabs(a.get(i) - b.get(i));
        den_ref += std::fabs(a.get(i));
      }
      double num1, den1, num2, den2, diff;
      CDIT_CHECK(cdit_rel_l1_sums(dt, a.data(), b.data(), n, 1, &num1, &den1) == CDIT_OK, "status");
      CDIT_CHECK(cdit_rel_l1_sums(dt, a.data(), b.data(), n, 2, &num2, &den2) == CDIT_OK, "status");
      CDIT_CHECK(cdit_rel_l1(dt, a.data(), b.data(), n, 2, &diff) == CDIT_OK, "status");
      CDIT_CHECK(num1 == num2 && den1 == den2, "%s n=%lld: thread count changed the sums", dtype_name(dt), (long long)n);
      const double tol = 1e-5;
      CDIT_CHECK(std::fabs(num1 - num_ref) <= tol * num_ref + 1e-12, "%s n=%lld num %.9g vs %.9g", dtype_name(dt), (long long)n, num1, num_ref);
      CDIT_CHECK(std::fabs(den1 - den_ref) <= tol * den_ref + 1e-12, "%s n=%lld den %.9g vs %.9g", dtype_name(dt), (long long)n, den1, den_ref);
      if (n > 0) CDIT_CHECK(std::fabs(diff - num_ref / den_ref) <= 2e-5 * (num_ref / den_ref), "%s ratio", dtype_name(dt));
      else CDIT_CHECK(diff == 0.0, "empty input gives 0");
    }
  }
}

CDIT_CASE(rel_l1_residual_matches_materialised_residual) {
  for (int dt : kDtypes) {
    for (int64_t n : kSizes) {
      Typed p(dt, randn(n, 3 + n)), a(dt, randn(n, 4 + n)), b(dt, randn(n, 5 + n));
      // the residual materialised in the dtype, then the plain kernel: must agree exactly
      Typed d(dt, n);
      for (int64_t i = 0; i < n; ++i) d.set(i, (float)(a.get(i) - b.get(i)));
      double n1, d1, n2, d2, n3, d3;
      CDIT_CHECK(cdit_rel_l1_residual_sums(dt, p.data(), a.data(), b.data(), n, 2, &n1, &d1) == CDIT_OK, "status");
      CDIT_CHECK(cdit_rel_l1_sums(dt, p.data(), d.data(), n, 2, &n2, &d2) == CDIT_OK, "status");
      cdit_rel_l1_residual_sums(dt, p.data(), a.data(), b.data(), n, 1, &n3, &d3);
      CDIT_CHECK(n1 == n2 && d1 == d2, "%s n=%lld fused %.17g %.17g vs materialised %.17g %.17g", dtype_name(dt),
                 (long long)n, n1, d1, n2, d2);
      CDIT_CHECK(n1 == n3 && d1 == d3, "%s n=%lld thread count changed the sums", dtype_name(dt), (long long)n);
    }
  }
  double x, y;
  CDIT_CHECK(cdit_rel_l1_residual_sums(CDIT_F32, nullptr, nullptr, nullptr, 3, 1, &x, &y) == CDIT_ERR_ARGUMENT, "null");
}

CDIT_CASE(rel_l1_zero_denominator) {
  float z[3] = {0, 0, 0}, o[3] = {0, 1, 0};
  double d;
  cdit_rel_l1(CDIT_F32, z, z, 3, 1, &d);
  CDIT_CHECK(d == 0.0, "0/0 -> 0, got %g", d);
  cdit_rel_l1(CDIT_F32, z, o, 3, 1, &d);
  CDIT_CHECK(std::isinf(d), "x/0 -> inf, got %g", d);
}

CDIT_CASE(taylor_predict_matches_reference) {
  const double ks[] = {0.0, 1.0, 3.0, 0.5};
  for (int dt : kDtypes) {
    for (int64_t n : kSizes) {
      for (int nterms = 1; nterms <= CDIT_TAYLOR_MAX_TERMS; ++nterms) {
        for (double k : ks) {
          if (n > 100000 && (k != 3.0 || (nterms != 2 && nterms != 5))) continue;  // keep ctest fast
          std::vector<Typed> terms;
          const void* ptrs[CDIT_TAYLOR_MAX_TERMS];
          for (int i = 0; i < nterms; ++i) terms.emplace_back(dt, randn(n, 10 * i + n));
          for (int i = 0; i < nterms; ++i) ptrs[i] = terms[i].data();
          Typed out(dt, n);
          CDIT_CHECK(cdit_taylor_predict(dt, out.data(), ptrs, nterms, k, n, 2) == CDIT_OK, "status");
          std::vector<double> want(n), got = out.values();
          for (int64_t j = 0; j < n; ++j) {
            double acc = 0, c = 1;
            for (int i = 0; i < nterms; ++i) {
              if (i > 0) c = c * k / i;
              acc += terms[i].get(j) * c;
            }
            want[j] = out.round((float)acc);
          }
          const double limit = dt == CDIT_F32 ? 1e-12 : 1e-5;
          const double e = nmse(want, got);
          CDIT_CHECK(e <= limit, "%s n=%lld nterms=%d k=%g nmse=%g", dtype_name(dt), (long long)n, nterms, k, e);
        }
      }
    }
  }
}

CDIT_CASE(taylor_update_ladder_matches_reference) {
  for (int dt : kDtypes) {
    for (int64_t n : kSizes) {
      for (int nlevels = 1; nlevels <= CDIT_TAYLOR_MAX_TERMS; ++nlevels) {
        for (int nvalid = 0; nvalid <= nlevels; ++nvalid) {
          if (n > 100000 && nvalid != nlevels - 1) continue;  // keep ctest fast
          const double gap = 3.0;
          std::vector<Typed> ladder;
          void* ptrs[CDIT_TAYLOR_MAX_TERMS];
          for (int i = 0; i < nlevels; ++i) ladder.emplace_back(dt, randn(n, 100 + i));
          std::vector<std::vector<double>> old;
          for (auto& l : ladder) old.push_back(l.values());
          for (int i = 0; i < nlevels; ++i) ptrs[i] = ladder[i].data();
          Typed y(dt, randn(n, 99));
          CDIT_CHECK(cdit_taylor_update(dt, ptrs, nvalid, nlevels, y.data(), gap, n, 2) == CDIT_OK, "status");
          const int count = std::min(nvalid + 1, nlevels);
          for (int lvl = 0; lvl < nlevels; ++lvl) {
            std::vector<double> want(n), got = ladder[lvl].values();
            for (int64_t j = 0; j < n; ++j) {
              float cur = (float)y.get(j);
              for (int i = 0; i < lvl && i < count; ++i) cur = (cur - (float)old[i][j]) / (float)gap;
              want[j] = lvl < count ? ladder[lvl].round(cur) : old[lvl][j];  // untouched above count
            }
            const double e = nmse(want, got);
            CDIT_CHECK(e <= (dt == CDIT_F32 ? 1e-12 : 1e-5), "%s n=%lld levels=%d valid=%d level %d nmse=%g",
                       dtype_name(dt), (long long)n, nlevels, nvalid, lvl, e);
          }
        }
      }
    }
  }
}

CDIT_CASE(taylor_seer_example_y_equals_t_squared) {
  // docs/algorithms.md section 6.1: Y = t^2 computed at steps 0..3 and 6 (order 1) predicts 14, 19 at 4, 5 and 45, 54, 63.
  float l0 = 0, l1 = 0;
  void* ladder[2] = {&l0, &l1};
  int valid = 0, last = -1;
  auto update = [&](int step) {
    float y = (float)step * step;
    // the reference's `current_step > 1` guard uses the state's lagging counter (step - 1)
    const int nvalid = (step - 1) > 1 ? valid : 0;
    cdit_taylor_update(CDIT_F32, ladder, nvalid, 2, &y, step - last, 1, 1);
    valid = std::min(nvalid + 1, 2);
    last = step;
  };
  auto predict = [&](int step) {
    const void* t[2] = {&l0, &l1};
    float out;
    cdit_taylor_predict(CDIT_F32, &out, t, valid, step - last, 1, 1);
    return out;
  };
  for (int s = 0; s <= 3; ++s) update(s);
  CDIT_CHECK(predict(4) == 14.f && predict(5) == 19.f, "steps 4,5: %g %g", predict(4), predict(5));
  update(6);
  CDIT_CHECK(predict(7) == 45.f && predict(8) == 54.f && predict(9) == 63.f, "steps 7..9: %g %g %g", predict(7),
             predict(8), predict(9));
}

// Reference Ulysses layouts, by index arithmetic written independently of the kernels.
static void check_ulysses(int dt, int wire, int64_t B, int64_t S, int64_t H, int64_t D, int64_t P) {
  const int64_t Hl = (H + P - 1) / P;
  const int64_t rb = cdit_wire_row_bytes(dt, wire, D);
  Typed in(dt, randn(B * S * H * D, B * 1000 + S * 100 + H * 10 + D, 3.0f));
  std::vector<uint8_t> wire_buf(P * S * B * Hl * rb, 0xCD);
  CDIT_CHECK(cdit_ulysses_pack_heads(dt, wire, wire_buf.data(), in.data(), B, S, H, D, P, 2) == CDIT_OK, "pack");
  Typed back(dt, B * S * H * D);
  CDIT_CHECK(cdit_ulysses_unpack_heads(dt, wire, back.data(), wire_buf.data(), B, S, H, D, P, 2) == CDIT_OK, "unpack");
  int bad = 0;
  for (int64_t p = 0; p < P; ++p)
    for (int64_t s = 0; s < S; ++s)
      for (int64_t b = 0; b < B; ++b)
        for (int64_t hl = 0; hl < Hl; ++hl) {
          const int64_t h = p * Hl + hl;
          const uint8_t* row = &wire_buf[(((p * S + s) * B + b) * Hl + hl) * rb];
          double scale = 1.0, absmax = 0.0;
          if (h < H)
            for (int64_t d = 0; d < D; ++d) absmax = std::max(absmax, std::fabs(in.get(((b * S + s) * H + h) * D + d)));
          if (wire == CDIT_WIRE_FP8_F32_SCALE) {
            float sc; std::memcpy(&sc, row + D, 4); scale = sc;
            const double want = std::max((float)(absmax) / 448.0f, 1e-6f);
            if (std::fabs(scale - want) > 1e-7 * want) ++bad;
          } else if (wire == CDIT_WIRE_FP8_BF16_SCALE) {
            uint16_t sb; std::memcpy(&sb, row + D, 2); scale = bf16f(sb);
            if (sb != ref_bf16(std::max((float)absmax, 1e-4f) / 448.0f)) ++bad;
          }
          for (int64_t d = 0; d < D; ++d) {
            const double x = h < H ? in.get(((b * S + s) * H + h) * D + d) : 0.0;
            double got;
            if (wire == CDIT_WIRE_RAW) {
              Typed one(dt, 1); std::memcpy(one.data(), row + d * cdit_dtype_size(dt), cdit_dtype_size(dt));
              got = one.get(0);
              if (got != x) ++bad;
            } else {
              if (row[d] != ref_fp8((float)x / (float)scale)) ++bad;  // bit-exact against the composite
            }
          }
        }
  CDIT_CHECK(bad == 0, "%s %s B%lld S%lld H%lld D%lld P%lld: %d wrong wire values", dtype_name(dt), wire_name(wire),
             (long long)B, (long long)S, (long long)H, (long long)D, (long long)P, bad);
  // round trip
  int over = 0;
  for (int64_t i = 0; i < B * S * H; ++i) {
    double absmax = 0;
    for (int64_t d = 0; d < D; ++d) absmax = std::max(absmax, std::fabs(in.get(i * D + d)));
    const double scale = wire == CDIT_WIRE_FP8_F32_SCALE ? std::max(absmax / 448, 1e-6) : std::max(absmax, 1e-4) / 448 * 1.004;
    for (int64_t d = 0; d < D; ++d) {
      const double x = in.get(i * D + d), y = back.get(i * D + d);
      const double bound = wire == CDIT_WIRE_RAW ? 0.0 : fp8_bound(x, scale) + std::fabs(x) * (dt == CDIT_F32 ? 0 : 1.0 / 128);
      if (!(std::fabs(x - y) <= bound)) ++over;
    }
  }
  CDIT_CHECK(over == 0, "%s %s: %d round-trip errors beyond e4m3 precision", dtype_name(dt), wire_name(wire), over);

  // QKV receive side and O send side: [B,S,Hk,D] <-> [S,B,Hl,D]
  for (int64_t Hk : {Hl, Hl > 1 ? Hl - 1 : Hl}) {
    Typed x(dt, randn(B * S * Hk * D, 77 + Hk));
    std::vector<uint8_t> seq(S * B * Hl * rb);
    CDIT_CHECK(cdit_ulysses_pack_seq(dt, wire, seq.data(), x.data(), B, S, Hk, Hl, D, 2) == CDIT_OK, "pack_seq");
    Typed y(dt, B * S * Hk * D);
    CDIT_CHECK(cdit_ulysses_unpack_seq(dt, wire, y.data(), seq.data(), B, S, Hk, Hl, D, 2) == CDIT_OK, "unpack_seq");
    int wrong = 0;
    for (int64_t s = 0; s < S; ++s)
      for (int64_t b = 0; b < B; ++b)
        for (int64_t h = Hk; h < Hl; ++h) {  // padded heads travel as zeros
          const uint8_t* row = &seq[((s * B + b) * Hl + h) * rb];
          for (int64_t d = 0; d < D; ++d)
            if (wire == CDIT_WIRE_RAW ? row[d * cdit_dtype_size(dt)] != 0 : row[d] != 0) ++wrong;
        }
    for (int64_t i = 0; i < B * S * Hk * D; ++i) {
      const double a = x.get(i), c = y.get(i);
      if (wire == CDIT_WIRE_RAW ? a != c : std::fabs(a - c) > 0.07 * std::fabs(a) + 0.01) ++wrong;
    }
    CDIT_CHECK(wrong == 0, "%s %s seq layout Hk=%lld: %d wrong", dtype_name(dt), wire_name(wire), (long long)Hk, wrong);
  }
}

CDIT_CASE(ulysses_pack_unpack_all_dtypes_and_wires) {
  for (int dt : kDtypes)
    for (int wire : {CDIT_WIRE_RAW, CDIT_WIRE_FP8_F32_SCALE, CDIT_WIRE_FP8_BF16_SCALE}) {
      check_ulysses(dt, wire, 1, 1, 1, 1, 1);
      check_ulysses(dt, wire, 2, 3, 4, 8, 2);      // even heads
      check_ulysses(dt, wire, 1, 5, 30, 16, 4);    // Z-Image: 30 heads over 4 ranks -> 2 zero heads
      check_ulysses(dt, wire, 2, 64, 24, 128, 8);  // parallel path
    }
}

CDIT_CASE(fp8_wire_never_creates_nan_from_finite) {
  std::vector<float> v = {3e38f, -3e38f, 1e-38f, 0.f, -0.f, 448.f, 449.f, 1e-45f};
  for (int wire : {CDIT_WIRE_FP8_F32_SCALE, CDIT_WIRE_FP8_BF16_SCALE}) {
    std::vector<uint8_t> buf(cdit_wire_row_bytes(CDIT_F32, wire, 8));
    cdit_ulysses_pack_seq(CDIT_F32, wire, buf.data(), v.data(), 1, 1, 1, 1, 8, 1);
    std::vector<float> back(8);
    cdit_ulysses_unpack_seq(CDIT_F32, wire, back.data(), buf.data(), 1, 1, 1, 1, 8, 1);
    for (int i = 0; i < 8; ++i) {
      CDIT_CHECK((buf[i] & 0x7F) != 0x7F, "%s element %d became NaN", wire_name(wire), i);
      CDIT_CHECK(std::isfinite(back[i]), "%s element %d decoded to %g", wire_name(wire), i, back[i]);
    }
  }
}

CDIT_CASE(error_contract) {
  float x[4] = {1, 2, 3, 4};
  double d1, d2;
  CDIT_CHECK(cdit_rel_l1_sums(7, x, x, 4, 1, &d1, &d2) == CDIT_ERR_DTYPE, "bad dtype");
  CDIT_CHECK(cdit_rel_l1_sums(CDIT_F32, nullptr, x, 4, 1, &d1, &d2) == CDIT_ERR_ARGUMENT, "null a");
  CDIT_CHECK(cdit_rel_l1_sums(CDIT_F32, x, x, -1, 1, &d1, &d2) == CDIT_ERR_ARGUMENT, "negative n");
  CDIT_CHECK(cdit_rel_l1_sums(CDIT_F32, nullptr, nullptr, 0, 1, &d1, &d2) == CDIT_OK && d1 == 0 && d2 == 0, "empty");
  const void* t[1] = {x};
  CDIT_CHECK(cdit_taylor_predict(CDIT_F32, x, t, 0, 1.0, 4, 1) == CDIT_ERR_ARGUMENT, "nterms 0");
  CDIT_CHECK(cdit_taylor_predict(CDIT_F32, x, t, 6, 1.0, 4, 1) == CDIT_ERR_ARGUMENT, "nterms 6");
  CDIT_CHECK(cdit_taylor_predict(CDIT_F32, x, t, 1, NAN, 4, 1) == CDIT_ERR_ARGUMENT, "k NaN");
  void* l[2] = {x, x + 2};
  CDIT_CHECK(cdit_taylor_update(CDIT_F32, l, 1, 2, x, 0.0, 2, 1) == CDIT_ERR_ARGUMENT, "gap 0");
  CDIT_CHECK(cdit_taylor_update(CDIT_F32, l, 3, 2, x, 1.0, 2, 1) == CDIT_ERR_ARGUMENT, "nvalid > nlevels");
  CDIT_CHECK(cdit_ulysses_pack_heads(CDIT_F32, 9, x, x, 1, 1, 1, 4, 1, 1) == CDIT_ERR_DTYPE, "bad wire");
  CDIT_CHECK(cdit_ulysses_pack_heads(CDIT_F32, 0, x, x, 1, 1, 1, 4, 0, 1) == CDIT_ERR_ARGUMENT, "P 0");
  CDIT_CHECK(cdit_ulysses_pack_seq(CDIT_F32, 0, x, x, 1, 1, 3, 2, 1, 1) == CDIT_ERR_ARGUMENT, "Hk > Hl");
  CDIT_CHECK(cdit_wire_row_bytes(CDIT_BF16, CDIT_WIRE_RAW, 64) == 128, "raw bf16 row");
  CDIT_CHECK(cdit_wire_row_bytes(CDIT_BF16, CDIT_WIRE_FP8_F32_SCALE, 64) == 68, "fp8 f32 row");
  CDIT_CHECK(cdit_wire_row_bytes(CDIT_BF16, CDIT_WIRE_FP8_BF16_SCALE, 64) == 66, "fp8 bf16 row");
  CDIT_CHECK(std::string(cdit_status_string(CDIT_ERR_DTYPE)).find("dtype") != std::string::npos, "status text");
}

// cdit_last_error: the failing function, the argument and its value; per thread; kept by later successes.
CDIT_CASE(last_error_names_the_function_and_argument) {
  float x[4] = {1, 2, 3, 4};
  double d1, d2;
  const void* t[1] = {x};
  CDIT_CHECK(cdit_taylor_predict(CDIT_F32, x, t, 6, 1.0, 4, 1) == CDIT_ERR_ARGUMENT, "nterms 6");
  const std::string e = cdit_last_error();
  CDIT_CHECK(e.find("cdit_taylor_predict") == 0 && e.find("nterms must be 1..5, got 6") != std::string::npos, e.c_str());
  CDIT_CHECK(cdit_rel_l1_sums(CDIT_F32, x, x, 4, 1, &d1, &d2) == CDIT_OK, "a success");
  CDIT_CHECK(std::string(cdit_last_error()) == e, "a success leaves the last error");
  CDIT_CHECK(cdit_rel_l1_sums(7, x, x, 4, 1, &d1, &d2) == CDIT_ERR_DTYPE, "bad dtype");
  CDIT_CHECK(std::string(cdit_last_error()).find("cdit_rel_l1_sums: dtype 7") == 0, cdit_last_error());
  CDIT_CHECK(cdit_ulysses_pack_heads(CDIT_F32, 0, x, x, 1, 1, 1, 4, 0, 1) == CDIT_ERR_ARGUMENT, "P 0");
  CDIT_CHECK(std::string(cdit_last_error()).find("P=0") != std::string::npos, cdit_last_error());
  std::string other = "unset";
  std::thread th([&] { other = cdit_last_error(); });
  th.join();
  CDIT_CHECK(other.empty(), "another thread has its own, empty, last error");
}

CDIT_CASE(conversions_round_trip_every_half_and_bfloat) {
  // The vectorisable bit tricks in numeric.hpp against the compiler's conversions: run through the
  // Taylor kernel with one term and k = 0 (out = term), which loads and stores every value.
  int bad = 0;
  for (int dt : {CDIT_BF16, CDIT_F16}) {
    std::vector<uint16_t> all(65536), out(65536);
    for (int i = 0; i < 65536; ++i) all[i] = (uint16_t)i;
    const void* t[1] = {all.data()};
    cdit_taylor_predict(dt, out.data(), t, 1, 0.0, 65536, 1);
    for (int i = 0; i < 65536; ++i) {
      const float v = dt == CDIT_BF16 ? bf16f(all[i]) : f16f(all[i]);
      if (std::isnan(v)) { if (!std::isnan(dt == CDIT_BF16 ? bf16f(out[i]) : f16f(out[i]))) ++bad; }
      else if (out[i] != all[i]) ++bad;
    }
  }
  CDIT_CHECK(bad == 0, "%d codes changed", bad);
  // rounding of arbitrary floats by the store path (numeric.hpp) against the references
  std::mt19937 rng(3);
  int bad_round = 0;
  for (int i = 0; i < 1000000; ++i) {
    const float f = from_bits(rng());
    if (std::isnan(f)) continue;
    if (cachedit::f32_to_bf16(f) != ref_bf16(f)) ++bad_round;
    if (cachedit::f32_to_f16(f) != ref_f16(f)) ++bad_round;
  }
  for (float f : {65504.f, 65520.f, 1e6f, -1e6f, 6e-8f, 2.98e-8f, 3e-8f}) {
    if (cachedit::f32_to_f16(f) != ref_f16(f)) ++bad_round;
  }
  CDIT_CHECK(bad_round == 0, "%d roundings differ", bad_round);
}

CDIT_CASE(isa_reported) {
  const std::string isa = cdit_cpu_isa();
  CDIT_CHECK(isa == "avx512f" || isa == "avx2" || isa == "default", "isa %s", isa.c_str());
  std::printf("     cpu isa: %s\n", isa.c_str());
}

int main(int argc, char** argv) { return cdit_test::run_all(argc, argv); }
