// Fused epilogues and attention inputs: gelu(tanh) against an fp64 reference; linear layers with the
// activation fused give exactly the unfused result followed by cdit_gelu_tanh, on every path; the
// attention-input kernel against an fp64 composite of head split, RMSNorm and rotary embedding, and
// as a pure layout change without norm and rotation; argument errors.
#include <cmath>
#include <cstring>
#include <limits>

// The fp64 references below are plain loops; aarch64 GCC 12 crashes vectorising some of their
// reductions (internal compiler error in vect_transform_reduction), and they need no speed.
#pragma GCC optimize("no-tree-vectorize")

#include "cachedit_kernels.h"
#include "test_util.hpp"

namespace {

using cdit_test::randn;

// 0.5 v (1 + tanh(u)) = v / (1 + exp(-2u)); the second form keeps its precision where tanh(u) is near -1
double gelu_ref(double v) { return v / (1.0 + std::exp(-2.0 * 0.7978845608028654 * (v + 0.044715 * v * v * v))); }

std::vector<float> gelu(const std::vector<float>& x, int threads) {
  std::vector<float> y(x.size(), -7.f);
  CDIT_CHECK(cdit_gelu_tanh(x.data(), static_cast<int64_t>(x.size()), y.data(), threads) == CDIT_OK, "gelu: %s",
             cdit_last_error());
  return y;
}

}  // namespace

CDIT_CASE(gelu_tanh_against_fp64) {
  std::vector<float> x;
  for (int i = -24000; i <= 24000; ++i) x.push_back(static_cast<float>(i) * 5e-4f);  // [-12, 12]
  for (float v : {1e-30f, -1e-30f, 1e-8f, -1e-8f, 30.f, -30.f, 1e20f, -1e20f}) x.push_back(v);
  auto y = gelu(x, 2);
  for (size_t i = 0; i < x.size(); ++i) {
    const double want = gelu_ref(x[i]);
    // relative to the result, plus 1e-9 |x| absolute: where gelu(x) is tiny (x << 0) the fp32 rounding of
    // the tanh argument (~28 for x = -8.6) dominates its relative error, as in any fp32 gelu
    CDIT_CHECK(std::fabs(y[i] - want) <= 1e-6 * std::fabs(want) + 1e-9 * std::fabs(x[i]), "gelu(%.9g) = %.9g, want %.9g", x[i], y[i],
               want);
  }
  const float inf = std::numeric_limits<float>::infinity();
  auto special = gelu({0.f, -0.f, inf, -inf, std::nanf("")}, 1);
  CDIT_CHECK(special[0] == 0.f && special[1] == 0.f, "gelu(+-0) = %g, %g", special[0], special[1]);
  CDIT_CHECK(special[2] == inf, "gelu(inf) = %g", special[2]);
  CDIT_CHECK(special[3] == 0.f || std::isnan(special[3]) == false, "gelu(-inf) = %g", special[3]);
  CDIT_CHECK(std::isnan(special[4]), "gelu(nan) = %g", special[4]);
}

CDIT_CASE(gelu_tanh_same_bits_in_vector_body_scalar_tail_and_any_thread_count) {
  auto x = randn(100003, 7);
  for (auto& v : x) v *= 4.f;
  auto all = gelu(x, 2);
  CDIT_CHECK(gelu(x, 1) == all, "1 thread differs from 2");
  for (size_t i = 0; i < 2000; ++i) {  // one element at a time runs the loop's scalar tail
    float y = 0;
    CDIT_CHECK(cdit_gelu_tanh(&x[i], 1, &y, 1) == CDIT_OK, "single");
    CDIT_CHECK(std::memcmp(&y, &all[i], 4) == 0, "element %zu: %.9g alone, %.9g in the vector loop", i, y, all[i]);
  }
  std::vector<float> inplace = x;
  CDIT_CHECK(cdit_gelu_tanh(inplace.data(), static_cast<int64_t>(x.size()), inplace.data(), 2) == CDIT_OK, "inplace");
  CDIT_CHECK(inplace == all, "in place differs");
}

