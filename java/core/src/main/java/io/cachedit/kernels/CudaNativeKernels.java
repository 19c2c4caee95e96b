package io.cachedit.kernels;

import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.annotation.Cast;
import org.bytedeco.javacpp.annotation.Name;
import org.bytedeco.javacpp.annotation.NoException;
import org.bytedeco.javacpp.annotation.Platform;

/**
 * JavaCPP binding of libcachedit_cuda.so (cuda/cachedit_cuda.h). The library links the CUDA
 * runtime statically and loads everywhere; {@link #available()} says whether kernels can run.
 */
@Platform(value = "linux-x86_64", compiler = "cpp17", include = "cachedit_cuda.h", link = "cachedit_cuda")
@NoException
final class CudaNativeKernels {
  static {
    NativeKernels.ensureLoaded();
    Loader.load(CudaNativeKernels.class);
  }

  private CudaNativeKernels() {}

  @Name("cdit_cuda_built")
  static native int built();

  @Name("cdit_cuda_available")
  static native int available();

  @Name("cdit_cuda_last_error")
  static native @Cast("const char*") String lastError();

  @Name("cdit_cuda_rel_l1_sums")
  static native int relL1Sums(int dtype, @Cast("const void*") long a, @Cast("const void*") long b, long n,
      @Cast("double*") long deviceOut, @Cast("void*") long stream);

  @Name("cdit_cuda_rel_l1_residual_sums")
  static native int relL1ResidualSums(int dtype, @Cast("const void*") long prev, @Cast("const void*") long after,
      @Cast("const void*") long before, long n, @Cast("double*") long deviceOut, @Cast("void*") long stream);

  @Name("cdit_cuda_taylor_predict")
  static native int taylorPredict(int dtype, @Cast("void*") long out, @Cast("const void* const*") long[] terms,
      int nterms, double k, long n, @Cast("void*") long stream);

  @Name("cdit_cuda_qlinear")
  static native int qlinear(int dtype, int qact, int qweight, @Cast("const void*") long x, long m, long k,
      @Cast("const void*") long packed, @Cast("const float*") long scales, long n, long group, int perTensorW,
      @Cast("const void*") long bias, @Cast("void*") long y, @Cast("void*") long stream);

  @Name("cdit_cuda_taylor_update")
  static native int taylorUpdate(int dtype, @Cast("void* const*") long[] ladder, int nvalid, int nlevels,
      @Cast("const void*") long y, double gap, long n, @Cast("void*") long stream);

  @Name("cdit_cuda_ulysses_pack_heads")
  static native int packHeads(int dtype, int wire, @Cast("void*") long out, @Cast("const void*") long in,
      long b, long s, long h, long d, long p, @Cast("void*") long stream);

  @Name("cdit_cuda_ulysses_unpack_heads")
  static native int unpackHeads(int dtype, int wire, @Cast("void*") long out, @Cast("const void*") long in,
      long b, long s, long h, long d, long p, @Cast("void*") long stream);

  @Name("cdit_cuda_ulysses_pack_seq")
  static native int packSeq(int dtype, int wire, @Cast("void*") long out, @Cast("const void*") long in,
      long b, long s, long hk, long hl, long d, @Cast("void*") long stream);

  @Name("cdit_cuda_ulysses_unpack_seq")
  static native int unpackSeq(int dtype, int wire, @Cast("void*") long out, @Cast("const void*") long in,
      long b, long s, long hk, long hl, long d, @Cast("void*") long stream);
}
