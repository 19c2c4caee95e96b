// Batch-invariant fp32 linear: accuracy against an fp64 GEMM, bit-identity of every row whatever the
// batch around it, the thread count and the instruction set, ragged shapes and argument errors.
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "cachedit_kernels.h"
#include "test_util.hpp"

namespace {

using cdit_test::randn;

std::vector<float> pack(const std::vector<float>& w, int64_t N, int64_t K) {
  const int64_t n = cdit_linear_f32_packed_floats(N, K);
  CDIT_CHECK(n >= N * K, "packed floats %lld", static_cast<long long>(n));
  std::vector<float> p(static_cast<size_t>(n), 123.f);
  CDIT_CHECK(cdit_linear_f32_pack(w.data(), N, K, p.data(), 2) == CDIT_OK, "pack");
  return p;
}

std::vector<float> run(const std::vector<float>& x, int64_t M, int64_t K, const std::vector<float>& p, int64_t N,
                       const float* bias, int threads) {
  std::vector<float> y(static_cast<size_t>(M * N), -7.f);
  const int st = cdit_linear_f32(x.data(), M, K, p.data(), N, bias, y.data(), threads);
  CDIT_CHECK(st == CDIT_OK, "linear: %s", cdit_status_string(st));
  return y;
}

void set_isa(const char* isa) { cdit_test::set_env_isa("CACHEDIT_LINEAR_ISA", isa); }

}  // namespace

CDIT_CASE(linear_f32_accuracy_against_fp64) {
  const int64_t M = 53, K = 300, N = 37;
  auto x = randn(M * K, 1), w = randn(N * K, 2), b = randn(N, 3);
  auto y = run(x, M, K, pack(w, N, K), N, b.data(), 2);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double want = b[n], mag = std::fabs(b[n]);
      for (int64_t k = 0; k < K; ++k) {
        want += double(x[m * K + k]) * w[n * K + k];
        mag += std::fabs(double(x[m * K + k]) * w[n * K + k]);
      }
      CDIT_CHECK(std::fabs(y[m * N + n] - want) <= 1e-6 * mag + 1e-6, "y[%lld][%lld] %g vs %g",
                 static_cast<long long>(m), static_cast<long long>(n), y[m * N + n], want);
    }
}

CDIT_CASE(linear_f32_rows_bit_identical_in_any_batch_thread_count_and_isa) {
  const int64_t K = 136, N = 50, M = 211;
  auto x = randn(M * K, 4), w = randn(N * K, 5), b = randn(N, 6);
  auto p = pack(w, N, K);
  set_isa(nullptr);
  auto full = run(x, M, K, p, N, b.data(), 2);
  const char* isas[] = {nullptr, "avx2", "default"};  // "avx2": the AVX2 epilogue on AVX-512 CPUs
  for (const char* isa : isas) {
    set_isa(isa);
    for (int threads : {1, 2, 3}) {
      CDIT_CHECK(std::memcmp(run(x, M, K, p, N, b.data(), threads).data(), full.data(), full.size() * 4) == 0,
                 "full batch differs: isa %s, %d threads", isa ? isa : "auto", threads);
    }
    // every window of rows, alone, equals the same rows inside the full batch
    for (int64_t start : {0, 1, 5, 6, 95, 97, 150}) {
      for (int64_t rows : {1, 2, 5, 6, 7, 13, 53}) {
        if (start + rows > M) continue;
        std::vector<float> sub(x.begin() + start * K, x.begin() + (start + rows) * K);
        auto y = run(sub, rows, K, p, N, b.data(), 2);
        CDIT_CHECK(std::memcmp(y.data(), full.data() + start * N, y.size() * 4) == 0,
                   "rows %lld..%lld alone differ from the batch (isa %s)", static_cast<long long>(start),
                   static_cast<long long>(start + rows), isa ? isa : "auto");
      }
    }
  }
  set_isa(nullptr);
  auto nobias = run(x, 3, K, p, N, nullptr, 1);
  for (int64_t n = 0; n < N; ++n) {
    CDIT_CHECK(nobias[n] + b[n] == full[n], "bias is added once, after the sum (n %lld)", static_cast<long long>(n));
  }
}

CDIT_CASE(linear_f32_arguments) {
  auto w = randn(4 * 8, 7);
  auto p = pack(w, 4, 8);
  std::vector<float> y(8);
  CDIT_CHECK(cdit_linear_f32_packed_floats(0, 8) == -1, "N 0");
  CDIT_CHECK(cdit_linear_f32(nullptr, 2, 8, p.data(), 4, nullptr, y.data(), 1) == CDIT_ERR_ARGUMENT, "null x");
  CDIT_CHECK(cdit_linear_f32(w.data(), -1, 8, p.data(), 4, nullptr, y.data(), 1) == CDIT_ERR_ARGUMENT, "M < 0");
  CDIT_CHECK(cdit_linear_f32(w.data(), 0, 8, p.data(), 4, nullptr, nullptr, 1) == CDIT_OK, "M 0 is empty");
  std::vector<float> y1(8);
  CDIT_CHECK(cdit_linear_f32(w.data(), 2, 8, p.data(), 4, nullptr, y1.data(), 1) == CDIT_OK, "1 thread");
  CDIT_CHECK(cdit_linear_f32(w.data(), 2, 8, p.data(), 4, nullptr, y.data(), 0) == CDIT_OK && y == y1,
             "nthreads 0 is one thread, as the header says");
  CDIT_CHECK(cdit_linear_f32_pack(nullptr, 4, 8, p.data(), 1) == CDIT_ERR_ARGUMENT, "null w");
  CDIT_CHECK(std::strlen(cdit_linear_f32_isa()) > 0, "isa name");
}