CDIT_CASE(linear_epilogues_equal_the_composites_on_every_path) {
  const int64_t M = 77, K = 130, N = 45;  // ragged rows and panels
  auto x = randn(M * K, 11), w = randn(N * K, 12), b = randn(N, 13);
  std::vector<float> pf(static_cast<size_t>(cdit_linear_f32_packed_floats(N, K)));
  std::vector<uint16_t> pb(static_cast<size_t>(cdit_linear_bf16_packed_elements(N, K)));
  CDIT_CHECK(cdit_linear_f32_pack(w.data(), N, K, pf.data(), 1) == CDIT_OK, "pack f32");
  CDIT_CHECK(cdit_linear_bf16_pack(w.data(), N, K, pb.data(), 1) == CDIT_OK, "pack bf16");
  for (const char* isa : {static_cast<const char*>(nullptr), "avx2", "default"}) {
    cdit_test::set_env_isa("CACHEDIT_LINEAR_ISA", isa);
    for (const float* bias : {static_cast<const float*>(b.data()), static_cast<const float*>(nullptr)}) {
      std::vector<float> plain(M * N), fused(M * N);
      CDIT_CHECK(cdit_linear_f32(x.data(), M, K, pf.data(), N, bias, plain.data(), 2) == CDIT_OK, "f32");
      CDIT_CHECK(cdit_linear_f32_act(x.data(), M, K, pf.data(), N, bias, CDIT_ACT_GELU_TANH, fused.data(), 2) == CDIT_OK,
                 "f32 act");
      CDIT_CHECK(fused == gelu(plain, 1), "f32 fused gelu differs (isa %s)", isa ? isa : "auto");
      CDIT_CHECK(cdit_linear_f32_act(x.data(), M, K, pf.data(), N, bias, CDIT_ACT_NONE, fused.data(), 2) == CDIT_OK,
                 "f32 none");
      CDIT_CHECK(fused == plain, "f32 with CDIT_ACT_NONE differs");
      CDIT_CHECK(cdit_linear_bf16(x.data(), M, K, pb.data(), N, bias, plain.data(), 2) == CDIT_OK, "bf16");
      CDIT_CHECK(cdit_linear_bf16_act(x.data(), M, K, pb.data(), N, bias, CDIT_ACT_GELU_TANH, fused.data(), 1) ==
                     CDIT_OK, "bf16 act");
      CDIT_CHECK(fused == gelu(plain, 1), "bf16 fused gelu differs (isa %s)", isa ? isa : "auto");
    }
  }
  // gated residual: residual + gate[row / 11] * (x W^T + b), 11 rows per gate row (7 gate rows, stride 3N)
  auto res = randn(M * N, 14), gates = randn(7 * 3 * N, 15);
  for (const char* isa : {static_cast<const char*>(nullptr), "avx2", "default"}) {
    cdit_test::set_env_isa("CACHEDIT_LINEAR_ISA", isa);
    std::vector<float> plain(M * N), fused(M * N), want(M * N);
    CDIT_CHECK(cdit_linear_f32(x.data(), M, K, pf.data(), N, b.data(), plain.data(), 2) == CDIT_OK, "f32");
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n)
        want[m * N + n] = std::fma(gates[(m / 11) * 3 * N + n], plain[m * N + n], res[m * N + n]);
    CDIT_CHECK(cdit_linear_f32_gated(x.data(), M, K, pf.data(), N, b.data(), res.data(), gates.data(), 11, 3 * N,
                                     fused.data(), 2) == CDIT_OK, "%s", cdit_last_error());
    CDIT_CHECK(fused == want, "f32 gated differs from the composite (isa %s)", isa ? isa : "auto");
    std::vector<float> inplace = res;
    CDIT_CHECK(cdit_linear_f32_gated(x.data(), M, K, pf.data(), N, b.data(), inplace.data(), gates.data(), 11, 3 * N,
                                     inplace.data(), 1) == CDIT_OK, "%s", cdit_last_error());
    CDIT_CHECK(inplace == want, "f32 gated in place differs");
    CDIT_CHECK(cdit_linear_bf16(x.data(), M, K, pb.data(), N, nullptr, plain.data(), 2) == CDIT_OK, "bf16");
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n)
        want[m * N + n] = std::fma(gates[(m / 11) * 3 * N + n], plain[m * N + n], res[m * N + n]);
    CDIT_CHECK(cdit_linear_bf16_gated(x.data(), M, K, pb.data(), N, nullptr, res.data(), gates.data(), 11, 3 * N,
                                      fused.data(), 2) == CDIT_OK, "%s", cdit_last_error());
    CDIT_CHECK(fused == want, "bf16 gated differs from the composite (isa %s)", isa ? isa : "auto");
  }
  cdit_test::set_env_isa("CACHEDIT_LINEAR_ISA", nullptr);
  std::vector<float> y(M * N);
  CDIT_CHECK(cdit_linear_f32_gated(x.data(), M, K, pf.data(), N, b.data(), res.data(), gates.data(), 11, N - 1,
                                   y.data(), 1) == CDIT_ERR_ARGUMENT, "gate stride < N");
  CDIT_CHECK(std::strstr(cdit_last_error(), "gate_stride") != nullptr, "names gate_stride: %s", cdit_last_error());
  CDIT_CHECK(cdit_linear_f32_gated(x.data(), M, K, pf.data(), N, b.data(), nullptr, gates.data(), 11, N, y.data(), 1) ==
                 CDIT_ERR_ARGUMENT, "no residual");
  CDIT_CHECK(cdit_linear_f32_act(x.data(), M, K, pf.data(), N, nullptr, 7, y.data(), 1) == CDIT_ERR_ARGUMENT, "act 7");
  CDIT_CHECK(std::strstr(cdit_last_error(), "activation") != nullptr, "error names the activation: %s", cdit_last_error());
  CDIT_CHECK(cdit_gelu_tanh(nullptr, 4, y.data(), 1) == CDIT_ERR_ARGUMENT, "null x");
}

