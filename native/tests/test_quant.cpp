// Low-bit linear layers: accuracy against an fp64 GEMM of the unquantised operands (bounds per type),
// exactness against the dequantised operands, bit-identity across instruction sets and thread
// counts, ragged shapes, layouts and argument errors.
#include <algorithm>
#include <cstdlib>

#include "cachedit_kernels.h"
#include "test_util.hpp"

namespace {

using cdit_test::nmse;
using cdit_test::randn;

struct QType {
  const char* name;
  int qact;
  int qweight;
  int per_tensor_w;
  int64_t group;
  double max_nmse;  // against the fp32 layer, Gaussian inputs
};

// int8: one step of absmax/127 on both operands; fp8: e4m3's 3-bit mantissa on both; int4: 16 levels.
const QType kTypes[] = {
    {"float8_per_row", CDIT_QA_FP8_ROW, CDIT_QW_FP8, 0, 0, 2e-3},
    {"float8_per_tensor", CDIT_QA_FP8_TENSOR, CDIT_QW_FP8, 1, 0, 2e-3},
    {"float8_weight_only", CDIT_QA_NONE, CDIT_QW_FP8, 0, 0, 1e-3},
    {"int8_per_row", CDIT_QA_INT8_ROW, CDIT_QW_INT8, 0, 0, 1.5e-4},
    {"int8_per_tensor", CDIT_QA_INT8_TENSOR, CDIT_QW_INT8, 1, 0, 3e-4},
    {"int8_weight_only", CDIT_QA_NONE, CDIT_QW_INT8, 0, 0, 8e-5},
    {"int4_weight_only_g32", CDIT_QA_NONE, CDIT_QW_INT4, 0, 32, 1e-2},
    {"int4_weight_only_g128", CDIT_QA_NONE, CDIT_QW_INT4, 0, 128, 1.5e-2},
};

struct Layer {
  std::vector<uint8_t> q, packed;
  std::vector<float> scales;
};

Layer make_layer(const QType& t, const std::vector<float>& w, int64_t N, int64_t K) {
  Layer l;
  const int64_t qbytes = t.qweight == CDIT_QW_INT4 ? N * K / 2 : N * K;
  l.q.assign(static_cast<size_t>(qbytes), 0);
  l.scales.assign(static_cast<size_t>(t.qweight == CDIT_QW_INT4 ? N * (K / t.group) : t.per_tensor_w ? 1 : N), 0.f);
  int st = cdit_qweight_quantize(CDIT_F32, t.qweight, w.data(), N, K, t.group, t.per_tensor_w, l.q.data(),
                                 l.scales.data(), 2);
  CDIT_CHECK(st == CDIT_OK, "%s quantize: %s", t.name, cdit_status_string(st));
  const int64_t pb = cdit_qweight_packed_bytes(t.qweight, N, K);
  CDIT_CHECK(pb > 0, "%s packed bytes", t.name);
  l.packed.assign(static_cast<size_t>(pb), 0xAB);
  st = cdit_qweight_pack(t.qweight, l.q.data(), N, K, l.packed.data(), 2);
  CDIT_CHECK(st == CDIT_OK, "%s pack", t.name);
  return l;
}

std::vector<float> run(const QType& t, const Layer& l, const std::vector<float>& x, int64_t M, int64_t K, int64_t N,
                       const float* bias, int threads) {
  std::vector<float> y(static_cast<size_t>(M * N), -7.f);
  const int st = cdit_qlinear(CDIT_F32, t.qact, t.qweight, x.data(), M, K, l.packed.data(), l.scales.data(), N,
                              t.group, t.per_tensor_w, bias, y.data(), threads);
  CDIT_CHECK(st == CDIT_OK, "%s qlinear M=%lld K=%lld N=%lld: %s", t.name, (long long)M, (long long)K, (long long)N,
             cdit_status_string(st));
  return y;
}

std::vector<double> gemm(const std::vector<double>& x, const std::vector<double>& w, const float* bias, int64_t M,
                         int64_t K, int64_t N) {
  std::vector<double> y(static_cast<size_t>(M * N));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double s = bias ? bias[n] : 0.0;
      for (int64_t k = 0; k < K; ++k) s += x[m * K + k] * w[n * K + k];
      y[m * N + n] = s;
    }
  return y;
}

// The weights the kernel multiplies by, from the canonical layout.
std::vector<double> dequant_weight(const QType& t, const Layer& l, int64_t N, int64_t K) {
  std::vector<double> w(static_cast<size_t>(N * K));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) {
      double v;
      if (t.qweight == CDIT_QW_INT4) {
        const uint8_t b = l.q[n * K / 2 + k / 2];
        v = ((k % 2 ? b >> 4 : b & 15) - 8) * double(l.scales[n * (K / t.group) + k / t.group]);
      } else {
        const double s = t.per_tensor_w ? l.scales[0] : l.scales[n];
        v = t.qweight == CDIT_QW_INT8 ? double(int8_t(l.q[n * K + k])) * s : cdit_fp8_e4m3_to_float(l.q[n * K + k]) * s;
      }
      w[n * K + k] = v;
    }
  return w;
}

