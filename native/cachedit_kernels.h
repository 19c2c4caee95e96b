/*
 * cachedit kernels: the public C ABI of libcachedit_kernels.so (CPU).
 *
 * Usable from C and C++ without Java. Every kernel takes raw addresses, element counts and an
 * explicit OpenMP thread count (nthreads <= 0 means "one thread"); inputs below a size threshold
 * (CDIT_SERIAL_WORK) run serially on the calling thread without touching OpenMP. Floating-point
 * inputs may be fp32, bf16 or fp16 (cdit_dtype); arithmetic is done in fp32 and reductions are
 * folded in fp64. Pointers need only element alignment. Every kernel returns a cdit_status and, on
 * failure, leaves a message naming the function, the argument and its value in cdit_last_error();
 * none of them aborts or throws.
 *
 * Threads: every function is thread-safe and re-entrant. The library holds no mutable global state
 * (the last error is per thread); concurrent calls are independent as long as no call writes a
 * buffer another one reads or writes. A call with nthreads > 1 above the threshold opens its own
 * OpenMP parallel region, so calling from several threads at once multiplies the threads in use.
 * Results never depend on nthreads.
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

/**
 * Work below which a kernel runs serially: elements times the values each element touches (an
 * element-wise kernel over n elements reading two buffers does 2n). Waking OpenMP threads costs more
 * than it saves below it. The linear layers use their own, larger thresholds (noted there).
 */
#define CDIT_SERIAL_WORK 524288

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
  CDIT_ERR_CUDA = 4,        /* a CUDA runtime call failed; see cdit_cuda_last_error() */
  CDIT_ERR_MEMORY = 5       /* a scratch allocation failed */
} cdit_status;

/**
 * How rows travel in the Ulysses all-to-all buffers. A row is the D values of one (token, head).
 *  - CDIT_WIRE_RAW: the D values in the input dtype.
 *  - CDIT_WIRE_FP8_F32_SCALE: D float8 e4m3fn bytes, then the row's fp32 scale (4 bytes, unaligned,
 *    little endian); scale = max(absmax / 448, 1e-6). Used for Q and V (docs/parallelism.md).
 *  - CDIT_WIRE_FP8_BF16_SCALE: D float8 e4m3fn bytes, then the row's bf16 scale (2 bytes);
 *    scale = bf16(max(absmax, 1e-4) / 448). Used for the attention output O (docs/parallelism.md).
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
/**
 * Why the calling thread's most recent failing call failed, e.g. "cdit_taylor_predict: nterms must
 * be 1..5, got 6"; "" if none has failed on this thread. Calls that succeed leave it unchanged. The
 * string belongs to the library and stays valid until the next failing call on the same thread.
 */
CDIT_API const char* cdit_last_error(void);
/** The instruction set the CPU kernels dispatch to on this machine: "avx512f", "avx2" or "default". */
CDIT_API const char* cdit_cpu_isa(void);
/** Size in bytes of one element of dtype, or 0 if unknown. */
CDIT_API int cdit_dtype_size(int dtype);
/** Bytes one row of D values occupies on the wire, or -1 for an invalid combination. */
CDIT_API int64_t cdit_wire_row_bytes(int dtype, int wire, int64_t D);

/* ------------------------------------------------------------------------------------------------
 * Relative L1 residual difference (docs/algorithms.md section 3.5): diff = sum|a - b| / sum|a|, a = previous, b = current.
 * Both sums are returned so that ranks can all-reduce numerator and denominator before dividing.
 * The summation order is fixed (blocks of 4096 elements, folded in order) so the result does not
 * depend on nthreads.
 * --------------------------------------------------------------------------------------------- */
CDIT_API cdit_status cdit_rel_l1_sums(int dtype, const void* a, const void* b, int64_t n, int nthreads,
                              double* sum_abs_diff, double* sum_abs_a);
/**
 * The same sums where the current tensor is a residual computed on the fly: with d = after - before,
 * sum|prev - d| and sum|prev|. One pass over three buffers instead of materialising d first (the
 * DBCache probe is the Fn output residual, docs/algorithms.md section 3.2). d is rounded to dtype before use, exactly as a
 * materialised residual would be.
 */
CDIT_API cdit_status cdit_rel_l1_residual_sums(int dtype, const void* prev, const void* after, const void* before,
                                       int64_t n, int nthreads, double* sum_abs_diff, double* sum_abs_prev);
/** sum|a-b| / sum|a|; 0 when both sums are 0, +inf when only sum|a| is 0. */
CDIT_API cdit_status cdit_rel_l1(int dtype, const void* a, const void* b, int64_t n, int nthreads, double* diff);

