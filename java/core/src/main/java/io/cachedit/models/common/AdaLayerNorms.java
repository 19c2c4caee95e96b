package io.cachedit.models.common;

import static io.cachedit.kernels.Tensors.cpuFloat;

import io.cachedit.io.WeightScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/** diffusers' adaptive layer norms (normalization.py), keys {@code linear.weight/bias}. */
public final class AdaLayerNorms {
  private AdaLayerNorms() {}

  /** {@code x * (1 + scale[:, None]) + shift[:, None]} for x [B, S, C] and scale, shift [B, C]. */
  public static Tensor modulate(Tensor x, Tensor shift, Tensor scale) {
    // one pass over x instead of two (same roundings: the product, then the sum)
    return torch.addcmul(shift.unsqueeze(1), x, scale.unsqueeze(1).add(new Scalar(1.0)));
  }

  /**
   * {@code modulate(layer_norm(x), shift, scale)} (layer norm without affine weights): on CPU fp32
   * tensors one pass of cachedit's kernel (docs/kernels.md section 10), else libtorch's ops.
   */
  public static Tensor normModulate(Tensor x, Tensor shift, Tensor scale, double eps) {
    if (x.dim() == 3 && shift.dim() == 2 && scale.dim() == 2 && cpuFloat(x) && cpuFloat(shift) && cpuFloat(scale)) {
      return io.cachedit.kernels.Kernels.forComputePool().layerNormModulate(x, shift,
          scale, eps);
    }
    return modulate(Norms.layerNorm(x, eps), shift, scale);
  }


  /** The gated residual {@code x + gate[:, None] * y} for x, y [B, S, C] and gate [B, C], in one pass. */
  public static Tensor addGated(Tensor x, Tensor gate, Tensor y) {
    return torch.addcmul(x, gate.unsqueeze(1), y);
  }

  /** {@code chunks} equal pieces of the last dimension. */
  static Tensor[] chunk(Tensor t, int chunks) {
    TensorVector v = t.chunk(chunks, -1);
    Tensor[] out = new Tensor[chunks];
    for (int i = 0; i < chunks; i++) {
      out[i] = v.get(i);
    }
    return out;
  }

  /**
   * AdaLayerNormZero: {@code linear(silu(emb))} split in shift/scale/gate for attention and MLP;
   * returns {norm(x)*(1+scale_msa)+shift_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp}.
   */
  public static final class Zero {
    private final Linear linear;
    private final double eps;

    public Zero(WeightScope w, long dim) {
      this(w, dim, 1e-6);
    }

    public Zero(WeightScope w, long dim, double eps) {
      this.linear = new Linear(w.pp("linear"), dim, 6 * dim);
      this.eps = eps;
    }

    public Tensor[] forward(Tensor x, Tensor emb) {
      return apply(x, modulation(emb));
    }

    /** {@code linear(silu(emb))}: [..., 6 * dim] for emb [..., dim] (any leading dimensions). */
    public Tensor modulation(Tensor emb) {
      return linear.forward(Activations.silu(emb));
    }

    /** The forward with {@link #modulation} already computed ([B, 6 * dim]). */
    public Tensor[] apply(Tensor x, Tensor modulation) {
      Tensor[] c = chunk(modulation, 6);
      return new Tensor[] {normModulate(x, c[0], c[1], eps), c[2], c[3], c[4], c[5]};
    }
  }

  /** AdaLayerNormZeroSingle: shift, scale, gate; returns {norm(x)*(1+scale)+shift, gate}. */
  public static final class ZeroSingle {
    private final Linear linear;

    public ZeroSingle(WeightScope w, long dim) {
      this.linear = new Linear(w.pp("linear"), dim, 3 * dim);
    }

    public Tensor[] forward(Tensor x, Tensor emb) {
      return apply(x, modulation(emb));
    }

    /** {@code linear(silu(emb))}: [..., 3 * dim] for emb [..., dim] (any leading dimensions). */
    public Tensor modulation(Tensor emb) {
      return linear.forward(Activations.silu(emb));
    }

    /** The forward with {@link #modulation} already computed ([B, 3 * dim]). */
    public Tensor[] apply(Tensor x, Tensor modulation) {
      Tensor[] c = chunk(modulation, 3);
      return new Tensor[] {normModulate(x, c[0], c[1], 1e-6), c[2]};
    }
  }

  /**
   * AdaLayerNormContinuous: {@code emb = linear(silu(cond).to(x.dtype))}, split as <b>scale, shift</b>
   * (in that order), {@code norm(x) * (1 + scale) + shift}.
   */
  public static final class Continuous {
    private final Linear linear;
    private final double eps;
    private final Tensor normWeight;
    private final Tensor normBias;

    public Continuous(WeightScope w, long embeddingDim, long conditioningDim, boolean elementwiseAffine, double eps,
        boolean bias) {
      this.linear = new Linear(w.pp("linear"), conditioningDim, 2 * embeddingDim, bias);
      this.eps = eps;
      this.normWeight = elementwiseAffine ? w.pp("norm").get("weight", embeddingDim) : null;
      this.normBias = elementwiseAffine ? w.pp("norm").get("bias", embeddingDim) : null;
    }

    public Tensor forward(Tensor x, Tensor conditioning) {
      Tensor[] c = scaleShift(conditioning, x.scalar_type());
      Tensor normed = normWeight == null ? Norms.layerNorm(x, eps) : Norms.layerNorm(x, normWeight, normBias, eps);
      return modulate(normed, c[1], c[0]);
    }

    /** {scale, shift} from the conditioning [..., conditioningDim] (any leading dimensions), in {@code dtype}. */
    public Tensor[] scaleShift(Tensor conditioning, ScalarType dtype) {
      return chunk(linear.forward(Activations.silu(conditioning).to(dtype)), 2);
    }
  }
}
