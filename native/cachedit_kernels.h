/*
 * cachedit kernels: the public C ABI of libcachedit_kernels.so (CPU).
 *
 * Usable from C and C++ without Java. Every kernel takes raw addresses, element counts and an
 * explicit OpenMP thread count (nthreads <= 0 means "one thread"); inputs below a size threshold
 * run serially without touching OpenMP. Floating-point inputs may be fp32, bf16 or fp16
 * (cdit_dtype); arithmetic is done in fp32 and reductions are folded in fp64. Pointers need only
 * element alignment. Every entry point returns a cdit_status; none of them aborts or throws.
 *
 * The CUDA library (cuda/cachedit_cuda.h) exposes the same operations with a cdit_cuda_ prefix.
 */
#ifndef CACHEDIT_KERNELS_H
#define CACHEDIT_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define CDIT_API __declspec(dllexport)
#else
#define CDIT_API __attribute__((visibility("default")))
#endif

#define CDIT_VERSION "0.1.0"

/** Element types of floating-point buffers. */
typedef enum cdit_dtype {
  CDIT_F32 = 0,  /* IEEE binary32 */
  CDIT_BF16 = 1, /* bfloat16, stored as uint16_t */
  CDIT_F16 = 2   /* IEEE binary16, stored as uint16_t */
} cdit_dtype;

/** Return codes. */
typedef enum cdit_status {
  CDIT_OK = 0,
  CDIT_ERR_ARGUMENT = 1,    /* null pointer, negative size, inconsistent sizes */
  CDIT_ERR_DTYPE = 2,       /* unsupported dtype or wire format */
  CDIT_ERR_UNAVAILABLE = 3, /* CUDA library built without nvcc, or no device */
  CDIT_ERR_CUDA = 4         /* a CUDA runtime call failed; see cdit_cuda_last_error() */
} cdit_status;

/**
 * How rows travel in the Ulysses all-to-all buffers. A row is the D values of one (token, head).
 *  - CDIT_WIRE_RAW: the D values in the input dtype.
 *  - CDIT_WIRE_FP8_F32_SCALE: D float8 e4m3fn bytes, then the row's fp32 scale (4 bytes, unaligned,
 *    little endian); scale = max(absmax / 448, 1e-6). Used for Q and V (SPEC 9.5).
 *  - CDIT_WIRE_FP8_BF16_SCALE: D float8 e4m3fn bytes, then the row's bf16 scale (2 bytes);
 *    scale = bf16(max(absmax, 1e-4) / 448). Used for the attention output O (SPEC 9.5).
 * Quantisation is saturating: a finite input never becomes NaN; NaN stays NaN.
 */
typedef enum cdit_wire {
  CDIT_WIRE_RAW = 0,
  CDIT_WIRE_FP8_F32_SCALE = 1,
  CDIT_WIRE_FP8_BF16_SCALE = 2
} cdit_wire;

/** Maximum number of terms of a Taylor expansion (value plus four derivatives). */
#define CDIT_TAYLOR_MAX_TERMS 5

CDIT_API const char* cdit_version(void);
/** Human-readable name of a status code. */
CDIT_API const char* cdit_status_string(int status);
/** The instruction set the CPU kernels dispatch to on this machine: "avx512f", "avx2" or "default". */
CDIT_API const char* cdit_cpu_isa(void);
/** Size in bytes of one element of dtype, or 0 if unknown. */
CDIT_API int cdit_dtype_size(int dtype);
/** Bytes one row of D values occupies on the wire, or -1 for an invalid combination. */
CDIT_API int64_t cdit_wire_row_bytes(int dtype, int wire, int64_t D);

/* ------------------------------------------------------------------------------------------------
 * Relative L1 residual difference (SPEC 3.5): diff = sum|a - b| / sum|a|, a = previous, b = current.
 * Both sums are returned so that ranks can all-reduce numerator and denominator before dividing.
 * The summation order is fixed (blocks of 4096 elements, folded in order) so the result does not
 * depend on nthreads.
 * --------------------------------------------------------------------------------------------- */
CDIT_API int cdit_rel_l1_sums(int dtype, const void* a, const void* b, int64_t n, int nthreads,
                              double* sum_abs_diff, double* sum_abs_a);
/**
 * The same sums where the current tensor is a residual computed on the fly: with d = after - before,
 * sum|prev - d| and sum|prev|. One pass over three buffers instead of materialising d first (the
 * DBCache probe is the Fn output residual, SPEC 3.2). d is rounded to dtype before use, exactly as a
 * materialised residual would be.
 */