namespace {

// fp64 composite: [B, S, H*D] pieces -> [B, H, Sa+Sb, D], RMSNorm with w, rotary with cos/sin.
std::vector<double> heads_ref(const std::vector<float>& a, int64_t Sa, const std::vector<float>& b, int64_t Sb,
                              int64_t B, int64_t H, int64_t D, const float* wa, const float* wb, double eps,
                              const float* cos, const float* sin) {
  const int64_t S = Sa + Sb;
  std::vector<double> out(static_cast<size_t>(B * H * S * D));
  for (int64_t bi = 0; bi < B; ++bi)
    for (int64_t t = 0; t < S; ++t)
      for (int64_t h = 0; h < H; ++h) {
        const float* src = t < Sa ? &a[((bi * Sa + t) * H + h) * D] : &b[((bi * Sb + t - Sa) * H + h) * D];
        const float* w = t < Sa ? wa : wb;
        std::vector<double> v(src, src + D);
        if (w) {
          double ms = 0;
          for (double e : v) ms += e * e;
          const double r = 1.0 / std::sqrt(ms / D + eps);
          for (int64_t i = 0; i < D; ++i) v[i] = v[i] * r * w[i];
        }
        double* dst = &out[((bi * H + h) * S + t) * D];
        for (int64_t i = 0; i < D; i += 2) {
          if (cos) {
            dst[i] = v[i] * cos[t * D + i] - v[i + 1] * sin[t * D + i];
            dst[i + 1] = v[i + 1] * cos[t * D + i + 1] + v[i] * sin[t * D + i + 1];
          } else {
            dst[i] = v[i];
            dst[i + 1] = v[i + 1];
          }
        }
      }
  return out;
}

// max |got - want| / (1 + |want|).
double worst_relative(const std::vector<float>& got,
                                                                     const std::vector<double>& want) {
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) worst = std::fmax(worst, std::fabs(got[i] - want[i]) / (1.0 + std::fabs(want[i])));
  return worst;
}

}  // namespace

CDIT_CASE(heads_norm_rope_against_fp64_composite) {
  const int64_t B = 3, Sa = 5, Sb = 19, H = 4, D = 32, S = Sa + Sb;
  auto a = randn(B * Sa * H * D, 21), b = randn(B * Sb * H * D, 22), wa = randn(D, 23), wb = randn(D, 24);
  std::vector<float> cos(S * D), sin(S * D);
  for (int64_t t = 0; t < S; ++t)
    for (int64_t i = 0; i < D; ++i) {
      const double angle = t * std::pow(10000.0, -static_cast<double>(i / 2 * 2) / D);
      cos[t * D + i] = static_cast<float>(std::cos(angle));
      sin[t * D + i] = static_cast<float>(std::sin(angle));
    }
  std::vector<float> out(B * H * S * D, -9.f);
  CDIT_CHECK(cdit_heads_norm_rope(a.data(), Sa, b.data(), Sb, B, H, D, wa.data(), wb.data(), 1e-6f, cos.data(),
                                  sin.data(), out.data(), 2) == CDIT_OK, "%s", cdit_last_error());
  auto want = heads_ref(a, Sa, b, Sb, B, H, D, wa.data(), wb.data(), 1e-6, cos.data(), sin.data());
  double worst = worst_relative(out, want);
  CDIT_CHECK(worst < 2e-6, "worst relative error %g", worst);
  // one sequence, no rotary: the norm alone; threads do not change bits
  std::vector<float> one(B * H * Sb * D), one1(B * H * Sb * D);
  CDIT_CHECK(cdit_heads_norm_rope(b.data(), Sb, nullptr, 0, B, H, D, wb.data(), nullptr, 1e-6f, nullptr, nullptr,
                                  one.data(), 2) == CDIT_OK, "%s", cdit_last_error());
  CDIT_CHECK(cdit_heads_norm_rope(b.data(), Sb, nullptr, 0, B, H, D, wb.data(), nullptr, 1e-6f, nullptr, nullptr,
                                  one1.data(), 1) == CDIT_OK, "%s", cdit_last_error());
  CDIT_CHECK(one == one1, "thread count changed the result");
  auto want1 = heads_ref(b, Sb, {}, 0, B, H, D, wb.data(), nullptr, 1e-6, nullptr, nullptr);
  worst = worst_relative(one, want1);
  CDIT_CHECK(worst < 2e-6, "norm only: worst relative error %g", worst);
}

