// CUDA kernel tests: every CUDA kernel against the CPU kernel on the same inputs (bit-identical for
// Taylor and Ulysses; reductions within 1e-9 relative). Exits 77 (ctest: skipped) without a GPU.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "cachedit_cuda.h"
#include "ref.hpp"
#include "test_util.hpp"

using namespace cdit_test;

namespace {

struct DeviceBuffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  explicit DeviceBuffer(size_t n) : bytes(n) { cudaMalloc(&ptr, n ? n : 1); }
  ~DeviceBuffer() { cudaFree(ptr); }
  template <typename V>
  void upload(const V& host) { cudaMemcpy(ptr, host.data(), bytes, cudaMemcpyHostToDevice); }
  std::vector<uint8_t> download() const {
    std::vector<uint8_t> h(bytes);
    cudaMemcpy(h.data(), ptr, bytes, cudaMemcpyDeviceToHost);
    return h;
  }
};

const int kDtypes[] = {CDIT_F32, CDIT_BF16, CDIT_F16};
const int64_t kSizes[] = {1, 17, 8193, 1000003, 16777216 + 5};

}  // namespace

CDIT_CASE(cuda_rel_l1_matches_cpu) {
  for (int dt : kDtypes)
    for (int64_t n : kSizes) {
      auto av = randn(n, n), noise = randn(n, n + 1, 0.05f);
      for (int64_t i = 0; i < n; ++i) noise[i] += av[i];
      Typed a(dt, av), b(dt, noise);
      double num, den;
      cdit_rel_l1_sums(dt, a.data(), b.data(), n, 4, &num, &den);
      DeviceBuffer da(a.bytes.size()), db(b.bytes.size()), out(16);
      da.upload(a.bytes);
      db.upload(b.bytes);
      CDIT_CHECK(cdit_cuda_rel_l1_sums(dt, da.ptr, db.ptr, n, (double*)out.ptr, nullptr) == CDIT_OK, "status %s",
                 cdit_cuda_last_error());
      // unaligned start: exercises the scalar path
      if (n > 1) {
        double num1, den1;
        cdit_rel_l1_sums(dt, a.bytes.data() + cdit_dtype_size(dt), b.bytes.data() + cdit_dtype_size(dt), n - 1, 4,
                         &num1, &den1);
        DeviceBuffer out1(16);
        cdit_cuda_rel_l1_sums(dt, (uint8_t*)da.ptr + cdit_dtype_size(dt), (uint8_t*)db.ptr + cdit_dtype_size(dt),
                              n - 1, (double*)out1.ptr, nullptr);
        auto h1 = out1.download();
        const double* g1 = (const double*)h1.data();
        CDIT_CHECK(std::fabs(g1[0] - num1) <= 1e-9 * num1 && std::fabs(g1[1] - den1) <= 1e-9 * den1,
                   "unaligned %s n=%lld", dtype_name(dt), (long long)n);
      }
      auto h = out.download();
      const double* got = (const double*)h.data();
      CDIT_CHECK(std::fabs(got[0] - num) <= 1e-9 * num && std::fabs(got[1] - den) <= 1e-9 * den,
                 "%s n=%lld: gpu %.12g %.12g cpu %.12g %.12g", dtype_name(dt), (long long)n, got[0], got[1], num, den);
      // determinism: the same call twice gives the same bits
      DeviceBuffer out2(16);
      cdit_cuda_rel_l1_sums(dt, da.ptr, db.ptr, n, (double*)out2.ptr, nullptr);
      CDIT_CHECK(out2.download() == h, "%s n=%lld not deterministic", dtype_name(dt), (long long)n);
    }
}

CDIT_CASE(cuda_rel_l1_residual_matches_cpu) {
  for (int dt : kDtypes)
    for (int64_t n : kSizes) {
      Typed p(dt, randn(n, n + 7)), a(dt, randn(n, n + 8)), b(dt, randn(n, n + 9));
      double num, den;
      cdit_rel_l1_residual_sums(dt, p.data(), a.data(), b.data(), n, 4, &num, &den);
      DeviceBuffer dp(p.bytes.size()), da(a.bytes.size()), db(b.bytes.size()), out(16);
      dp.upload(p.bytes);
      da.upload(a.bytes);
      db.upload(b.bytes);
      CDIT_CHECK(cdit_cuda_rel_l1_residual_sums(dt, dp.ptr, da.ptr, db.ptr, n, (double*)out.ptr, nullptr) == CDIT_OK,
                 "status");
      auto h = out.download();
      const double* got = (const double*)h.data();
      CDIT_CHECK(std::fabs(got[0] - num) <= 1e-9 * num && std::fabs(got[1] - den) <= 1e-9 * den,
                 "%s n=%lld: gpu %.12g %.12g cpu %.12g %.12g", dtype_name(dt), (long long)n, got[0], got[1], num, den);
    }
}

