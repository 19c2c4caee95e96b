// Block-parallel loops with a serial fast path. Internal header.
#pragma once

#include <cstdint>

#include "cachedit_kernels.h"

namespace cachedit {

// Below this much work (elements x values touched per element) a kernel runs on the calling thread
// and never enters OpenMP. With libgomp's passive wait policy (what cachedit sets, NativeRuntime) a
// fork wakes sleeping threads: on the 2-vCPU test machine a 100K-element Taylor prediction took
// 100-140 us serial against 140-470 us on two threads, so only inputs of several MB go parallel.
constexpr int64_t kParallelMinElements = 1 << 19;
static_assert(kParallelMinElements == CDIT_SERIAL_WORK, "the header documents this threshold");

// Calls body(begin, end) for consecutive blocks of at most `block` items covering [0, n), in
// parallel over at most nthreads threads when the total work (n * work_per_item) is large enough.
template <typename Body>
void parallel_blocks(int64_t n, int64_t block, int nthreads, int64_t work_per_item, Body body) {
  if (n <= 0) return;
  const int64_t nblocks = (n + block - 1) / block;
  if (nthreads <= 1 || nblocks == 1 || n * work_per_item < kParallelMinElements) {
    for (int64_t i = 0; i < nblocks; ++i) {
      const int64_t begin = i * block;
      body(begin, begin + block < n ? begin + block : n);
    }
    return;
  }
  const int nt = static_cast<int>(nblocks < nthreads ? nblocks : nthreads);
  // dynamic: a thread that shares its core with other work (a busy neighbour, another request) takes
  // fewer blocks instead of holding the others up; each block writes its own outputs, so the split
  // never changes the bits
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
  for (int64_t i = 0; i < nblocks; ++i) {
    const int64_t begin = i * block;
    body(begin, begin + block < n ? begin + block : n);
  }
}

}  // namespace cachedit
