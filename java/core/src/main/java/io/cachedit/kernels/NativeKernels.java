package io.cachedit.kernels;

import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.annotation.Cast;
import org.bytedeco.javacpp.annotation.Name;
import org.bytedeco.javacpp.annotation.NoException;
import org.bytedeco.javacpp.annotation.Platform;

/**
 * JavaCPP binding of libcachedit_kernels.so (native/cachedit_kernels.h). Addresses are passed as
 * {@code long}, the cheapest JNI form (BUILD-NOTES section 1). Only {@link Kernels} calls this.
 */
@Platform(value = "linux-x86_64", compiler = "cpp17", include = "cachedit_kernels.h", link = "cachedit_kernels")
@NoException
final class NativeKernels {
  static {
    // libtorch first (with the process's native defaults): it brings the libgomp.so.1 our OpenMP
    // kernels must bind to (BUILD-NOTES 0).
    NativeRuntime.initialize();
    Loader.load(NativeKernels.class);
  }

  private NativeKernels() {}

  /** Forces the class (and the libraries) to load. */
  static void ensureLoaded() {}

  @Name("cdit_version")
  static native @Cast("const char*") String version();

  @Name("cdit_status_string")
  static native @Cast("const char*") String statusString(int status);

  /** Why this thread's last failing call failed: function, argument and value (per thread). */
  @Name("cdit_last_error")
  static native @Cast("const char*") String lastError();

  @Name("cdit_cpu_isa")
  static native @Cast("const char*") String cpuIsa();

  @Name("cdit_wire_row_bytes")
  static native long wireRowBytes(int dtype, int wire, long headDim);

  @Name("cdit_rel_l1_sums")
  static native int relL1Sums(int dtype, @Cast("const void*") long a, @Cast("const void*") long b, long n,
      int nthreads, @Cast("double*") double[] sumAbsDiff, @Cast("double*") double[] sumAbsA);

  @Name("cdit_rel_l1_residual_sums")
  static native int relL1ResidualSums(int dtype, @Cast("const void*") long prev, @Cast("const void*") long after,
      @Cast("const void*") long before, long n, int nthreads, @Cast("double*") double[] sumAbsDiff,
      @Cast("double*") double[] sumAbsPrev);

  @Name("cdit_taylor_predict")
  static native int taylorPredict(int dtype, @Cast("void*") long out, @Cast("const void* const*") long[] terms,
      int nterms, double k, long n, int nthreads);

  @Name("cdit_taylor_update")
  static native int taylorUpdate(int dtype, @Cast("void* const*") long[] ladder, int nvalid, int nlevels,
      @Cast("const void*") long y, double gap, long n, int nthreads);

  @Name("cdit_ulysses_pack_heads")
  static native int packHeads(int dtype, int wire, @Cast("void*") long out, @Cast("const void*") long in,
      long b, long s, long h, long d, long p, int nthreads);

  @Name("cdit_ulysses_unpack_heads")
  static native int unpackHeads(int dtype, int wire, @Cast("void*") long out, @Cast("const void*") long in,
      long b, long s, long h, long d, long p, int nthreads);

  @Name("cdit_ulysses_pack_seq")
  static native int packSeq(int dtype, int wire, @Cast("void*") long out, @Cast("const void*") long in,
      long b, long s, long hk, long hl, long d, int nthreads);

  @Name("cdit_ulysses_unpack_seq")
  static native int unpackSeq(int dtype, int wire, @Cast("void*") long out, @Cast("const void*") long in,
      long b, long s, long hk, long hl, long d, int nthreads);

  @Name("cdit_qweight_quantize")
  static native int qweightQuantize(int dtype, int qweight, @Cast("const void*") long w, long n, long k, long group,
      int perTensor, @Cast("void*") long q, @Cast("float*") long scales, int nthreads);

  @Name("cdit_qweight_packed_bytes")
  static native long qweightPackedBytes(int qweight, long n, long k);

  @Name("cdit_qweight_pack")
  static native int qweightPack(int qweight, @Cast("const void*") long q, long n, long k, @Cast("void*") long packed,
      int nthreads);

  @Name("cdit_qweight_unpack")
  static native int qweightUnpack(int qweight, @Cast("const void*") long packed, long n, long k,
      @Cast("void*") long q, int nthreads);