/* ------------------------------------------------------------------------------------------------
 * Taylor-series extrapolation for the TaylorSeer calibrator (docs/algorithms.md section 6.1).
 * --------------------------------------------------------------------------------------------- */
/**
 * out[j] = sum_{i < nterms} terms[i][j] * k^i / i!   (1 <= nterms <= CDIT_TAYLOR_MAX_TERMS).
 * k is the distance from the step the terms were last updated at, in the unit the ladder's `gap`s
 * were given in (cachedit passes steps: k = 1 predicts the next step; k may be fractional or
 * negative, and must be finite). terms[i] is then the i-th derivative per that unit.
 * out may alias terms[0].
 */
CDIT_API cdit_status cdit_taylor_predict(int dtype, void* out, const void* const* terms, int nterms, double k,
                                 int64_t n, int nthreads);
/**
 * In-place divided-difference update of a derivative ladder from a new value y observed `gap` steps
 * after the previous one: with L[0] = y and L[i+1] = (L[i] - old[i]) / gap for i < nvalid,
 * writes new_count = min(nvalid + 1, nlevels) levels into ladder[0..new_count-1].
 * ladder holds nlevels buffers (1 <= nlevels <= CDIT_TAYLOR_MAX_TERMS), of which the first nvalid
 * (0 <= nvalid <= nlevels) hold the previous ladder; gap must be finite and non-zero when nvalid > 0.
 * y must not alias a ladder buffer. Intermediate levels are carried in fp32 (no rounding between levels).
 */
CDIT_API cdit_status cdit_taylor_update(int dtype, void* const* ladder, int nvalid, int nlevels, const void* y,
                                double gap, int64_t n, int nthreads);

/* ------------------------------------------------------------------------------------------------
 * Ulysses all-to-all packing (docs/parallelism.md, "What runs where"), with uneven heads padded by zero heads.
 * P = group size, H = heads, Hl = ceil(H / P) heads per rank after padding, D = head dim.
 *
 * Q/K/V travel "heads -> ranks": pack_heads on the sender, unpack_seq on the receiver.
 * O travels back "seq -> ranks": pack_seq on the sender, unpack_heads on the receiver.
 * The received buffer of a QKV all-to-all is [S_glob, B, Hl, D] whether the ranks' sequence
 * lengths are equal or not (uneven "anything" mode), so the same kernels serve both modes.
 * --------------------------------------------------------------------------------------------- */
/** in [B, S, H, D] (dtype) -> out [P, S, B, Hl, D] (wire rows); heads >= H become zero rows. */
CDIT_API cdit_status cdit_ulysses_pack_heads(int dtype, int wire, void* out, const void* in, int64_t B, int64_t S,
                                     int64_t H, int64_t D, int64_t P, int nthreads);
/** in [P, S, B, Hl, D] (wire rows) -> out [B, S, H, D] (dtype); global head p*Hl + h, padded heads dropped. */
CDIT_API cdit_status cdit_ulysses_unpack_heads(int dtype, int wire, void* out, const void* in, int64_t B, int64_t S,
                                       int64_t H, int64_t D, int64_t P, int nthreads);
/** in [B, S, Hk, D] (dtype) -> out [S, B, Hl, D] (wire rows), Hk <= Hl; heads >= Hk become zero rows. */
CDIT_API cdit_status cdit_ulysses_pack_seq(int dtype, int wire, void* out, const void* in, int64_t B, int64_t S,
                                   int64_t Hk, int64_t Hl, int64_t D, int nthreads);
/** in [S, B, Hl, D] (wire rows) -> out [B, S, Hk, D] (dtype), keeping the first Hk <= Hl heads. */
CDIT_API cdit_status cdit_ulysses_unpack_seq(int dtype, int wire, void* out, const void* in, int64_t B, int64_t S,
                                     int64_t Hk, int64_t Hl, int64_t D, int nthreads);