CDIT_CASE(cuda_taylor_bit_identical_to_cpu) {
  for (int dt : kDtypes)
    for (int64_t n : {1LL, 8193LL, 1000003LL}) {
      for (int nterms = 1; nterms <= CDIT_TAYLOR_MAX_TERMS; ++nterms) {
        std::vector<Typed> terms;
        std::vector<DeviceBuffer*> dterms;
        const void* hp[CDIT_TAYLOR_MAX_TERMS];
        const void* dp[CDIT_TAYLOR_MAX_TERMS];
        for (int i = 0; i < nterms; ++i) {
          terms.emplace_back(dt, randn(n, 5 * i + n));
          dterms.push_back(new DeviceBuffer(terms.back().bytes.size()));
          dterms.back()->upload(terms.back().bytes);
        }
        for (int i = 0; i < nterms; ++i) { hp[i] = terms[i].data(); dp[i] = dterms[i]->ptr; }
        Typed out(dt, n);
        cdit_taylor_predict(dt, out.data(), hp, nterms, 2.5, n, 4);
        DeviceBuffer dout(out.bytes.size());
        CDIT_CHECK(cdit_cuda_taylor_predict(dt, dout.ptr, dp, nterms, 2.5, n, nullptr) == CDIT_OK, "status");
        CDIT_CHECK(dout.download() == out.bytes, "predict %s n=%lld nterms=%d differs", dtype_name(dt), (long long)n, nterms);
        // update with the same buffers as a ladder
        Typed y(dt, randn(n, 999));
        DeviceBuffer dy(y.bytes.size());
        dy.upload(y.bytes);
        void* hl[CDIT_TAYLOR_MAX_TERMS];
        void* dl[CDIT_TAYLOR_MAX_TERMS];
        for (int i = 0; i < nterms; ++i) { hl[i] = terms[i].data(); dl[i] = dterms[i]->ptr; }
        cdit_taylor_update(dt, hl, nterms - 1, nterms, y.data(), 3.0, n, 4);
        CDIT_CHECK(cdit_cuda_taylor_update(dt, dl, nterms - 1, nterms, dy.ptr, 3.0, n, nullptr) == CDIT_OK, "status");
        for (int i = 0; i < nterms; ++i)
          CDIT_CHECK(dterms[i]->download() == terms[i].bytes, "update %s level %d differs", dtype_name(dt), i);
        for (auto* d : dterms) delete d;
      }
    }
}

CDIT_CASE(cuda_ulysses_bit_identical_to_cpu) {
  struct Shape { int64_t B, S, H, D, P; };
  for (Shape s : {Shape{1, 1, 1, 1, 1}, Shape{2, 3, 4, 8, 2}, Shape{1, 5, 30, 16, 4}, Shape{2, 512, 24, 128, 8},
                  Shape{1, 333, 40, 64, 3}})
    for (int dt : kDtypes)
      for (int wire : {CDIT_WIRE_RAW, CDIT_WIRE_FP8_F32_SCALE, CDIT_WIRE_FP8_BF16_SCALE}) {
        const int64_t Hl = (s.H + s.P - 1) / s.P, rb = cdit_wire_row_bytes(dt, wire, s.D);
        Typed in(dt, randn(s.B * s.S * s.H * s.D, s.S + s.H, 2.0f));
        std::vector<uint8_t> packed(s.P * s.S * s.B * Hl * rb);
        cdit_ulysses_pack_heads(dt, wire, packed.data(), in.data(), s.B, s.S, s.H, s.D, s.P, 4);
        DeviceBuffer din(in.bytes.size()), dpacked(packed.size()), dback(in.bytes.size());
        din.upload(in.bytes);
        CDIT_CHECK(cdit_cuda_ulysses_pack_heads(dt, wire, dpacked.ptr, din.ptr, s.B, s.S, s.H, s.D, s.P, nullptr) == CDIT_OK, "status");
        CDIT_CHECK(dpacked.download() == packed, "pack_heads %s %s H%lld P%lld", dtype_name(dt), wire_name(wire), (long long)s.H, (long long)s.P);
        Typed back(dt, in.size());
        cdit_ulysses_unpack_heads(dt, wire, back.data(), packed.data(), s.B, s.S, s.H, s.D, s.P, 4);
        cdit_cuda_ulysses_unpack_heads(dt, wire, dback.ptr, dpacked.ptr, s.B, s.S, s.H, s.D, s.P, nullptr);
        CDIT_CHECK(dback.download() == back.bytes, "unpack_heads %s %s", dtype_name(dt), wire_name(wire));
        // seq layout on rank 0's head count and a short last rank
        for (int64_t Hk : {Hl, std::max<int64_t>(Hl - 1, 0)}) {
          Typed x(dt, randn(s.B * s.S * Hk * s.D, 3 + Hk));
          std::vector<uint8_t> seq(s.S * s.B * Hl * rb);
          cdit_ulysses_pack_seq(dt, wire, seq.data(), x.data(), s.B, s.S, Hk, Hl, s.D, 4);
          DeviceBuffer dx(x.bytes.size()), dseq(seq.size()), dy(x.bytes.size());
          dx.upload(x.bytes);
          cdit_cuda_ulysses_pack_seq(dt, wire, dseq.ptr, dx.ptr, s.B, s.S, Hk, Hl, s.D, nullptr);
          CDIT_CHECK(dseq.download() == seq, "pack_seq %s %s Hk=%lld", dtype_name(dt), wire_name(wire), (long long)Hk);
          Typed y(dt, x.size());
          cdit_ulysses_unpack_seq(dt, wire, y.data(), seq.data(), s.B, s.S, Hk, Hl, s.D, 4);
          cdit_cuda_ulysses_unpack_seq(dt, wire, dy.ptr, dseq.ptr, s.B, s.S, Hk, Hl, s.D, nullptr);
          CDIT_CHECK(dy.download() == y.bytes, "unpack_seq %s %s", dtype_name(dt), wire_name(wire));
        }
      }
}

