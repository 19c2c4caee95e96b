package io.cachedit.models.common;

import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/** Rotary position embeddings with diffusers' layouts (embeddings.py). */
public final class Rope {
  private Rope() {}

  /** A pair of [S, D] tables (fp32). */
  public record CosSin(Tensor cos, Tensor sin) {}

  /**
   * diffusers' {@code get_1d_rotary_pos_embed(dim, pos, theta, use_real=True,
   * repeat_interleave_real=True)}: frequencies {@code theta^(-2i/dim)} in fp64, outer product with the
   * positions, cos/sin repeated pairwise to [S, dim], returned in fp32.
   */
  public static CosSin rotary1d(int dim, Tensor positions, double theta) {
    Tensor i = torch.arange(new Scalar(0), new Scalar(dim), new Scalar(2),
        new org.bytedeco.pytorch.TensorOptions(ScalarType.Double)).narrow(0, 0, dim / 2);
    Tensor freqs = torch.pow(new Scalar(theta), i.div(new Scalar((double) dim))).reciprocal();
    Tensor angles = torch.outer(positions.to(ScalarType.Double), freqs);
    Tensor cos = angles.cos().repeat_interleave(2L, new org.bytedeco.pytorch.LongOptional(1L), new org.bytedeco.pytorch.LongOptional()).to(ScalarType.Float);
    Tensor sin = angles.sin().repeat_interleave(2L, new org.bytedeco.pytorch.LongOptional(1L), new org.bytedeco.pytorch.LongOptional()).to(ScalarType.Float);
    return new CosSin(cos, sin);
  }

  /** FLUX's {@code FluxPosEmbed}: per-axis tables of {@code ids [S, axes]} concatenated along D. */
  public static CosSin multiAxis(Tensor ids, int[] axesDims, double theta) {
    TensorVector cos = new TensorVector();
    TensorVector sin = new TensorVector();
    Tensor pos = ids.to(ScalarType.Float);
    for (int a = 0; a < axesDims.length; a++) {
      CosSin cs = rotary1d(axesDims[a], pos.select(1, a), theta);
      cos.push_back(cs.cos());
      sin.push_back(cs.sin());
    }
    return new CosSin(torch.cat(cos, -1), torch.cat(sin, -1));
  }

  /**
   * diffusers' {@code apply_rotary_emb(x, (cos, sin), use_real=True, use_real_unbind_dim=-1)} for x
   * [B, H, S, D]: pairs (x0, x1) rotate to (x0 cos - x1 sin, x1 cos + x0 sin), computed in fp32 and
   * cast back to x's dtype.
   */
  public static Tensor apply(Tensor x, CosSin freqs) {
    return rotate(x, new CosSin(freqs.cos().unsqueeze(0).unsqueeze(0), freqs.sin().unsqueeze(0).unsqueeze(0)));
  }

  /**
   * Z-Image's {@code RopeEmbedder}: per axis, angles {@code pos * theta^(-2i/d)} computed in fp64 and
   * rounded to fp32 <i>before</i> cos/sin (which are then fp32, as {@code torch.polar} of fp32 angles);
   * axes concatenated and repeated pairwise to [S, D]. {@code ids} is [S, axes] (integer positions).
   */
  public static CosSin multiAxisFp32Angles(Tensor ids, int[] axesDims, double theta) {
    TensorVector cos = new TensorVector();
    TensorVector sin = new TensorVector();
    Tensor pos = ids.to(ScalarType.Double);
    for (int a = 0; a < axesDims.length; a++) {
      int dim = axesDims[a];
      Tensor i = torch.arange(new Scalar(0), new Scalar(dim), new Scalar(2),
          new org.bytedeco.pytorch.TensorOptions(ScalarType.Double));
      Tensor freqs = torch.pow(new Scalar(theta), i.div(new Scalar((double) dim))).reciprocal();
      Tensor angles = torch.outer(pos.select(1, a), freqs).to(ScalarType.Float);
      cos.push_back(angles.cos());
      sin.push_back(angles.sin());
    }
    org.bytedeco.pytorch.LongOptional lastDim = new org.bytedeco.pytorch.LongOptional(-1L);
    return new CosSin(torch.cat(cos, -1).repeat_interleave(2L, lastDim, new org.bytedeco.pytorch.LongOptional()),
        torch.cat(sin, -1).repeat_interleave(2L, lastDim, new org.bytedeco.pytorch.LongOptional()));
  }

  /** {@link #apply} with per-sample tables: x [B, H, S, D], cos and sin [B, S, D]. */
  public static Tensor applyBatched(Tensor x, CosSin freqs) {
    return rotate(x, new CosSin(freqs.cos().unsqueeze(1), freqs.sin().unsqueeze(1)));
  }

  private static Tensor rotate(Tensor x, CosSin broadcastable) {
    ScalarType type = x.scalar_type().intern();
    long[] shape = x.sizes().vec().get();
    long[] pairShape = java.util.Arrays.copyOf(shape, shape.length + 1);
    pairShape[shape.length - 1] = shape[shape.length - 1] / 2;
    pairShape[shape.length] = 2;
    Tensor pairs = x.reshape(pairShape);
    Tensor real = pairs.select(-1, 0);
    Tensor imag = pairs.select(-1, 1);
    Tensor rotated = torch.stack(new TensorVector(imag.neg(), real), -1).flatten(-2, -1);
    return x.to(ScalarType.Float).mul(broadcastable.cos()).add(rotated.to(ScalarType.Float).mul(broadcastable.sin()))
        .to(type);
  }
}
