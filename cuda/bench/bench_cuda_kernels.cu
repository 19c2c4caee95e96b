// CUDA bandwidth benchmark for the cachedit kernels. Prints a markdown table: time per call and
// effective bandwidth (bytes the kernel must move / time), next to two references measured in the
// same run: a device-to-device cudaMemcpy and a plain read-only sum over the same bytes.
// Run: build/bench_cuda_kernels [elements, default 16777216 and 67108864]
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include "cachedit_cuda.h"

namespace {

float time_ms(const std::function<void()>& fn, int iters = 50) {
  for (int i = 0; i < 5; ++i) fn();
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  cudaEventRecord(start);
  for (int i = 0; i < iters; ++i) fn();
  cudaEventRecord(stop);
  cudaEventSynchronize(stop);
  float ms = 0;
  cudaEventElapsedTime(&ms, start, stop);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms / iters;
}

__global__ void read_sum(const uint4* a, const uint4* b, int64_t nvec, float* out) {
  float acc = 0.f;
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < nvec; i += stride) {
    const uint4 x = __ldg(a + i), y = __ldg(b + i);
    acc += __uint_as_float(x.x) + __uint_as_float(x.y) + __uint_as_float(x.z) + __uint_as_float(x.w) +
           __uint_as_float(y.x) + __uint_as_float(y.y) + __uint_as_float(y.z) + __uint_as_float(y.w);
  }
  if (acc == 1234.5f) *out = acc;  // keeps the loads alive
}

__global__ void fill(uint16_t* p, int64_t n, uint32_t seed) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    uint32_t h = (uint32_t)i * 2654435761u ^ seed;
    p[i] = (uint16_t)(0x3C00 | (h & 0x3FF));  // finite values in [1, 2) for f16/bf16 alike
  }
}

void row(const char* name, const char* dtype, int64_t n, double bytes, float ms, double ref_gbs) {
  const double gbs = bytes / (ms * 1e-3) / 1e9;
  std::printf("| %s | %s | %lld | %.1f | %.0f | %.0f%% |\n", name, dtype, (long long)n, ms * 1e3, gbs, 100.0 * gbs / ref_gbs);
}

}  // namespace

