// Library metadata shared by all kernels.
#include "cachedit_kernels.h"

extern "C" const char* cdit_version(void) { return CDIT_VERSION; }

extern "C" const char* cdit_status_string(int status) {
  switch (status) {
    case CDIT_OK: return "ok";
    case CDIT_ERR_ARGUMENT: return "invalid argument";
    case CDIT_ERR_DTYPE: return "unsupported dtype or wire format";
    case CDIT_ERR_UNAVAILABLE: return "CUDA kernels unavailable";
    case CDIT_ERR_CUDA: return "CUDA error";
    case CDIT_ERR_MEMORY: return "out of memory";
    default: return "unknown status";
  }
}

// Mirrors the resolver GCC generates for target_clones("avx512f", "avx2", "default").
extern "C" const char* cdit_cpu_isa(void) {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return "avx512f";
  if (__builtin_cpu_supports("avx2")) return "avx2";
  return "default";
}

extern "C" int cdit_dtype_size(int dtype) {
  switch (dtype) {
    case CDIT_F32: return 4;
    case CDIT_BF16:
    case CDIT_F16: return 2;
    default: return 0;
  }
}
