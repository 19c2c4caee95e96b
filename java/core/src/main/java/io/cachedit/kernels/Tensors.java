package io.cachedit.kernels;

import org.bytedeco.pytorch.Tensor;

/**
 * Ownership of tensors that outlive the {@code PointerScope} they were made in (cache buffers,
 * weights). {@link #keep} returns a new handle to the same storage that no scope will free;
 * {@link #release} frees that handle. Everything else should live in a scope.
 */
public final class Tensors {
  private Tensors() {}

  /** A handle on {@code t}'s storage that survives the closing of any open scope; free it with {@link #release}. */
  public static Tensor keep(Tensor t) {
    if (t == null) {
      return null;
    }
    Tensor owned = new Tensor(t);
    owned.retainReference();  // +1 for us; an enclosing scope's close only drops its own reference
    return owned;
  }

  /** Drops a handle made by {@link #keep}; null is ignored. */
  public static void release(Tensor kept) {
    if (kept != null && !kept.isNull()) {
      kept.releaseReference();
    }
  }

  /** Bytes of the tensor's elements (0 for null). */
  public static long bytes(Tensor t) {
    return t == null || t.isNull() ? 0 : t.nbytes();
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