CDIT_CASE(heads_norm_rope_without_norm_and_rotation_is_the_exact_layout) {
  const int64_t B = 2, Sa = 3, Sb = 7, H = 3, D = 6, S = Sa + Sb;
  auto a = randn(B * Sa * H * D, 31), b = randn(B * Sb * H * D, 32);
  std::vector<float> out(B * H * S * D);
  CDIT_CHECK(cdit_heads_norm_rope(a.data(), Sa, b.data(), Sb, B, H, D, nullptr, nullptr, 0.f, nullptr, nullptr,
                                  out.data(), 2) == CDIT_OK, "%s", cdit_last_error());
  for (int64_t bi = 0; bi < B; ++bi)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < S; ++t)
        for (int64_t i = 0; i < D; ++i) {
          const float src = t < Sa ? a[((bi * Sa + t) * H + h) * D + i] : b[((bi * Sb + t - Sa) * H + h) * D + i];
          CDIT_CHECK(out[((bi * H + h) * S + t) * D + i] == src, "b%lld h%lld t%lld i%lld", static_cast<long long>(bi),
                     static_cast<long long>(h), static_cast<long long>(t), static_cast<long long>(i));
        }
}

CDIT_CASE(heads_norm_rope_arguments) {
  std::vector<float> a(64), out(64), w(8);
  CDIT_CHECK(cdit_heads_norm_rope(a.data(), 2, nullptr, 0, 1, 0, 8, nullptr, nullptr, 0.f, nullptr, nullptr,
                                  out.data(), 1) == CDIT_ERR_ARGUMENT, "H = 0");
  CDIT_CHECK(std::strstr(cdit_last_error(), "H=0") != nullptr, "names H: %s", cdit_last_error());
  CDIT_CHECK(cdit_heads_norm_rope(a.data(), 2, a.data(), 2, 1, 1, 8, w.data(), nullptr, 1e-6f, nullptr, nullptr,
                                  out.data(), 1) == CDIT_ERR_ARGUMENT, "wa without wb");
  CDIT_CHECK(cdit_heads_norm_rope(a.data(), 2, nullptr, 0, 1, 1, 7, nullptr, nullptr, 0.f, w.data(), nullptr,
                                  out.data(), 1) == CDIT_ERR_ARGUMENT, "cos without sin");
  CDIT_CHECK(cdit_heads_norm_rope(a.data(), 2, nullptr, 0, 1, 1, 7, nullptr, nullptr, 0.f, w.data(), w.data(),
                                  out.data(), 1) == CDIT_ERR_ARGUMENT, "odd D with rotary");
  CDIT_CHECK(cdit_heads_norm_rope(nullptr, 2, nullptr, 0, 1, 1, 8, nullptr, nullptr, 0.f, nullptr, nullptr,
                                  out.data(), 1) == CDIT_ERR_ARGUMENT, "null a");
  CDIT_CHECK(cdit_heads_norm_rope(a.data(), 2, nullptr, 0, 1, 1, 8, w.data(), nullptr, -1.f, nullptr, nullptr,
                                  out.data(), 1) == CDIT_ERR_ARGUMENT, "negative eps");
  CDIT_CHECK(cdit_heads_norm_rope(nullptr, 0, nullptr, 0, 0, 1, 8, nullptr, nullptr, 0.f, nullptr, nullptr, nullptr,
                                  1) == CDIT_OK, "empty");
}