/* ------------------------------------------------------------------------------------------------
 * Low-bit linear layers: y[M, N] = x[M, K] W[N, K]^T + b with W held quantised (docs/quantization.md).
 *
 * Canonical weight layouts (what cdit_qweight_quantize writes and serialised models store):
 *  - CDIT_QW_INT8: int8 [N][K], symmetric, q = round(w / s) clamped to +-127, s = absmax / 127.
 *  - CDIT_QW_FP8:  float8 e4m3fn bytes [N][K], q = e4m3(w / s), s = absmax / 448.
 *    Both with one fp32 scale per output row (scales[N]) or, per_tensor, one for the tensor (scales[1]).
 *  - CDIT_QW_INT4: bytes [N][K/2], input 2i in the low nibble, 2i+1 in the high one, each q + 8 with
 *    q in -8..7; per group of `group` inputs one fp32 scale d (scales[N][K/group]) with w ~ q * d, where
 *    d = m / -8 for the group's largest-magnitude value m (d may be negative).
 * An all-zero row or group gets scale 1.
 * The GEMM reads a packed layout (cdit_qweight_pack): panels of 16 output rows, inputs in pairs.
 *
 * Activations are quantised per call (dynamic), per row (token) or per tensor:
 *  - CDIT_QA_INT8_*: int8, s = absmax / 127;  CDIT_QA_FP8_*: e4m3, s = absmax / 448;
 *  - CDIT_QA_NONE (weight-only types): kept as 15-bit fixed point per row (14-bit next to fp8
 *    weights), an error of at most 2^-15 (2^-14) of the row's largest magnitude.
 * Products are exact 16-bit x 16-bit integer dot products summed in int32 and flushed to fp32 before
 * they could overflow; the fp32 steps run in one fixed order, so results are bit-identical for every
 * thread count and instruction set (and in the CUDA library).
 * --------------------------------------------------------------------------------------------- */
typedef enum cdit_qweight {
  CDIT_QW_INT8 = 0,
  CDIT_QW_FP8 = 1,
  CDIT_QW_INT4 = 2
} cdit_qweight;

typedef enum cdit_qact {
  CDIT_QA_NONE = 0,
  CDIT_QA_INT8_ROW = 1,
  CDIT_QA_INT8_TENSOR = 2,
  CDIT_QA_FP8_ROW = 3,
  CDIT_QA_FP8_TENSOR = 4
} cdit_qact;

/**
 * Quantises w [N][K] (dtype) into q (canonical layout) and scales. int4 needs an even group that
 * divides K and 1024 (32, 64, 128, ...) and no per_tensor. Returns CDIT_ERR_ARGUMENT if w holds a
 * non-finite value (q and scales are then unspecified).
 */
CDIT_API cdit_status cdit_qweight_quantize(int dtype, int qweight, const void* w, int64_t N, int64_t K, int64_t group,
                                   int per_tensor, void* q, float* scales, int nthreads);
/** Bytes of the packed layout of an [N][K] weight, or -1 for invalid arguments. */
CDIT_API int64_t cdit_qweight_packed_bytes(int qweight, int64_t N, int64_t K);
/** Canonical -> packed (cdit_qweight_packed_bytes bytes); padding is written as zero. */
CDIT_API cdit_status cdit_qweight_pack(int qweight, const void* q, int64_t N, int64_t K, void* packed, int nthreads);
/** Packed -> canonical (the exact inverse of cdit_qweight_pack). */
CDIT_API cdit_status cdit_qweight_unpack(int qweight, const void* packed, int64_t N, int64_t K, void* q, int nthreads);
/**
 * y [M][N] = dequant(quant(x [M][K])) * dequant(W)^T + bias, x, bias (N values, or NULL) and y in dtype.
 * packed/scales/group/per_tensor_w describe W as above. Runs serially below 2^23 (about 8 M)
 * multiply-adds (M * N * K), whatever nthreads says. Allocates its scratch (2 bytes per input
 * element plus a few KiB per thread) and frees it before returning.
 */
CDIT_API cdit_status cdit_qlinear(int dtype, int qact, int qweight, const void* x, int64_t M, int64_t K, const void* packed,
                          const float* scales, int64_t N, int64_t group, int per_tensor_w, const void* bias, void* y,
                          int nthreads);
/**
 * The instruction set cdit_qlinear uses here: "avx2" or "default". The environment variable
 * CACHEDIT_QLINEAR_ISA=default selects the portable path (same results, slower).
 */
CDIT_API const char* cdit_qlinear_isa(void);

/* ------------------------------------------------------------------------------------------------
 * Batch-invariant fp32 linear layer: y[M, N] = x[M, K] W[N, K]^T + bias (docs/serving.md).
 *
 * Each output is acc = 0; for k in 0..K-1: acc = fma(x[m][k], W[n][k], acc); y = acc + bias[n], in
 * that order on every path, so a row's result does not depend on M, on the other rows, on the thread
 * count or on the instruction set: a request gives the same bits alone or batched with others.
 * W is read in a packed layout: panels of 16 outputs, for each k the panel's 16 weights (zero padding).
 * Runs serially below 8 * CDIT_SERIAL_WORK (about 4 M) multiply-adds (M * N * K).
 * --------------------------------------------------------------------------------------------- */
