package io.cachedit.models.common;

import io.cachedit.io.WeightScope;
import io.cachedit.kernels.NativeRuntime;
import java.util.Map;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * What every diffusers model class shares: its {@code _class_name}, the dtype it was loaded in and the
 * parameters its {@link WeightScope} handed out (owned, released on {@link #close}). Subclasses take
 * their weights in the constructor, end it with {@link #finishLoading}, and call {@link #ensureOpen()}
 * first in every public computation.
 */
public abstract class AbstractDiffusersModel implements DiffusersModel {
  private final String className;
  /** The dtype of the weights (modules diffusers keeps in fp32 may hold fp32 tensors). */
  protected final ScalarType dtype;
  private WeightScope.Parameters parameters;

  protected AbstractDiffusersModel(String className, WeightScope w) {
    NativeRuntime.initialize();
    this.className = className;
    this.dtype = w.dtype();
  }

  /** Checks that every checkpoint tensor was used (see {@link WeightScope#finish}) and takes ownership. */
  protected final void finishLoading(WeightScope w) {
    this.parameters = w.finish();
  }

  /** Throws {@link IllegalStateException} naming this model if it was closed. */
  protected final void ensureOpen() {
    if (parameters == null || parameters.isClosed()) {
      throw new IllegalStateException(className + " " + (parameters == null ? "is not loaded yet" : "was closed")
          + "; its weights are gone: load the model again");
    }
  }

  @Override
  public final String className() {
    return className;
  }

  @Override
  public final void checkWeightsUnchanged() {
    ensureOpen();
    parameters.checkUnchanged();
  }

  @Override
  public final Map<String, Tensor> parameters() {
    ensureOpen();
    return parameters.asMap();
  }

  @Override
  public final Map<String, Linear> linearLayers() {
    ensureOpen();
    Map<String, Linear> out = new java.util.LinkedHashMap<>();
    for (Map.Entry<String, Object> e : parameters.modules().entrySet()) {
      if (e.getValue() instanceof Linear l) {
        out.put(e.getKey(), l);
      }
    }
    return java.util.Collections.unmodifiableMap(out);
  }

  @Override
  public final ScalarType dtype() {
    return dtype;
  }

  /** Frees the weights; idempotent. */
  @Override
  public void close() {
    if (parameters != null) {
      parameters.close();
    }
  }
}
