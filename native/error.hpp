// Why a call failed, for cdit_last_error(). Internal header.
//
// A validation site returns fail(status, "what is wrong with which argument", ...); the public entry
// point wraps its result in checked("cdit_name", rc), which stores "cdit_name: <message>" (or the
// status' name when no site said more) as the calling thread's last error. Thread-local, so calls
// on different threads never see each other's messages.
#pragma once

#include "cachedit_kernels.h"

namespace cachedit {

int fail(int status, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
cdit_status checked(const char* function, int status);

}  // namespace cachedit
