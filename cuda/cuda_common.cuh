// Internal helpers of the CUDA kernels: error capture and launch geometry.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "cachedit_cuda.h"
#include "numeric.hpp"

namespace cachedit {
namespace cuda {

// Records the error text for cdit_cuda_last_error() and maps it to a status code.
int record(cudaError_t err, const char* where);

inline cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }

// Checks that a launch was accepted (kernel errors surface on the stream later).
inline int launched(const char* where) { return record(cudaGetLastError(), where); }

constexpr int kThreads = 256;

// Sums v over the block in a fixed order; the result is valid in thread 0.
__device__ inline double block_sum(double v) {
  __shared__ double warp_sums[kThreads / 32];
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < (blockDim.x >> 5) ? warp_sums[lane] : 0.0;
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  }
  __syncthreads();
  return v;
}

inline unsigned grid_for(int64_t work_items, int64_t per_thread = 1) {
  const int64_t blocks = (work_items + kThreads * per_thread - 1) / (kThreads * per_thread);
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > 65535 * 16 ? 65535 * 16 : blocks));
}

}  // namespace cuda
}  // namespace cachedit

#define CDIT_CUDA_REQUIRE_DEVICE()                              \
  do {                                                          \
    if (!cdit_cuda_available()) return CDIT_ERR_UNAVAILABLE;    \
  } while (0)