  @Name("cdit_qlinear")
  static native int qlinear(int dtype, int qact, int qweight, @Cast("const void*") long x, long m, long k,
      @Cast("const void*") long packed, @Cast("const float*") long scales, long n, long group, int perTensorW,
      @Cast("const void*") long bias, @Cast("void*") long y, int nthreads);

  @Name("cdit_qlinear_isa")
  static native @Cast("const char*") String qlinearIsa();

  @Name("cdit_linear_f32_packed_floats")
  static native long linearF32PackedFloats(long n, long k);

  @Name("cdit_linear_f32_pack")
  static native int linearF32Pack(@Cast("const float*") long w, long n, long k, @Cast("float*") long packed,
      int nthreads);

  @Name("cdit_linear_f32")
  static native int linearF32(@Cast("const float*") long x, long m, long k, @Cast("const float*") long packed, long n,
      @Cast("const float*") long bias, @Cast("float*") long y, int nthreads);

  @Name("cdit_linear_f32_isa")
  static native @Cast("const char*") String linearF32Isa();

  @Name("cdit_linear_f32_act")
  static native int linearF32Act(@Cast("const float*") long x, long m, long k, @Cast("const float*") long packed,
      long n, @Cast("const float*") long bias, int activation, @Cast("float*") long y, int nthreads);

  @Name("cdit_linear_bf16_act")
  static native int linearBf16Act(@Cast("const float*") long x, long m, long k, @Cast("const uint16_t*") long packed,
      long n, @Cast("const float*") long bias, int activation, @Cast("float*") long y, int nthreads);

  @Name("cdit_linear_f32_gated")
  static native int linearF32Gated(@Cast("const float*") long x, long m, long k, @Cast("const float*") long packed,
      long n, @Cast("const float*") long bias, @Cast("const float*") long residual, @Cast("const float*") long gate,
      long rowsPerGate, long gateStride, @Cast("float*") long y, int nthreads);

  @Name("cdit_linear_bf16_gated")
  static native int linearBf16Gated(@Cast("const float*") long x, long m, long k,
      @Cast("const uint16_t*") long packed, long n, @Cast("const float*") long bias,
      @Cast("const float*") long residual, @Cast("const float*") long gate, long rowsPerGate, long gateStride,
      @Cast("float*") long y, int nthreads);

  @Name("cdit_layer_norm_modulate")
  static native int layerNormModulate(@Cast("const float*") long x, long batch, long tokens, long channels,
      @Cast("const float*") long scale, @Cast("const float*") long shift, long modStride, float eps,
      @Cast("float*") long y, int nthreads);

  @Name("cdit_gelu_tanh")
  static native int geluTanh(@Cast("const float*") long x, long n, @Cast("float*") long y, int nthreads);

  @Name("cdit_attention_f32")
  static native int attentionF32(@Cast("const float*") long q, @Cast("const float*") long k,
      @Cast("const float*") long v, long batch, long heads, long tokens, long dim, float scale, long split,
      @Cast("float*") long outA, @Cast("float*") long outB, int nthreads);

  @Name("cdit_heads_norm_rope")
  static native int headsNormRope(@Cast("const float*") long a, long sa, @Cast("const float*") long b, long sb,
      long batch, long heads, long dim, @Cast("const float*") long wa, @Cast("const float*") long wb, float eps,
      @Cast("const float*") long cos, @Cast("const float*") long sin, @Cast("float*") long out, int nthreads);

  @Name("cdit_linear_bf16_packed_elements")
  static native long linearBf16PackedElements(long n, long k);

  @Name("cdit_linear_bf16_pack")
  static native int linearBf16Pack(@Cast("const float*") long w, long n, long k, @Cast("uint16_t*") long packed,
      int nthreads);

  @Name("cdit_linear_bf16")
  static native int linearBf16(@Cast("const float*") long x, long m, long k, @Cast("const uint16_t*") long packed,
      long n, @Cast("const float*") long bias, @Cast("float*") long y, int nthreads);

  @Name("cdit_linear_bf16_isa")
  static native @Cast("const char*") String linearBf16Isa();

  @Name("cdit_fp8_e4m3_from_float")
  static native @Cast("uint8_t") byte fp8FromFloat(float x);

  @Name("cdit_fp8_e4m3_to_float")
  static native float fp8ToFloat(@Cast("uint8_t") byte v);
}
