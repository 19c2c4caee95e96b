package io.cachedit.models.common;

import io.cachedit.error.ConfigException;
import io.cachedit.kernels.Tensors;
import java.util.Locale;
import org.bytedeco.pytorch.Context;
import org.bytedeco.pytorch.DoubleOptional;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.ScalarTypeOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * Single-device attention with a chosen {@link SdpBackend}. {@code AUTO} calls cachedit's kernel for
 * short CPU fp32 sequences and libtorch's {@code scaled_dot_product_attention} otherwise, and
 * {@code MATH} computes the composite itself; neither touches
 * process-wide state. libtorch's C++ API selects the fused kernels (FLASH, EFFICIENT, CUDNN) only
 * through process-wide switches, so those backends set them around the call under one lock and restore
 * them: the only global state attention has, and only when a fused kernel is forced. Immutable.
 */
public final class Sdpa implements AttentionBackend {
  private static final Object SWITCHES = new Object();  // libtorch's SDP switches are per process

  private final SdpBackend backend;

  private Sdpa(SdpBackend backend) {
    this.backend = backend;
  }

  /**
   * The fastest kernel for the inputs: cachedit's attention kernel for unmasked CPU fp32 self-attention
   * up to {@link Attention#FUSED_MAX_TOKENS} tokens (docs/kernels.md section 9), else libtorch's choice.
   */
  public static final Sdpa AUTO = new Sdpa(SdpBackend.AUTO);

  /** The composite, no fused kernel. */
  public static final Sdpa MATH = new Sdpa(SdpBackend.MATH);

  public static Sdpa of(SdpBackend backend) {
    return switch (backend == null ? SdpBackend.AUTO : backend) {
      case AUTO -> AUTO;
      case MATH -> MATH;
      default -> new Sdpa(backend);
    };
  }

  /** The backend named {@code name} (auto, math, flash, efficient, cudnn; any case). */
  public static Sdpa parse(String name) {
    for (SdpBackend b : SdpBackend.values()) {
      if (b.name().equalsIgnoreCase(name == null ? "" : name.trim())) {
        return of(b);
      }
    }
    throw new ConfigException("attention", name, "must be one of auto, math, flash, efficient, cudnn");
  }

  public SdpBackend backend() {
    return backend;
  }

  @Override
  public Tensor attend(Tensor q, Tensor k, Tensor v, Tensor mask) {
    return switch (backend) {
      case AUTO -> fused(q, k, v, mask);
      case MATH -> math(q, k, v, mask);
      default -> forced(q, k, v, mask);
    };
  }

  private static Tensor fused(Tensor q, Tensor k, Tensor v, Tensor mask) {
    if (mask == null) {
      if (cachedItKernelApplies(q, k, v)) {  // [B, S, H*D] viewed as [B, H, S, D]: merge() is then a view
        Tensor out = Attention.attendTokenMajor(q, k, v, q.size(2))[0];
        return out.view(q.size(0), q.size(2), q.size(1), q.size(3)).transpose(1, 2);
      }
      return torch.scaled_dot_product_attention(q, k, v);
    }
    return torch.scaled_dot_product_attention(q, k, v, new TensorOptional(mask), 0.0, false, new DoubleOptional(),
        false);
  }

  /** Self-attention shapes on CPU fp32 up to {@link Attention#FUSED_MAX_TOKENS} tokens. */
  private static boolean cachedItKernelApplies(Tensor q, Tensor k, Tensor v) {
    return q.dim() == 4 && Tensors.cpuFloat(q) && Tensors.cpuFloat(k) && Tensors.cpuFloat(v)
        && q.size(2) <= Attention.FUSED_MAX_TOKENS && Tensors.sameShape(q, k) && Tensors.sameShape(q, v);
  }

  /** {@code softmax(q k^T / sqrt(D) + mask) v} with fp32 (or wider) scores, in q's dtype. */
  static Tensor math(Tensor q, Tensor k, Tensor v, Tensor mask) {
    ScalarType type = q.scalar_type().intern();
    boolean wide = type == ScalarType.Float || type == ScalarType.Double;
    Tensor qf = wide ? q : q.to(ScalarType.Float);
    Tensor kf = wide ? k : k.to(ScalarType.Float);
    Tensor vf = wide ? v : v.to(ScalarType.Float);
    double scale = 1.0 / Math.sqrt(q.size(-1));
    Tensor scores = qf.matmul(kf.transpose(-2, -1)).mul(new Scalar(scale));
    if (mask != null) {
      if (mask.scalar_type().intern() == ScalarType.Bool) {
        scores = scores.masked_fill(mask.logical_not(), new Scalar(Double.NEGATIVE_INFINITY));
      } else {
        scores = scores.add(mask.to(scores.scalar_type()));
      }
    }
    Tensor out = scores.softmax(-1, new ScalarTypeOptional()).matmul(vf);
    return wide ? out : out.to(type);
  }

  private Tensor forced(Tensor q, Tensor k, Tensor v, Tensor mask) {
    synchronized (SWITCHES) {
      Context ctx = torch.globalContext();
      boolean flash = ctx.userEnabledFlashSDP();
      boolean mem = ctx.userEnabledMemEfficientSDP();
      boolean math = ctx.userEnabledMathSDP();
      boolean cudnn = ctx.userEnabledCuDNNSDP();
      try {
        ctx.setSDPUseFlash(backend == SdpBackend.FLASH);
        ctx.setSDPUseMemEfficient(backend == SdpBackend.EFFICIENT);
        ctx.setSDPUseMath(false);
        ctx.setSDPUseCuDNN(backend == SdpBackend.CUDNN);
        return fused(q, k, v, mask);
      } finally {
        ctx.setSDPUseFlash(flash);
        ctx.setSDPUseMemEfficient(mem);
        ctx.setSDPUseMath(math);
        ctx.setSDPUseCuDNN(cudnn);
      }
    }
  }

  @Override
  public String toString() {
    return "sdpa(" + backend.name().toLowerCase(Locale.ROOT) + ")";
  }
}
