package io.cachedit.models.common;

import io.cachedit.io.WeightScope;
import io.cachedit.kernels.NativeRuntime;
import java.util.Map;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * What every diffusers model class shares: its {@code _class_name}, the dtype it was loaded in, the
 * parameters its {@link WeightScope} handed out (owned, released on {@link #close}) and the SDPA
 * backend. Subclasses take their weights in the constructor and end it with {@link #finishLoading}.
 */
public abstract class AbstractDiffusersModel implements DiffusersModel {
  private final String className;
  /** The dtype of the weights (modules diffusers keeps in fp32 may hold fp32 tensors). */
  protected final ScalarType dtype;
  private WeightScope.Parameters parameters;
  private volatile Attention.Backend backend = Attention.Backend.AUTO;

  protected AbstractDiffusersModel(String className, WeightScope w) {
    NativeRuntime.initialize();
    this.className = className;
    this.dtype = w.dtype();
  }

  /** Checks that every checkpoint tensor was used (see {@link WeightScope#finish}) and takes ownership. */
  protected final void finishLoading(WeightScope w) {
    this.parameters = w.finish();
  }

  /** The backend attention calls should use now. */
  protected final Attention.Backend backend() {
    return backend;
  }

  @Override
  public final void setAttentionBackend(Attention.Backend backend) {
    this.backend = backend == null ? Attention.Backend.AUTO : backend;
  }

  @Override
  public final String className() {
    return className;
  }

  @Override
  public final Map<String, Tensor> parameters() {
    return parameters.asMap();
  }

  @Override
  public final ScalarType dtype() {
    return dtype;
  }

  @Override
  public void close() {
    parameters.close();
  }
}