namespace {

// fp64 softmax(q k^T scale) v, [B][S][H*D] token-major.
std::vector<double> attention_ref(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                                  int64_t B, int64_t H, int64_t S, int64_t D, double scale) {
  std::vector<double> out(static_cast<size_t>(B * S * H * D));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t base = (b * H + h) * S * D;
      for (int64_t i = 0; i < S; ++i) {
        std::vector<double> s(S);
        double mx = -1e300, sum = 0;
        for (int64_t j = 0; j < S; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += double(q[base + i * D + d]) * k[base + j * D + d];
          s[j] = dot * scale;
          mx = std::fmax(mx, s[j]);
        }
        for (auto& e : s) sum += (e = std::exp(e - mx));
        for (int64_t d = 0; d < D; ++d) {
          double o = 0;
          for (int64_t j = 0; j < S; ++j) o += s[j] * v[base + j * D + d];
          out[((b * S + i) * H + h) * D + d] = o / sum;
        }
      }
    }
  return out;
}

}  // namespace

CDIT_CASE(attention_against_fp64_split_layout_and_threads) {
  const int64_t B = 3, H = 4, S = 53, D = 32, split = 4, HD = H * D;
  auto q = randn(B * H * S * D, 41), k = randn(B * H * S * D, 42), v = randn(B * H * S * D, 43);
  for (auto& e : q) e *= 2.f;  // peaked softmax rows too
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  std::vector<float> a(B * split * HD, -9.f), b(B * (S - split) * HD, -9.f);
  CDIT_CHECK(cdit_attention_f32(q.data(), k.data(), v.data(), B, H, S, D, scale, split, a.data(), b.data(), 2) ==
                 CDIT_OK, "%s", cdit_last_error());
  auto want = attention_ref(q, k, v, B, H, S, D, scale);
  double worst = 0;
  for (int64_t bi = 0; bi < B; ++bi)
    for (int64_t t = 0; t < S; ++t)
      for (int64_t c = 0; c < HD; ++c) {
        const float got = t < split ? a[(bi * split + t) * HD + c] : b[(bi * (S - split) + t - split) * HD + c];
        worst = std::fmax(worst, std::fabs(got - want[(bi * S + t) * HD + c]));
      }
  CDIT_CHECK(worst < 2e-6, "worst abs error %g", worst);
  // unsplit, one thread: the same bits
  std::vector<float> all(B * S * HD);
  CDIT_CHECK(cdit_attention_f32(q.data(), k.data(), v.data(), B, H, S, D, scale, S, all.data(), nullptr, 1) == CDIT_OK,
             "%s", cdit_last_error());
  for (int64_t bi = 0; bi < B; ++bi) {
    CDIT_CHECK(std::memcmp(&all[bi * S * HD], &a[bi * split * HD], split * HD * 4) == 0, "batch %lld text rows",
               static_cast<long long>(bi));
    CDIT_CHECK(std::memcmp(&all[(bi * S + split) * HD], &b[bi * (S - split) * HD], (S - split) * HD * 4) == 0,
               "batch %lld image rows", static_cast<long long>(bi));
  }
  // one token: softmax of one score is 1, the output is v
  std::vector<float> one(HD);
  CDIT_CHECK(cdit_attention_f32(q.data(), k.data(), v.data(), 1, H, 1, D, scale, 0, nullptr, one.data(), 1) == CDIT_OK,
             "S = 1");
  for (int64_t h = 0; h < H; ++h)
    CDIT_CHECK(std::memcmp(&one[h * D], &v[h * D], D * 4) == 0, "S = 1 gives v (head %lld)", static_cast<long long>(h));
}

CDIT_CASE(attention_vector_and_portable_paths_give_the_same_bits) {
  for (int64_t S : {1, 5, 16, 17, 53, 100}) {
    const int64_t B = 2, H = 3, D = 40;  // D: two 16-blocks and a tail
    auto q = randn(B * H * S * D, 51), k = randn(B * H * S * D, 52), v = randn(B * H * S * D, 53);
    for (auto& e : q) e *= 3.f;
    std::vector<float> vec(B * S * H * D), port(B * S * H * D);
    cdit_test::set_env_isa("CACHEDIT_ATTENTION_ISA", nullptr);
    CDIT_CHECK(cdit_attention_f32(q.data(), k.data(), v.data(), B, H, S, D, 0.15f, S, vec.data(), nullptr, 2) == CDIT_OK,
               "%s", cdit_last_error());
    cdit_test::set_env_isa("CACHEDIT_ATTENTION_ISA", "default");
    CDIT_CHECK(cdit_attention_f32(q.data(), k.data(), v.data(), B, H, S, D, 0.15f, S, port.data(), nullptr, 1) ==
                   CDIT_OK, "%s", cdit_last_error());
    CDIT_CHECK(vec == port, "S=%lld: the vector path and the portable loops differ", static_cast<long long>(S));
  }
  cdit_test::set_env_isa("CACHEDIT_ATTENTION_ISA", nullptr);
}

