package io.cachedit.cache.engine;

import io.cachedit.cache.BufferPrecision;
import io.cachedit.kernels.Kernels;
import io.cachedit.kernels.NativeScope;
import io.cachedit.kernels.Tensors;
import io.cachedit.kernels.Wire;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * A cached tensor held between steps, optionally at reduced precision ({@link BufferPrecision}).
 * {@link #get()} returns it in its original dtype and shape.
 */
final class HeldTensor implements AutoCloseable {
  private final NativeScope owner;
  private final Tensor held;       // kept in owner (full, bf16 copy, or fp8 rows)
  private final ScalarType dtype;  // original dtype
  private final long[] shape;
  private final BufferPrecision precision;
  private final long fullBytes;

  private HeldTensor(NativeScope owner, Tensor held, ScalarType dtype, long[] shape, BufferPrecision precision,
      long fullBytes) {
    this.owner = owner;
    this.held = owner.keep(held);
    this.dtype = dtype;
    this.shape = shape;
    this.precision = precision;
    this.fullBytes = fullBytes;
  }

  /** Holds {@code t} (a copy at reduced precision, or a handle on it at full precision) in {@code owner}. */
  static HeldTensor hold(Tensor t, BufferPrecision precision, Kernels kernels, NativeScope owner) {
    ScalarType type = t.scalar_type().intern();
    long[] shape = t.sizes().vec().get();
    long full = Tensors.bytes(t);
    boolean floating = type == ScalarType.Float || type == ScalarType.BFloat16 || type == ScalarType.Half;
    if (precision == BufferPrecision.FULL || !floating || t.numel() == 0
        || (precision == BufferPrecision.BF16 && type == ScalarType.BFloat16)) {
      return new HeldTensor(owner, t, type, shape, BufferPrecision.FULL, full);
    }
    try (PointerScope scope = new PointerScope()) {
      if (precision == BufferPrecision.BF16) {
        return new HeldTensor(owner, t.to(ScalarType.BFloat16), type, shape, precision, full);
      }
      long row = shape.length == 0 ? 1 : shape[shape.length - 1];
      Tensor rows = t.reshape(1, t.numel() / row, 1, row);
      return new HeldTensor(owner, kernels.packSeq(rows, 1, Wire.FP8_F32_SCALE), type, shape, precision, full);
    }
  }

  /** The value in the original dtype and shape, as a new handle owned by the caller's scope. */
  Tensor get(Kernels kernels) {
    return switch (precision) {
      case FULL -> new Tensor(held);  // a handle for the caller's scope; the storage stays ours
      case BF16 -> held.to(dtype);
      case FP8 -> kernels.unpackSeq(held, Wire.FP8_F32_SCALE, dtype, 1).view(shape);
    };
  }

  long[] shape() {
    return shape;
  }

  /** Whether {@code held} can take {@code value}'s elements in place (same shape and dtype, contiguous). */
  static boolean fits(Tensor held, Tensor value) {
    return held.is_contiguous() && held.scalar_type().intern() == value.scalar_type().intern()
        && io.cachedit.kernels.Tensors.sameShape(held, value) && held.device().type().intern()
        == value.device().type().intern() && held.device().index() == value.device().index();
  }

  /**
   * Overwrites a full-precision buffer with {@code after - before} in place; false (nothing done) if
   * this buffer is not full precision or does not fit. Callers never keep what {@link #get} returned
   * past the step, so reuse is safe.
   */
  boolean overwriteWithDifference(Tensor after, Tensor before, BufferPrecision wanted) {
    if (precision != BufferPrecision.FULL || wanted != BufferPrecision.FULL || !fits(held, after)) {
      return false;
    }
    org.bytedeco.pytorch.global.torch.sub_out(held, after, before);
    return true;
  }

  /** Bytes actually held. */
  long bytes() {
    return Tensors.bytes(held);
  }

  /** Bytes the same value takes at full precision. */
  long fullBytes() {
    return fullBytes;
  }

  @Override
  public void close() {
    owner.release(held);
  }
}
