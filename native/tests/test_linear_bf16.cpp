// bf16-compute linear: against an fp64 GEMM of the bf16-rounded operands (the only rounding left is
// fp32 accumulation), the portable path against the AVX-512 BF16 one, rows independent of the batch
// and the thread count, odd K and ragged N, argument errors.
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "cachedit_kernels.h"
#include "numeric.hpp"
#include "test_util.hpp"

namespace {

using cdit_test::randn;

std::vector<uint16_t> pack_bf16(const std::vector<float>& w, int64_t N, int64_t K) {
  const int64_t n = cdit_linear_bf16_packed_elements(N, K);
  CDIT_CHECK(n >= N * K, "packed elements %lld", static_cast<long long>(n));
  std::vector<uint16_t> p(static_cast<size_t>(n), 0x7777);
  CDIT_CHECK(cdit_linear_bf16_pack(w.data(), N, K, p.data(), 2) == CDIT_OK, "pack: %s", cdit_last_error());
  return p;
}

std::vector<float> run_bf16(const std::vector<float>& x, int64_t M, int64_t K, const std::vector<uint16_t>& p,
                            int64_t N, const float* bias, int threads) {
  std::vector<float> y(static_cast<size_t>(M * N), -7.f);
  CDIT_CHECK(cdit_linear_bf16(x.data(), M, K, p.data(), N, bias, y.data(), threads) == CDIT_OK, "linear_bf16: %s",
             cdit_last_error());
  return y;
}

void set_isa(const char* isa) { cdit_test::set_env_isa("CACHEDIT_LINEAR_ISA", isa); }

float bf(float v) { return cachedit::bf16_to_f32(cachedit::f32_to_bf16(v)); }

}  // namespace

CDIT_CASE(linear_bf16_accuracy_against_fp64_of_rounded_operands) {
  const int64_t M = 53, K = 301, N = 37;  // odd K: the last pair is padded; ragged last panel
  auto x = randn(M * K, 11), w = randn(N * K, 12), b = randn(N, 13);
  const char* isas[] = {nullptr, "avx2", "default"};  // "avx2": the AVX2 epilogue on AVX-512 CPUs
  for (const char* isa : isas) {
    set_isa(isa);
    auto y = run_bf16(x, M, K, pack_bf16(w, N, K), N, b.data(), 2);
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double want = b[n], mag = std::fabs(b[n]);
        for (int64_t k = 0; k < K; ++k) {
          const double prod = double(bf(x[m * K + k])) * bf(w[n * K + k]);
          want += prod;
          mag += std::fabs(prod);
        }
        CDIT_CHECK(std::fabs(y[m * N + n] - want) <= 2e-6 * mag + 1e-6, "isa %s: y[%lld][%lld] %g vs %g",
                   isa ? isa : "auto", static_cast<long long>(m), static_cast<long long>(n), y[m * N + n], want);
      }
  }
  set_isa(nullptr);
}

CDIT_CASE(linear_bf16_rows_identical_in_any_batch_and_thread_count) {
  const int64_t M = 203, K = 128, N = 80;
  auto x = randn(M * K, 21), w = randn(N * K, 22);
  auto p = pack_bf16(w, N, K);
  auto full = run_bf16(x, M, K, p, N, nullptr, 1);
  for (int threads : {2, 3}) {
    CDIT_CHECK(run_bf16(x, M, K, p, N, nullptr, threads) == full, "%d threads differ from 1", threads);
  }
  for (int64_t m : {int64_t{0}, int64_t{11}, int64_t{12}, int64_t{97}, M - 1}) {
    std::vector<float> row(x.begin() + m * K, x.begin() + (m + 1) * K);
    auto alone = run_bf16(row, 1, K, p, N, nullptr, 2);
    CDIT_CHECK(std::memcmp(alone.data(), full.data() + m * N, N * sizeof(float)) == 0, "row %lld alone differs",
               static_cast<long long>(m));
  }
}

// Without denormals the portable loop and vdpbf16ps do the same additions in the same order.
CDIT_CASE(linear_bf16_portable_path_matches_the_vector_path) {
  const int64_t M = 40, K = 96, N = 48;
  auto x = randn(M * K, 31), w = randn(N * K, 32), b = randn(N, 33);
  auto p = pack_bf16(w, N, K);
  set_isa("default");
  auto portable = run_bf16(x, M, K, p, N, b.data(), 2);
  set_isa(nullptr);
  auto native = run_bf16(x, M, K, p, N, b.data(), 2);
  CDIT_CHECK(native == portable, "isa %s differs from the portable path", cdit_linear_bf16_isa());
}

CDIT_CASE(linear_bf16_arguments) {
  auto w = randn(4 * 8, 7);
  auto p = pack_bf16(w, 4, 8);
  std::vector<float> y(8);
  CDIT_CHECK(cdit_linear_bf16_packed_elements(0, 8) == -1, "N 0");
  CDIT_CHECK(cdit_linear_bf16(nullptr, 2, 8, p.data(), 4, nullptr, y.data(), 1) == CDIT_ERR_ARGUMENT, "null x");
  CDIT_CHECK(std::string(cdit_last_error()).find("cdit_linear_bf16: x, packed and y") == 0, cdit_last_error());
  CDIT_CHECK(cdit_linear_bf16(w.data(), -1, 8, p.data(), 4, nullptr, y.data(), 1) == CDIT_ERR_ARGUMENT, "M < 0");
  CDIT_CHECK(cdit_linear_bf16(w.data(), 0, 8, p.data(), 4, nullptr, nullptr, 1) == CDIT_OK, "M 0 is empty");
  CDIT_CHECK(cdit_linear_bf16_pack(nullptr, 4, 8, p.data(), 1) == CDIT_ERR_ARGUMENT, "null w");
  CDIT_CHECK(std::strlen(cdit_linear_bf16_isa()) > 0, "isa name");
}