CDIT_CASE(attention_arguments) {
  std::vector<float> t(64);
  CDIT_CHECK(cdit_attention_f32(t.data(), t.data(), t.data(), 1, 1, 4, 8, 1.f, 5, t.data(), t.data(), 1) ==
                 CDIT_ERR_ARGUMENT, "split > S");
  CDIT_CHECK(std::strstr(cdit_last_error(), "split=5") != nullptr, "names split: %s", cdit_last_error());
  CDIT_CHECK(cdit_attention_f32(t.data(), t.data(), t.data(), 1, 1, 4, 8, 1.f, 2, t.data(), nullptr, 1) ==
                 CDIT_ERR_ARGUMENT, "out_b missing");
  CDIT_CHECK(cdit_attention_f32(t.data(), t.data(), t.data(), 1, 1, CDIT_ATTENTION_MAX_TOKENS + 1, 8, 1.f, 0, nullptr,
                                t.data(), 1) == CDIT_ERR_ARGUMENT, "too long");
  CDIT_CHECK(cdit_attention_f32(t.data(), t.data(), t.data(), 1, 1, 4, 8, NAN, 0, nullptr, t.data(), 1) ==
                 CDIT_ERR_ARGUMENT, "nan scale");
}

namespace {

// Worst relative error of y against an fp64 layer_norm(x) * (1 + scale[b]) + shift[b].
double layer_norm_modulate_worst(
    const std::vector<float>& x, const std::vector<float>& y, int64_t B, int64_t S, int64_t C, const float* scale,
    const float* shift, int64_t stride) {
  double worst = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s) {
      const float* r = &x[(b * S + s) * C];
      double mean = 0, var = 0;
      for (int64_t c = 0; c < C; ++c) mean += r[c];
      mean /= C;
      for (int64_t c = 0; c < C; ++c) var += (r[c] - mean) * (r[c] - mean);
      const double rstd = 1.0 / std::sqrt(var / C + 1e-6);
      for (int64_t c = 0; c < C; ++c) {
        const double want = (r[c] - mean) * rstd * (1.0 + scale[b * stride + c]) + shift[b * stride + c];
        worst = std::fmax(worst, std::fabs(y[(b * S + s) * C + c] - want) / (1.0 + std::fabs(want)));
      }
    }
  return worst;
}

}  // namespace

CDIT_CASE(layer_norm_modulate_against_fp64) {
  const int64_t B = 3, S = 17, C = 136, stride = 6 * C;  // scale/shift as chunks of a modulation row
  auto x = randn(B * S * C, 61), mod = randn(B * stride, 62);
  for (size_t i = 0; i < x.size(); ++i) x[i] = x[i] * 3.f + 1.5f;  // an offset mean
  const float* shift = mod.data();
  const float* scale = mod.data() + C;
  std::vector<float> y(B * S * C), y1(B * S * C);
  CDIT_CHECK(cdit_layer_norm_modulate(x.data(), B, S, C, scale, shift, stride, 1e-6f, y.data(), 2) == CDIT_OK, "%s",
             cdit_last_error());
  CDIT_CHECK(cdit_layer_norm_modulate(x.data(), B, S, C, scale, shift, stride, 1e-6f, y1.data(), 1) == CDIT_OK, "%s",
             cdit_last_error());
  CDIT_CHECK(y == y1, "thread count changed the result");
  const double worst = layer_norm_modulate_worst(x, y, B, S, C, scale, shift, stride);
  CDIT_CHECK(worst < 2e-6, "worst relative error %g", worst);
  CDIT_CHECK(cdit_layer_norm_modulate(x.data(), B, S, C, scale, shift, C - 1, 1e-6f, y.data(), 1) == CDIT_ERR_ARGUMENT,
             "stride < C");
  CDIT_CHECK(std::strstr(cdit_last_error(), "mod_stride") != nullptr, "names mod_stride: %s", cdit_last_error());
  CDIT_CHECK(cdit_layer_norm_modulate(nullptr, B, S, C, scale, shift, C, 1e-6f, y.data(), 1) == CDIT_ERR_ARGUMENT,
             "null x");
}