CDIT_API int cdit_rel_l1_residual_sums(int dtype, const void* prev, const void* after, const void* before,
                                       int64_t n, int nthreads, double* sum_abs_diff, double* sum_abs_prev);
/** sum|a-b| / sum|a|; 0 when both sums are 0, +inf when only sum|a| is 0. */
CDIT_API int cdit_rel_l1(int dtype, const void* a, const void* b, int64_t n, int nthreads, double* diff);

/* ------------------------------------------------------------------------------------------------
 * Taylor-series extrapolation for the TaylorSeer calibrator (SPEC 6.1).
 * --------------------------------------------------------------------------------------------- */
/**
 * out[j] = sum_{i < nterms} terms[i][j] * k^i / i!   (1 <= nterms <= CDIT_TAYLOR_MAX_TERMS).
 * out may alias terms[0].
 */
CDIT_API int cdit_taylor_predict(int dtype, void* out, const void* const* terms, int nterms, double k,
                                 int64_t n, int nthreads);
/**
 * In-place divided-difference update of a derivative ladder from a new value y observed `gap` steps
 * after the previous one: with L[0] = y and L[i+1] = (L[i] - old[i]) / gap for i < nvalid,
 * writes new_count = min(nvalid + 1, nlevels) levels into ladder[0..new_count-1].
 * ladder holds nlevels buffers (1 <= nlevels <= CDIT_TAYLOR_MAX_TERMS), of which the first nvalid
 * (0 <= nvalid <= nlevels) hold the previous ladder; gap must be finite and non-zero when nvalid > 0.
 * y must not alias a ladder buffer. Intermediate levels are carried in fp32 (no rounding between levels).
 */
CDIT_API int cdit_taylor_update(int dtype, void* const* ladder, int nvalid, int nlevels, const void* y,
                                double gap, int64_t n, int nthreads);

/* ------------------------------------------------------------------------------------------------
 * Ulysses all-to-all packing (SPEC 9.3-9.5), with uneven heads padded by zero heads.
 * P = group size, H = heads, Hl = ceil(H / P) heads per rank after padding, D = head dim.
 *
 * Q/K/V travel "heads -> ranks": pack_heads on the sender, unpack_seq on the receiver.
 * O travels back "seq -> ranks": pack_seq on the sender, unpack_heads on the receiver.
 * The received buffer of a QKV all-to-all is [S_glob, B, Hl, D] whether the ranks' sequence
 * lengths are equal or not (uneven "anything" mode), so the same kernels serve both modes.
 * --------------------------------------------------------------------------------------------- */
/** in [B, S, H, D] (dtype) -> out [P, S, B, Hl, D] (wire rows); heads >= H become zero rows. */
CDIT_API int cdit_ulysses_pack_heads(int dtype, int wire, void* out, const void* in, int64_t B, int64_t S,
                                     int64_t H, int64_t D, int64_t P, int nthreads);
/** in [P, S, B, Hl, D] (wire rows) -> out [B, S, H, D] (dtype); global head p*Hl + h, padded heads dropped. */
CDIT_API int cdit_ulysses_unpack_heads(int dtype, int wire, void* out, const void* in, int64_t B, int64_t S,
                                       int64_t H, int64_t D, int64_t P, int nthreads);
/** in [B, S, Hk, D] (dtype) -> out [S, B, Hl, D] (wire rows), Hk <= Hl; heads >= Hk become zero rows. */
CDIT_API int cdit_ulysses_pack_seq(int dtype, int wire, void* out, const void* in, int64_t B, int64_t S,
                                   int64_t Hk, int64_t Hl, int64_t D, int nthreads);
/** in [S, B, Hl, D] (wire rows) -> out [B, S, Hk, D] (dtype), keeping the first Hk <= Hl heads. */
CDIT_API int cdit_ulysses_unpack_seq(int dtype, int wire, void* out, const void* in, int64_t B, int64_t S,
                                     int64_t Hk, int64_t Hl, int64_t D, int nthreads);

/* ------------------------------------------------------------------------------------------------
 * Scalar float8 e4m3fn conversions (round to nearest even, saturating at +-448). For tests and tools.
 * --------------------------------------------------------------------------------------------- */
CDIT_API uint8_t cdit_fp8_e4m3_from_float(float x);
CDIT_API float cdit_fp8_e4m3_to_float(uint8_t v);

#ifdef __cplusplus
}
#endif

#endif /* CACHEDIT_KERNELS_H */