int main(int argc, char** argv) {
  if (!cdit_cuda_available()) {
    std::printf("no CUDA device\n");
    return 77;
  }
  cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, 0);
  int clock_khz = 0, bus_bits = 0;
  double peak = 0;
  if (cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, 0) == cudaSuccess &&
      cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, 0) == cudaSuccess)
    peak = 2.0 * clock_khz * 1e3 * bus_bits / 8 / 1e9;
  cudaGetLastError();
  std::printf("device: %s, sm_%d%d, %d SMs, theoretical DRAM bandwidth %.0f GB/s\n\n", prop.name, prop.major,
              prop.minor, prop.multiProcessorCount, peak);
  std::vector<int64_t> sizes = {16777216, 67108864};
  if (argc > 1) sizes = {std::atoll(argv[1])};
  std::printf("| kernel | dtype | elements | us/call | GB/s | %% of memcpy GB/s |\n|---|---|---|---|---|---|\n");
  for (int64_t n : sizes) {
    for (int dt : {CDIT_F32, CDIT_BF16}) {
      const char* dn = dt == CDIT_F32 ? "f32" : "bf16";
      const int es = dt == CDIT_F32 ? 4 : 2;
      const size_t bytes = (size_t)n * es;
      void *a, *b, *c, *d, *o;
      double* sums;
      cudaMalloc(&a, bytes); cudaMalloc(&b, bytes); cudaMalloc(&c, bytes); cudaMalloc(&d, bytes);
      cudaMalloc(&o, bytes + (size_t)n);  // room for fp8 rows with scales
      cudaMalloc(&sums, 16);
      fill<<<1024, 256>>>((uint16_t*)a, bytes / 2, 1);
      fill<<<1024, 256>>>((uint16_t*)b, bytes / 2, 2);
      fill<<<1024, 256>>>((uint16_t*)c, bytes / 2, 3);
      cudaDeviceSynchronize();
      const float copy_ms = time_ms([&] { cudaMemcpyAsync(d, a, bytes, cudaMemcpyDeviceToDevice); });
      const double copy_gbs = 2.0 * bytes / (copy_ms * 1e-3) / 1e9;
      std::printf("| memcpy D2D (reference) | %s | %lld | %.1f | %.0f | 100%% |\n", dn, (long long)n, copy_ms * 1e3, copy_gbs);
      const float read_ms = time_ms([&] { read_sum<<<prop.multiProcessorCount * 8, 256>>>((const uint4*)a, (const uint4*)b, bytes / 16, (float*)o); });
      row("read-only sum of a and b (reference)", dn, n, 2.0 * bytes, read_ms, copy_gbs);
      row("rel_l1_sums", dn, n, 2.0 * bytes, time_ms([&] { cdit_cuda_rel_l1_sums(dt, a, b, n, sums, nullptr); }), copy_gbs);
      row("rel_l1_residual_sums", dn, n, 3.0 * bytes, time_ms([&] { cdit_cuda_rel_l1_residual_sums(dt, a, b, c, n, sums, nullptr); }), copy_gbs);
      const void* t2[2] = {a, b};
      row("taylor_predict (2 terms)", dn, n, 3.0 * bytes, time_ms([&] { cdit_cuda_taylor_predict(dt, d, t2, 2, 2.0, n, nullptr); }), copy_gbs);
      const void* t3[3] = {a, b, c};
      row("taylor_predict (3 terms)", dn, n, 4.0 * bytes, time_ms([&] { cdit_cuda_taylor_predict(dt, d, t3, 3, 2.0, n, nullptr); }), copy_gbs);
      void* ladder[2] = {b, c};
      row("taylor_update (2 levels)", dn, n, 5.0 * bytes, time_ms([&] { cdit_cuda_taylor_update(dt, ladder, 1, 2, a, 1.0, n, nullptr); }), copy_gbs);
      // Ulysses: B=1, D=128, H=24 heads, P=8 ranks, S = n / (H*D) tokens
      const int64_t D = 128, H = 24, P = 8, S = n / (H * D);
      const double in_bytes = (double)S * H * D * es;
      row("pack_heads raw", dn, S * H * D, 2.0 * in_bytes, time_ms([&] { cdit_cuda_ulysses_pack_heads(dt, CDIT_WIRE_RAW, o, a, 1, S, H, D, P, nullptr); }), copy_gbs);
      row("pack_heads fp8+f32 scale", dn, S * H * D, in_bytes + (double)S * H * (D + 4), time_ms([&] { cdit_cuda_ulysses_pack_heads(dt, CDIT_WIRE_FP8_F32_SCALE, o, a, 1, S, H, D, P, nullptr); }), copy_gbs);
      row("unpack_seq fp8+f32 scale", dn, S * H * D, in_bytes + (double)S * H * (D + 4), time_ms([&] { cdit_cuda_ulysses_unpack_seq(dt, CDIT_WIRE_FP8_F32_SCALE, d, o, 1, S * P, H / P, H / P, D, nullptr); }), copy_gbs);
      row("pack_seq fp8+bf16 scale", dn, S * H * D, in_bytes + (double)S * H * (D + 2), time_ms([&] { cdit_cuda_ulysses_pack_seq(dt, CDIT_WIRE_FP8_BF16_SCALE, o, a, 1, S * P, H / P, H / P, D, nullptr); }), copy_gbs);
      cudaError_t err = cudaDeviceSynchronize();
      if (err != cudaSuccess) { std::printf("CUDA error: %s\n", cudaGetErrorString(err)); return 1; }
      cudaFree(a); cudaFree(b); cudaFree(c); cudaFree(d); cudaFree(o); cudaFree(sums);
    }
  }
  return 0;
}
