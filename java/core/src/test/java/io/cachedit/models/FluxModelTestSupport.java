package io.cachedit.models;

import java.util.LinkedHashMap;
import java.util.Map;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/** Inputs for the tiny FLUX config. */
public final class FluxModelTestSupport {
  private FluxModelTestSupport() {}

  /** FLUX inputs for a 4x4 latent grid (16 image tokens) and 5 text tokens. */
  public static Map<String, Tensor> inputs(long seed, double sigma) {
    torch.manual_seed(seed);
    Map<String, Tensor> in = new LinkedHashMap<>();
    in.put("hidden_states", torch.randn(2, 16, 8));
    in.put("encoder_hidden_states", torch.randn(2, 5, 12));
    in.put("pooled_projections", torch.randn(2, 6));
    in.put("timestep", torch.full(new long[] {2}, new Scalar(sigma)));
    Tensor img = torch.zeros(16, 3);
    for (int i = 0; i < 16; i++) {
      img.select(0, i).select(0, 1).fill_(new Scalar((double) (i / 4)));
      img.select(0, i).select(0, 2).fill_(new Scalar((double) (i % 4)));
    }
    in.put("img_ids", img);
    in.put("txt_ids", torch.zeros(5, 3));
    in.put("guidance", torch.full(new long[] {2}, new Scalar(4.0)));  // exact in bf16 after x1000
    return in;
  }

}
