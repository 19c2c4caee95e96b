/*
 * cachedit CUDA kernels: the public C ABI of libcachedit_cuda.so.
 *
 * The same operations as native/cachedit_kernels.h, on device memory, enqueued on a caller-given
 * stream (a cudaStream_t passed as void*; NULL = the legacy default stream). Calls are asynchronous
 * with respect to the host unless stated. Conversions, Taylor and Ulysses kernels produce results
 * bit-identical to the CPU library; reductions differ only in summation order.
 *
 * The library links the CUDA runtime statically, so it loads on machines without a driver; there,
 * and in builds made without nvcc, cdit_cuda_available() returns 0 and every kernel returns
 * CDIT_ERR_UNAVAILABLE.
 */
#ifndef CACHEDIT_CUDA_H
#define CACHEDIT_CUDA_H

#include "cachedit_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/** 1 if this library was compiled with nvcc. */
CDIT_API int cdit_cuda_built(void);
/** 1 if built with CUDA and at least one CUDA device is usable. */
CDIT_API int cdit_cuda_available(void);
/** Text of the last CUDA error seen by this thread ("" if none). */
CDIT_API const char* cdit_cuda_last_error(void);
/** Blocks until all work on the stream is done. */
CDIT_API cdit_status cdit_cuda_stream_synchronize(void* stream);

/**
 * sum|a-b| and sum|a| into device_out[0] and device_out[1] (fp64, device memory), fixed summation
 * order (deterministic). Leaving the sums on the device lets ranks all-reduce them without a sync.
 */
CDIT_API cdit_status cdit_cuda_rel_l1_sums(int dtype, const void* a, const void* b, int64_t n, double* device_out,
                                   void* stream);
/** As cdit_rel_l1_residual_sums: prev against (after - before), results on the device. */
CDIT_API cdit_status cdit_cuda_rel_l1_residual_sums(int dtype, const void* prev, const void* after, const void* before,
                                            int64_t n, double* device_out, void* stream);
/** As cdit_taylor_predict; terms is a host array of device pointers. */
CDIT_API cdit_status cdit_cuda_taylor_predict(int dtype, void* out, const void* const* terms, int nterms, double k,
                                      int64_t n, void* stream);
/** As cdit_taylor_update; ladder is a host array of device pointers. */
CDIT_API cdit_status cdit_cuda_taylor_update(int dtype, void* const* ladder, int nvalid, int nlevels, const void* y,
                                     double gap, int64_t n, void* stream);
/** As the cdit_ulysses_* CPU kernels. */
CDIT_API cdit_status cdit_cuda_ulysses_pack_heads(int dtype, int wire, void* out, const void* in, int64_t B, int64_t S,
                                          int64_t H, int64_t D, int64_t P, void* stream);
CDIT_API cdit_status cdit_cuda_ulysses_unpack_heads(int dtype, int wire, void* out, const void* in, int64_t B, int64_t S,
                                            int64_t H, int64_t D, int64_t P, void* stream);
CDIT_API cdit_status cdit_cuda_ulysses_pack_seq(int dtype, int wire, void* out, const void* in, int64_t B, int64_t S,
                                        int64_t Hk, int64_t Hl, int64_t D, void* stream);
CDIT_API cdit_status cdit_cuda_ulysses_unpack_seq(int dtype, int wire, void* out, const void* in, int64_t B, int64_t S,
                                          int64_t Hk, int64_t Hl, int64_t D, void* stream);

/**
 * As cdit_qlinear: x, packed (cdit_qweight_pack's layout, uploaded as is), scales, bias and y in
 * device memory. Results are bit-identical to the CPU library. Scratch (2 bytes per input element)
 * comes from the stream-ordered allocator and is freed on the stream.
 */
CDIT_API cdit_status cdit_cuda_qlinear(int dtype, int qact, int qweight, const void* x, int64_t M, int64_t K,
                               const void* packed, const float* scales, int64_t N, int64_t group, int per_tensor_w,
                               const void* bias, void* y, void* stream);

#ifdef __cplusplus
}
#endif

#endif /* CACHEDIT_CUDA_H */