/** Floats of the packed layout of an [N][K] weight, or -1 for invalid arguments. */
CDIT_API int64_t cdit_linear_f32_packed_floats(int64_t N, int64_t K);
/** w [N][K] -> packed (cdit_linear_f32_packed_floats floats). */
CDIT_API cdit_status cdit_linear_f32_pack(const float* w, int64_t N, int64_t K, float* packed, int nthreads);
/** y [M][N] = x [M][K] W^T + bias (N floats, or NULL); M may be 0. */
CDIT_API cdit_status cdit_linear_f32(const float* x, int64_t M, int64_t K, const float* packed, int64_t N, const float* bias,
                             float* y, int nthreads);
/** "avx2" or "default"; CACHEDIT_LINEAR_ISA=default selects the portable path (same results, slower). */
CDIT_API const char* cdit_linear_f32_isa(void);

/** What a linear layer applies to its outputs (after the bias) as it writes them (docs/kernels.md section 7). */
typedef enum cdit_activation {
  CDIT_ACT_NONE = 0,
  /** gelu with the tanh approximation (diffusers' gelu-approximate), as cdit_gelu_tanh computes it. */
  CDIT_ACT_GELU_TANH = 1
} cdit_activation;
/** cdit_linear_f32, then `activation` (a cdit_activation) on each output: one pass over y instead of two. */
CDIT_API cdit_status cdit_linear_f32_act(const float* x, int64_t M, int64_t K, const float* packed, int64_t N,
                                         const float* bias, int activation, float* y, int nthreads);
/**
 * adaLN's gated residual in the same pass: y[m][n] = residual[m][n] + gate[m / rows_per_gate][n] *
 * (x W^T + bias)[m][n], gate rows gate_stride (>= N) floats apart (rows_per_gate: tokens per batch
 * element), as one fused multiply-add (libtorch's vectorised addcmul(residual, gate, output) rounds alike).
 * y may not alias x; it may equal residual.
 */
CDIT_API cdit_status cdit_linear_f32_gated(const float* x, int64_t M, int64_t K, const float* packed, int64_t N,
                                           const float* bias, const float* residual, const float* gate,
                                           int64_t rows_per_gate, int64_t gate_stride, float* y, int nthreads);

/* ------------------------------------------------------------------------------------------------
 * bf16-compute linear layer: y[M, N] = bf16(x)[M, K] bf16(W)[N, K]^T + bias, fp32 in, accumulate, out
 * (docs/kernels.md section 6).
 *
 * x and W are rounded to bf16 (nearest even); each product of two bf16 values is exact in fp32 and
 * is added to an fp32 accumulator, inputs in pairs (odd one first), as AVX-512 BF16's vdpbf16ps does.
 * Rows are independent and K is not split, so results do not depend on M, the other rows or the
 * thread count. The portable path (CACHEDIT_LINEAR_ISA=default, or CPUs without AVX-512 BF16) agrees
 * with vdpbf16ps except that the hardware treats denormal inputs and sums as zero. W is read in a
 * packed layout: panels of 16 outputs, for each pair of inputs the panel's 16 weight pairs.
 * --------------------------------------------------------------------------------------------- */
/** bf16 elements (uint16_t) of the packed layout of an [N][K] weight, or -1 for invalid arguments. */
CDIT_API int64_t cdit_linear_bf16_packed_elements(int64_t N, int64_t K);
/** w [N][K] fp32 -> packed bf16 (cdit_linear_bf16_packed_elements values, zero padding). */
CDIT_API cdit_status cdit_linear_bf16_pack(const float* w, int64_t N, int64_t K, uint16_t* packed, int nthreads);
/** y [M][N] = bf16(x [M][K]) W^T + bias (N floats, or NULL); M may be 0. */
CDIT_API cdit_status cdit_linear_bf16(const float* x, int64_t M, int64_t K, const uint16_t* packed, int64_t N,
                                      const float* bias, float* y, int nthreads);
/** "avx512bf16" or "default" (see CACHEDIT_LINEAR_ISA above). */
CDIT_API const char* cdit_linear_bf16_isa(void);
/** cdit_linear_bf16, then `activation` (a cdit_activation) on each output. */
CDIT_API cdit_status cdit_linear_bf16_act(const float* x, int64_t M, int64_t K, const uint16_t* packed, int64_t N,
                                          const float* bias, int activation, float* y, int nthreads);
