package io.cachedit.models.common;

import static io.cachedit.kernels.Tensors.cpuFloat;

import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

/** The head reshapes every attention of the models shares. */
public final class Attention {
  private Attention() {}

  /** [B, S, H*D] -> [B, H, S, D]. */
  public static Tensor heads(Tensor x, long heads) {
    long b = x.size(0);
    long s = x.size(1);
    return x.view(b, s, heads, x.size(2) / heads).transpose(1, 2);
  }

  /**
   * One input of joint attention over two token groups (text first, then image): each group's
   * projection [B, S_i, H*D] split into heads, RMSNorm'd with its own weight (diffusers' {@code RMSNorm},
   * {@link Norms#rmsNorm}), the groups concatenated along the sequence and the rotary embedding applied
   * ({@link Rope#apply}): [B, H, S_a + S_b, D]. On CPU fp32 tensors this is one pass of cachedit's
   * kernel instead of about a dozen libtorch ops (docs/kernels.md section 8; same values up to the
   * rounding of the norm's sum).
   *
   * @param b the second group, or null (then wb is ignored)
   * @param wa RMSNorm weight [D] of a, or null for no norm (then wb too)
   * @param rope tables over all S_a + S_b tokens, or null for no rotation
   */
  public static Tensor jointHeads(Tensor a, Tensor b, long heads, Tensor wa, Tensor wb, double eps, Rope.CosSin rope) {
    if (fusable(a, b, wa, wb, rope)) {
      return io.cachedit.kernels.Kernels.forComputePool().headsNormRope(a, b, heads,
          wa, b == null ? null : wb, eps, rope == null ? null : rope.cos(), rope == null ? null : rope.sin());
    }
    Tensor ha = heads(a, heads);
    if (wa != null) {
      ha = Norms.rmsNorm(ha, wa, eps);
    }
    Tensor joint = ha;
    if (b != null) {
      Tensor hb = heads(b, heads);
      if (wa != null) {
        hb = Norms.rmsNorm(hb, wb, eps);
      }
      joint = torch.cat(new TensorVector(ha, hb), 2);
    }
    return rope == null ? joint : Rope.apply(joint, rope);
  }

  /** Sequences up to this long take cachedit's attention kernel on the CPU (measured faster there). */
  public static final long FUSED_MAX_TOKENS = 1024;

  /**
   * Whether {@link #attendTokenMajor} applies: the default local backend ({@link Sdpa#AUTO}, no
   * parallelism, no mask) on CPU fp32 activations of at most {@value #FUSED_MAX_TOKENS} tokens.
   */
  public static boolean tokenMajorApplies(AttentionBackend backend, Tensor x, long tokens) {
    return backend == Sdpa.AUTO && cpuFloat(x) && tokens <= FUSED_MAX_TOKENS;
  }

  /**
   * {@code merge(attend(q, k, v))} split at token {@code split} ({text, image} for joint attention; an
   * empty part is null) in one pass of cachedit's kernel: no [B, H, S, D] output, no merge copy, no
   * copies of the two parts (docs/kernels.md section 9). Check {@link #tokenMajorApplies} first.
   */
  public static Tensor[] attendTokenMajor(Tensor q, Tensor k, Tensor v, long split) {
    return io.cachedit.kernels.Kernels.forComputePool().attentionTokenMajor(q, k, v,
        split);
  }

  private static boolean fusable(Tensor a, Tensor b, Tensor wa, Tensor wb, Rope.CosSin rope) {
    return cpuFloat(a) && (b == null || cpuFloat(b)) && (wa == null || cpuFloat(wa))
        && (b == null || wa == null || cpuFloat(wb)) && (rope == null || cpuFloat(rope.cos()) && cpuFloat(rope.sin()));
  }


  /** [B, H, S, D] -> [B, S, H*D]. */
  public static Tensor merge(Tensor x) {
    long b = x.size(0);
    long s = x.size(2);
    return x.transpose(1, 2).reshape(b, s, x.size(1) * x.size(3));
  }
}