std::vector<double> widen(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

void set_isa(const char* isa) { cdit_test::set_env_isa("CACHEDIT_QLINEAR_ISA", isa); }

}  // namespace

CDIT_CASE(qlinear_accuracy_against_fp32) {
  const int64_t M = 67, K = 256, N = 48;
  const auto x = randn(M * K, 11), w = randn(N * K, 12, 0.05f), b = randn(N, 13);
  const auto want = gemm(widen(x), widen(w), b.data(), M, K, N);
  for (const QType& t : kTypes) {
    const Layer l = make_layer(t, w, N, K);
    const double e = nmse(want, widen(run(t, l, x, M, K, N, b.data(), 2)));
    std::printf("  %-22s nmse %.2e (bound %.1e)\n", t.name, e, t.max_nmse);
    CDIT_CHECK(e < t.max_nmse, "%s nmse %.3e >= %.1e", t.name, e, t.max_nmse);
  }
}

CDIT_CASE(qlinear_weight_only_matches_dequantised_weights) {
  // Weight-only types lose only the activations' fixed-point step (2^-15 of the row max).
  const int64_t M = 9, K = 384, N = 20;
  const auto x = randn(M * K, 21), w = randn(N * K, 22, 0.05f);
  for (const QType& t : kTypes) {
    if (t.qact != CDIT_QA_NONE) continue;
    const Layer l = make_layer(t, w, N, K);
    const auto want = gemm(widen(x), dequant_weight(t, l, N, K), nullptr, M, K, N);
    const double e = nmse(want, widen(run(t, l, x, M, K, N, nullptr, 1)));
    const double bound = t.qweight == CDIT_QW_FP8 ? 1e-7 : 1e-8;
    CDIT_CHECK(e < bound, "%s nmse %.3e against its own dequantised weights", t.name, e);
  }
}

CDIT_CASE(qlinear_bit_identical_across_isa_and_threads) {
  const int64_t shapes[][3] = {{1, 2, 1}, {7, 30, 17}, {97, 130, 33}, {13, 1030, 40}, {200, 2048, 70}};
  for (const QType& t : kTypes) {
    for (const auto& s : shapes) {
      int64_t M = s[0], K = s[1], N = s[2];
      if (t.qweight == CDIT_QW_INT4) K = std::max<int64_t>(t.group, K / t.group * t.group);
      const auto x = randn(M * K, 31 + K), w = randn(N * K, 32 + N, 0.1f), b = randn(N, 33);
      const Layer l = make_layer(t, w, N, K);
      set_isa(nullptr);
      const auto fast1 = run(t, l, x, M, K, N, b.data(), 1);
      const auto fast2 = run(t, l, x, M, K, N, b.data(), 2);
      set_isa("default");
      const auto slow = run(t, l, x, M, K, N, b.data(), 3);
      set_isa(nullptr);
      CDIT_CHECK(std::memcmp(fast1.data(), fast2.data(), fast1.size() * 4) == 0, "%s %lldx%lldx%lld threads differ",
                 t.name, (long long)M, (long long)K, (long long)N);
      CDIT_CHECK(std::memcmp(fast1.data(), slow.data(), fast1.size() * 4) == 0, "%s %lldx%lldx%lld %s != default",
                 t.name, (long long)M, (long long)K, (long long)N, cdit_qlinear_isa());
      const auto want = gemm(widen(x), widen(w), b.data(), M, K, N);
      double e = nmse(want, widen(fast1));
      if (M * N < 100) continue;  // too few outputs for a statistical bound
      CDIT_CHECK(e < t.max_nmse * 3, "%s %lldx%lldx%lld nmse %.3e", t.name, (long long)M, (long long)K, (long long)N, e);
    }
  }
}

