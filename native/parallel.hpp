// Block-parallel loops with a serial fast path. Internal header.
#pragma once

#include <cstdint>

namespace cachedit {

// Below this many elements a kernel runs on the calling thread and never enters OpenMP: an
// OpenMP fork costs ~0.5 us, which dominates small inputs (BUILD-NOTES section 1).
constexpr int64_t kParallelMinElements = 1 << 15;

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
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t i = 0; i < nblocks; ++i) {
    const int64_t begin = i * block;
    body(begin, begin + block < n ? begin + block : n);
  }
}

}  // namespace cachedit
