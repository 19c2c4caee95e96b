// Availability, error text and stream sync for the CUDA library.
#include <string>

#include "cuda_common.cuh"

namespace cachedit {
namespace cuda {
namespace {
thread_local std::string g_last_error;
}

int record(cudaError_t err, const char* where) {
  if (err == cudaSuccess) return CDIT_OK;
  g_last_error = std::string(where) + ": " + cudaGetErrorName(err) + ": " + cudaGetErrorString(err);
  return CDIT_ERR_CUDA;
}

}  // namespace cuda
}  // namespace cachedit

using namespace cachedit::cuda;

extern "C" int cdit_cuda_built(void) { return 1; }

extern "C" int cdit_cuda_available(void) {
  // Cached per process: the answer cannot change without a driver reload.
  static const int available = [] {
    int count = 0;
    return cudaGetDeviceCount(&count) == cudaSuccess && count > 0 ? 1 : 0;
  }();
  return available;
}

extern "C" const char* cdit_cuda_last_error(void) { return g_last_error.c_str(); }

static int cuda_stream_synchronize_impl(void* stream) {
  CDIT_CUDA_REQUIRE_DEVICE();
  return record(cudaStreamSynchronize(as_stream(stream)), "cudaStreamSynchronize");
}

// ---- the C ABI ----

extern "C" cdit_status cdit_cuda_stream_synchronize(void* stream) {
  return static_cast<cdit_status>(cuda_stream_synchronize_impl(stream));
}
