package io.cachedit.models.common;

import io.cachedit.io.WeightScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/** Sinusoidal timestep features and the MLP that embeds them (diffusers embeddings.py). */
public final class Timesteps {
  private Timesteps() {}

  /**
   * diffusers' {@code get_timestep_embedding}: {@code exp(-ln(maxPeriod) * i / (half - shift))} for
   * {@code i < half}, {@code [sin, cos]} of {@code scale * t * freq} (flipped to {@code [cos, sin]}),
   * zero-padded to an odd dimension. Computed in fp32; t is [N].
   */
  public static Tensor embedding(Tensor timesteps, int dim, boolean flipSinToCos, double downscaleFreqShift,
      double scale, double maxPeriod) {
    int half = dim / 2;
    Tensor exponent = torch.arange(new Scalar(0), new Scalar(half), new org.bytedeco.pytorch.TensorOptions(ScalarType.Float))
        .mul(new Scalar(-Math.log(maxPeriod))).div(new Scalar(half - downscaleFreqShift));
    Tensor freqs = torch.exp(exponent);
    Tensor args = timesteps.to(ScalarType.Float).unsqueeze(1).mul(freqs.unsqueeze(0)).mul(new Scalar(scale));
    Tensor sin = torch.sin(args);
    Tensor cos = torch.cos(args);
    Tensor emb = flipSinToCos ? torch.cat(new TensorVector(cos, sin), -1) : torch.cat(new TensorVector(sin, cos), -1);
    if (dim % 2 == 1) {
      emb = torch.cat(new TensorVector(emb, torch.zeros(emb.size(0), 1)), -1);
    }
    return emb;
  }

  /** {@code Timesteps(num_channels, flip_sin_to_cos, downscale_freq_shift)} with scale 1, max period 10000. */
  public static Tensor embedding(Tensor timesteps, int dim, boolean flipSinToCos, double downscaleFreqShift) {
    return embedding(timesteps, dim, flipSinToCos, downscaleFreqShift, 1.0, 10000.0);
  }

  /** {@code TimestepEmbedding}: {@code linear_2(act(linear_1(x)))}, act SiLU (default) or GELU-tanh. */
  public static final class Mlp {
    private final Linear linear1;
    private final Linear linear2;
    private final String act;

    public Mlp(WeightScope w, long in, long dim, long outDim, String act) {
      this.linear1 = new Linear(w.pp("linear_1"), in, dim);
      this.linear2 = new Linear(w.pp("linear_2"), dim, outDim);
      this.act = act;
    }

    public Mlp(WeightScope w, long in, long dim) {
      this(w, in, dim, dim, "silu");
    }

    public Tensor forward(Tensor x) {
      Tensor h = linear1.forward(x.to(linear1.dtype()));
      h = switch (act) {
        case "silu" -> Activations.silu(h);
        case "gelu_tanh", "gelu-approximate" -> Activations.geluTanh(h);
        case "gelu" -> Activations.gelu(h);
        default -> throw new IllegalArgumentException("unsupported activation " + act);
      };
      return linear2.forward(h);
    }
  }
}
