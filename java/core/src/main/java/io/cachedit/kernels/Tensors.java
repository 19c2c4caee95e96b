package io.cachedit.kernels;

import org.bytedeco.pytorch.Tensor;

/** Small tensor facts the engine needs often. Ownership of tensors is {@link NativeScope}'s. */
public final class Tensors {
  private Tensors() {}

  /** Bytes of the tensor's elements (0 for null). */
  public static long bytes(Tensor t) {
    return t == null || t.isNull() ? 0 : t.nbytes();
  }

  /** Whether the tensor is fp32 on the CPU: what cachedit's fused CPU kernels take. */
  public static boolean cpuFloat(Tensor t) {
    return t != null && !t.is_cuda() && t.scalar_type().intern() == org.bytedeco.pytorch.global.torch.ScalarType.Float;
  }

  /** Whether two tensors have the same shape. */
  public static boolean sameShape(Tensor a, Tensor b) {
    if (a.dim() != b.dim()) {
      return false;
    }
    for (int i = 0; i < a.dim(); i++) {
      if (a.size(i) != b.size(i)) {
        return false;
      }
    }
    return true;
  }
}
