package io.cachedit.models.common;

import org.bytedeco.pytorch.Context;
import org.bytedeco.pytorch.DoubleOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;

/**
 * Scaled dot-product attention through libtorch's {@code scaled_dot_product_attention}, with a
 * selectable backend. libtorch keeps the backend switches process-wide, so a forced backend is
 * set and restored around the call under one lock.
 */
public final class Attention {
  /** libtorch SDPA backends. */
  public enum Backend {
    /** libtorch chooses (flash on CPU and GPU where it applies, else math). */
    AUTO,
    MATH,
    FLASH,
    EFFICIENT,
    CUDNN
  }

  private static final Object BACKEND_LOCK = new Object();

  private Attention() {}

  /** q, k, v [B, H, S, D]; mask broadcastable to [B, H, Sq, Sk] (boolean or additive) or null. */
  public static Tensor sdpa(Tensor q, Tensor k, Tensor v, Tensor mask, Backend backend) {
    if (backend == null || backend == Backend.AUTO) {
      return call(q, k, v, mask);
    }
    synchronized (BACKEND_LOCK) {
      Context ctx = torch.globalContext();
      boolean flash = ctx.userEnabledFlashSDP();
      boolean mem = ctx.userEnabledMemEfficientSDP();
      boolean math = ctx.userEnabledMathSDP();
      boolean cudnn = ctx.userEnabledCuDNNSDP();
      try {
        ctx.setSDPUseFlash(backend == Backend.FLASH);
        ctx.setSDPUseMemEfficient(backend == Backend.EFFICIENT);
        ctx.setSDPUseMath(backend == Backend.MATH);
        ctx.setSDPUseCuDNN(backend == Backend.CUDNN);
        return call(q, k, v, mask);
      } finally {
        ctx.setSDPUseFlash(flash);
        ctx.setSDPUseMemEfficient(mem);
        ctx.setSDPUseMath(math);
        ctx.setSDPUseCuDNN(cudnn);
      }
    }
  }

  private static Tensor call(Tensor q, Tensor k, Tensor v, Tensor mask) {
    if (mask == null) {
      return torch.scaled_dot_product_attention(q, k, v);
    }
    return torch.scaled_dot_product_attention(q, k, v, new TensorOptional(mask), 0.0, false, new DoubleOptional(),
        false);
  }

  /** [B, S, H*D] -> [B, H, S, D]. */
  public static Tensor heads(Tensor x, long heads) {
    long b = x.size(0);
    long s = x.size(1);
    return x.view(b, s, heads, x.size(2) / heads).transpose(1, 2);
  }

  /** [B, H, S, D] -> [B, S, H*D]. */
  public static Tensor merge(Tensor x) {
    long b = x.size(0);
    long s = x.size(2);
    return x.transpose(1, 2).reshape(b, s, x.size(1) * x.size(3));
  }
}
