// Built instead of the CUDA kernels when nvcc is absent: same C ABI, always unavailable.
#include "cachedit_cuda.h"

extern "C" {
int cdit_cuda_built(void) { return 0; }
int cdit_cuda_available(void) { return 0; }
const char* cdit_cuda_last_error(void) { return "cachedit was built without nvcc: CUDA kernels unavailable"; }
cdit_status cdit_cuda_stream_synchronize(void*) { return CDIT_ERR_UNAVAILABLE; }
cdit_status cdit_cuda_rel_l1_sums(int, const void*, const void*, int64_t, double*, void*) { return CDIT_ERR_UNAVAILABLE; }
cdit_status cdit_cuda_rel_l1_residual_sums(int, const void*, const void*, const void*, int64_t, double*, void*) {
  return CDIT_ERR_UNAVAILABLE;
}
cdit_status cdit_cuda_taylor_predict(int, void*, const void* const*, int, double, int64_t, void*) {
  return CDIT_ERR_UNAVAILABLE;
}
cdit_status cdit_cuda_taylor_update(int, void* const*, int, int, const void*, double, int64_t, void*) {
  return CDIT_ERR_UNAVAILABLE;
}
cdit_status cdit_cuda_ulysses_pack_heads(int, int, void*, const void*, int64_t, int64_t, int64_t, int64_t, int64_t, void*) {
  return CDIT_ERR_UNAVAILABLE;
}
cdit_status cdit_cuda_ulysses_unpack_heads(int, int, void*, const void*, int64_t, int64_t, int64_t, int64_t, int64_t, void*) {
  return CDIT_ERR_UNAVAILABLE;
}
cdit_status cdit_cuda_ulysses_pack_seq(int, int, void*, const void*, int64_t, int64_t, int64_t, int64_t, int64_t, void*) {
  return CDIT_ERR_UNAVAILABLE;
}
cdit_status cdit_cuda_ulysses_unpack_seq(int, int, void*, const void*, int64_t, int64_t, int64_t, int64_t, int64_t, void*) {
  return CDIT_ERR_UNAVAILABLE;
}
cdit_status cdit_cuda_qlinear(int, int, int, const void*, int64_t, int64_t, const void*, const float*, int64_t, int64_t, int,
                      const void*, void*, void*) {
  return CDIT_ERR_UNAVAILABLE;
}
}
