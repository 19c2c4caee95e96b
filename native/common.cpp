// Library metadata shared by all kernels.
#include "cachedit_kernels.h"
#include "error.hpp"
#include "isa.hpp"

#include <cstdarg>
#include <cstdio>
#include <cstring>

namespace cachedit {
namespace {
thread_local char t_last_error[512];  // what cdit_last_error() returns on this thread
thread_local char t_detail[384];      // what the failing site said, until its entry point records it
thread_local bool t_has_detail = false;
}  // namespace

int fail(int status, const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(t_detail, sizeof t_detail, fmt, args);
  va_end(args);
  t_has_detail = true;
  return status;
}

cdit_status checked(const char* function, int status) {
  if (status != CDIT_OK) {
    std::snprintf(t_last_error, sizeof t_last_error, "%s: %s", function,
                  t_has_detail ? t_detail : cdit_status_string(status));
  }
  t_has_detail = false;
  return static_cast<cdit_status>(status);
}

}  // namespace cachedit

extern "C" const char* cdit_last_error(void) { return cachedit::t_last_error; }

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

// Mirrors the resolver GCC generates for target_clones("avx512f", "arch=x86-64-v3", "default")
// (isa.hpp): x86-64-v3 needs AVX2 and FMA, reported as "avx2". Other targets have the baseline only.
extern "C" const char* cdit_cpu_isa(void) {
#if CDIT_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return "avx512f";
  if (__builtin_cpu_supports("x86-64-v3")) return "avx2";
#endif
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