CDIT_CASE(qlinear_bf16_and_zero_rows) {
  const int64_t M = 5, K = 64, N = 24;
  auto x = randn(M * K, 41);
  for (int64_t k = 0; k < K; ++k) x[2 * K + k] = 0.f;  // an all-zero row stays zero (plus bias)
  const auto w = randn(N * K, 42, 0.1f), b = randn(N, 43);
  std::vector<uint16_t> xb(x.size()), bb(b.size()), yb(M * N);
  auto to_bf16 = [](float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return uint16_t((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
  };
  for (size_t i = 0; i < x.size(); ++i) xb[i] = to_bf16(x[i]);
  for (size_t i = 0; i < b.size(); ++i) bb[i] = to_bf16(b[i]);
  const QType& t = kTypes[3];
  const Layer l = make_layer(t, w, N, K);
  const int st = cdit_qlinear(CDIT_BF16, t.qact, t.qweight, xb.data(), M, K, l.packed.data(), l.scales.data(), N, 0, 0,
                              bb.data(), yb.data(), 1);
  CDIT_CHECK(st == CDIT_OK, "bf16: %s", cdit_status_string(st));
  const auto f32 = run(t, l, x, M, K, N, b.data(), 1);
  double worst = 0;
  for (int64_t i = 0; i < M * N; ++i) {
    uint32_t u = uint32_t(yb[i]) << 16;
    float v;
    std::memcpy(&v, &u, 4);
    worst = std::max(worst, double(std::fabs(v - f32[i])) / (1.0 + std::fabs(f32[i])));
  }
  CDIT_CHECK(worst < 2e-2, "bf16 against fp32 inputs: %.3e", worst);
  for (int64_t n = 0; n < N; ++n) CDIT_CHECK(f32[2 * N + n] == b[n], "zero row col %lld", (long long)n);
}

CDIT_CASE(qweight_layouts_and_scales) {
  const int64_t N = 19, K = 128;
  auto w = randn(N * K, 51);
  for (int64_t k = 0; k < K; ++k) w[3 * K + k] = 0.f;
  for (const QType& t : kTypes) {
    Layer l = make_layer(t, w, N, K);
    std::vector<uint8_t> back(l.q.size(), 0x55);
    CDIT_CHECK(cdit_qweight_unpack(t.qweight, l.packed.data(), N, K, back.data(), 1) == CDIT_OK, "%s unpack", t.name);
    CDIT_CHECK(back == l.q, "%s pack/unpack round trip", t.name);
    if (t.qweight != CDIT_QW_INT4 && !t.per_tensor_w) CDIT_CHECK(l.scales[3] == 1.f, "%s zero row scale", t.name);
  }
  // int8 symmetric: the row's largest magnitude maps to +-127 exactly
  const QType& i8 = kTypes[3];
  Layer l = make_layer(i8, w, N, K);
  int big = 0;
  for (int64_t k = 0; k < K; ++k) big = std::max(big, std::abs(int(int8_t(l.q[k]))));
  CDIT_CHECK(big == 127, "int8 row max %d", big);
  // int4: the group's largest-magnitude value maps to -8
  const QType& i4 = kTypes[6];
  Layer l4 = make_layer(i4, w, N, K);
  int lowest = 15;
  for (int64_t k = 0; k < 16; ++k) lowest = std::min({lowest, l4.q[k] & 15, l4.q[k] >> 4});
  CDIT_CHECK(lowest == 0, "int4 group min nibble %d", lowest);
}

CDIT_CASE(qlinear_rejects_bad_arguments) {
  const int64_t N = 4, K = 48;
  const auto w = randn(N * K, 61);
  std::vector<uint8_t> q(N * K);
  std::vector<float> s(N * K);
  CDIT_CHECK(cdit_qweight_quantize(CDIT_F32, 9, w.data(), N, K, 0, 0, q.data(), s.data(), 1) == CDIT_ERR_DTYPE, "type");
  CDIT_CHECK(cdit_qweight_quantize(CDIT_F32, CDIT_QW_INT4, w.data(), N, K, 32, 0, q.data(), s.data(), 1) ==
                 CDIT_ERR_ARGUMENT, "group 32 does not divide 48");
  CDIT_CHECK(cdit_qweight_quantize(CDIT_F32, CDIT_QW_INT4, w.data(), N, K, 3, 0, q.data(), s.data(), 1) ==
                 CDIT_ERR_ARGUMENT, "odd group");
  CDIT_CHECK(cdit_qweight_quantize(CDIT_F32, CDIT_QW_INT4, w.data(), N, K, 16, 1, q.data(), s.data(), 1) ==
                 CDIT_ERR_ARGUMENT, "int4 per tensor");
  auto bad = w;
  bad[7] = NAN;
  CDIT_CHECK(cdit_qweight_quantize(CDIT_F32, CDIT_QW_INT8, bad.data(), N, K, 0, 0, q.data(), s.data(), 1) ==
                 CDIT_ERR_ARGUMENT, "NaN weight");
  CDIT_CHECK(cdit_qweight_packed_bytes(CDIT_QW_INT4, N, 7) == -1, "odd K int4");
  std::vector<float> x(K), y(N);
  CDIT_CHECK(cdit_qlinear(CDIT_F32, 7, CDIT_QW_INT8, x.data(), 1, K, q.data(), s.data(), N, 0, 0, nullptr, y.data(),
                          1) == CDIT_ERR_DTYPE, "activation type");
  CDIT_CHECK(cdit_qlinear(CDIT_F32, CDIT_QA_NONE, CDIT_QW_INT8, nullptr, 1, K, q.data(), s.data(), N, 0, 0, nullptr,
                          y.data(), 1) == CDIT_ERR_ARGUMENT, "null x");
  CDIT_CHECK(cdit_qlinear(CDIT_F32, CDIT_QA_NONE, CDIT_QW_INT8, x.data(), 0, K, q.data(), s.data(), N, 0, 0, nullptr,
                          y.data(), 1) == CDIT_OK, "M = 0");
}