CDIT_CASE(cuda_error_contract) {
  CDIT_CHECK(cdit_cuda_built() == 1, "built with nvcc");
  CDIT_CHECK(cdit_cuda_rel_l1_sums(9, nullptr, nullptr, 0, (double*)8, nullptr) == CDIT_ERR_DTYPE, "dtype");
  CDIT_CHECK(cdit_cuda_rel_l1_sums(CDIT_F32, nullptr, nullptr, 5, (double*)8, nullptr) == CDIT_ERR_ARGUMENT, "null");
  CDIT_CHECK(cdit_cuda_ulysses_pack_seq(CDIT_F32, 0, (void*)8, (void*)8, 1, 1, 3, 2, 1, nullptr) == CDIT_ERR_ARGUMENT, "Hk>Hl");
}

int main(int argc, char** argv) {
  if (!cdit_cuda_available()) {
    std::printf("no CUDA device: skipping (exit 77)\n");
    return 77;
  }
  cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, 0);
  std::printf("device: %s (sm_%d%d)\n", prop.name, prop.major, prop.minor);
  const int rc = cdit_test::run_all(argc, argv);
  const cudaError_t err = cudaDeviceSynchronize();
  if (err != cudaSuccess) {
    std::printf("CUDA error after tests: %s\n", cudaGetErrorString(err));
    return 1;
  }
  return rc;
}

CDIT_CASE(cuda_qlinear_bit_identical_to_cpu) {
  struct T {
    int qact, qweight, per_tensor;
    int64_t group;
  };
  const T types[] = {{CDIT_QA_FP8_ROW, CDIT_QW_FP8, 0, 0},  {CDIT_QA_FP8_TENSOR, CDIT_QW_FP8, 1, 0},
                     {CDIT_QA_NONE, CDIT_QW_FP8, 0, 0},     {CDIT_QA_INT8_ROW, CDIT_QW_INT8, 0, 0},
                     {CDIT_QA_INT8_TENSOR, CDIT_QW_INT8, 1, 0}, {CDIT_QA_NONE, CDIT_QW_INT8, 0, 0},
                     {CDIT_QA_NONE, CDIT_QW_INT4, 0, 32},   {CDIT_QA_NONE, CDIT_QW_INT4, 0, 128}};
  const int64_t shapes[][3] = {{1, 128, 1}, {7, 30, 17}, {97, 256, 33}, {130, 1152, 70}, {300, 640, 128}};
  for (const T& t : types)
    for (const auto& s : shapes) {
      const int64_t M = s[0], N = s[2];
      int64_t K = s[1];
      if (t.qweight == CDIT_QW_INT4 && K % t.group) continue;
      const auto x = randn(M * K, 71 + K), w = randn(N * K, 72 + N, 0.1f), b = randn(N, 73);
      std::vector<uint8_t> q(N * K);
      std::vector<float> sc(N * K);
      cdit_qweight_quantize(CDIT_F32, t.qweight, w.data(), N, K, t.group, t.per_tensor, q.data(), sc.data(), 1);
      std::vector<uint8_t> packed(cdit_qweight_packed_bytes(t.qweight, N, K));
      cdit_qweight_pack(t.qweight, q.data(), N, K, packed.data(), 1);
      std::vector<float> cpu(M * N);
      cdit_qlinear(CDIT_F32, t.qact, t.qweight, x.data(), M, K, packed.data(), sc.data(), N, t.group, t.per_tensor,
                   b.data(), cpu.data(), 2);
      DeviceBuffer dx(x.size() * 4), dp(packed.size()), ds(sc.size() * 4), db(b.size() * 4), dy(cpu.size() * 4);
      dx.upload(x);
      dp.upload(packed);
      ds.upload(sc);
      db.upload(b);
      const int st = cdit_cuda_qlinear(CDIT_F32, t.qact, t.qweight, dx.ptr, M, K, dp.ptr, (const float*)ds.ptr, N,
                                       t.group, t.per_tensor, db.ptr, dy.ptr, nullptr);
      cdit_cuda_stream_synchronize(nullptr);
      CDIT_CHECK(st == CDIT_OK, "qlinear status %d: %s", st, cdit_cuda_last_error());
      auto got = dy.download();
      CDIT_CHECK(std::memcmp(got.data(), cpu.data(), got.size()) == 0, "qact %d qweight %d %lldx%lldx%lld differs",
                 t.qact, t.qweight, (long long)M, (long long)K, (long long)N);
    }
}