/** cdit_linear_bf16 with cdit_linear_f32_gated's gated residual. */
CDIT_API cdit_status cdit_linear_bf16_gated(const float* x, int64_t M, int64_t K, const uint16_t* packed, int64_t N,
                                            const float* bias, const float* residual, const float* gate,
                                            int64_t rows_per_gate, int64_t gate_stride, float* y, int nthreads);

/* ------------------------------------------------------------------------------------------------
 * Element-wise activations (docs/kernels.md section 7). One scalar definition per function in IEEE
 * basic operations and fused multiply-adds, so every instruction set gives the same bits.
 * --------------------------------------------------------------------------------------------- */
/**
 * y[i] = gelu_tanh(x[i]) = x / (1 + exp(-2 sqrt(2/pi) (x + 0.044715 x^3))), which is
 * 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); within a few ulp of libtorch's gelu(approximate="tanh").
 * y may equal x.
 */
CDIT_API cdit_status cdit_gelu_tanh(const float* x, int64_t n, float* y, int nthreads);

/* ------------------------------------------------------------------------------------------------
 * Attention inputs (docs/kernels.md section 8): head split, per-head RMSNorm and rotary embedding
 * of one projection (q, k or v) in one pass, for the joint text + image attention of FLUX-style DiTs.
 * --------------------------------------------------------------------------------------------- */
/**
 * out [B][H][Sa + Sb][D] from a [B][Sa][H * D] (tokens 0..Sa-1) and b [B][Sb][H * D] (tokens Sa..;
 * b may be NULL when Sb = 0). For each token and head, v = its D values, then
 *   - if wa (and wb for b's tokens) is given: v = v * (1 / sqrt(mean(v^2) + eps)) * w (RMSNorm, fp32);
 *   - if cos is given: pairs (v0, v1) -> (v0 cos - v1 sin, v1 cos + v0 sin) with the token's rows of
 *     cos and sin [Sa + Sb][D] (each product rounded, then the sum: libtorch's composite rounds alike).
 * wa and wb are both given or both NULL (wb may be NULL when Sb = 0); cos and sin likewise; D even
 * when cos is given.
 */
CDIT_API cdit_status cdit_heads_norm_rope(const float* a, int64_t Sa, const float* b, int64_t Sb, int64_t B, int64_t H,
                                          int64_t D, const float* wa, const float* wb, float eps, const float* cos,
                                          const float* sin, float* out, int nthreads);

/* ------------------------------------------------------------------------------------------------
 * Attention over short sequences (docs/kernels.md section 9), output in the token-major layout.
 * --------------------------------------------------------------------------------------------- */
/** The longest sequence cdit_attention_f32 takes (its cost grows with S^2; use a blocked kernel beyond). */
#define CDIT_ATTENTION_MAX_TOKENS 4096
/**
 * out = softmax(q k^T * scale) v for each batch element and head; q, k, v [B][H][S][D]. The output
 * goes token-major, split at token `split`: tokens 0..split-1 to out_a [B][split][H * D], the others to
 * out_b [B][S - split][H * D] (NULL when split == S; out_a NULL when split == 0). Scores and sums in
 * fp32 in a fixed order (same bits on every instruction set and thread count).
 */
CDIT_API cdit_status cdit_attention_f32(const float* q, const float* k, const float* v, int64_t B, int64_t H, int64_t S,
                                        int64_t D, float scale, int64_t split, float* out_a, float* out_b,
                                        int nthreads);

/* ------------------------------------------------------------------------------------------------
 * adaLN normalise-and-modulate (docs/kernels.md section 10).
 * --------------------------------------------------------------------------------------------- */
/**
 * y[b][s][:] = layer_norm(x[b][s][:]) * (1 + scale[b][:]) + shift[b][:] for x, y [B][S][C] (no affine
 * weights; mean and variance over C in fp32, eps inside the square root). scale and shift rows are
 * mod_stride floats apart (>= C; adaLN's chunks of one modulation vector are views into it). y may
 * not alias x.
 */
CDIT_API cdit_status cdit_layer_norm_modulate(const float* x, int64_t B, int64_t S, int64_t C, const float* scale,
                                              const float* shift, int64_t mod_stride, float eps, float* y,
                                              int nthreads);

/* ------------------------------------------------------------------------------------------------
 * Scalar float8 e4m3fn conversions (round to nearest even, saturating at +-448). For tests and tools.
 * --------------------------------------------------------------------------------------------- */
CDIT_API uint8_t cdit_fp8_e4m3_from_float(float x);
CDIT_API float cdit_fp8_e4m3_to_float(uint8_t v);

#ifdef __cplusplus
}
#endif

#endif /* CACHEDIT_KERNELS_H */
