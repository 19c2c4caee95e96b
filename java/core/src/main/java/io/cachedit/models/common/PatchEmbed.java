package io.cachedit.models.common;

import io.cachedit.io.WeightScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * diffusers' {@code PatchEmbed} with sin-cos positions (DiT, PixArt): a strided convolution
 * {@code proj} to patch tokens plus {@code get_2d_sincos_pos_embed} for the token grid.
 */
public final class PatchEmbed {
  private final Tensor weight;
  private final Tensor bias;
  private final int patch;
  private final long embedDim;
  private final double baseSize;
  private final double interpolationScale;

  public PatchEmbed(WeightScope w, int inChannels, long embedDim, int patch, int sampleSize, double interpolationScale) {
    this.weight = w.pp("proj").get("weight", embedDim, inChannels, patch, patch);
    this.bias = w.pp("proj").get("bias", embedDim);
    this.patch = patch;
    this.embedDim = embedDim;
    this.baseSize = (double) (sampleSize / patch);
    this.interpolationScale = interpolationScale;
  }

  /** [B, C, H, W] -> [B, (H/p)(W/p), D] with positions added. */
  public Tensor forward(Tensor latent) {
    long h = latent.size(2) / patch;
    long w = latent.size(3) / patch;
    Tensor x = torch.conv2d(latent, weight, new TensorOptional(bias), new long[] {patch, patch}, new long[] {0, 0},
        new long[] {1, 1}, 1).flatten(2, -1).transpose(1, 2);
    return x.add(sincos2d(embedDim, h, w, baseSize, interpolationScale).to(ScalarType.Float).unsqueeze(0))
        .to(x.scalar_type());
  }

  /**
   * diffusers' {@code get_2d_sincos_pos_embed} ([h*w, dim], fp64): the first half encodes the column,
   * the second the row, each {@code [sin, cos]} of {@code pos * 10000^(-i/(dim/4))}; positions scaled
   * by {@code base_size / grid / interpolation_scale}.
   */
  public static Tensor sincos2d(long dim, long h, long w, double baseSize, double interpolationScale) {
    Tensor gridH = torch.arange(new Scalar(h)).to(ScalarType.Float).div(new Scalar(h / baseSize))
        .div(new Scalar(interpolationScale));
    Tensor gridW = torch.arange(new Scalar(w)).to(ScalarType.Float).div(new Scalar(w / baseSize))
        .div(new Scalar(interpolationScale));
    Tensor cols = gridW.view(1, w).expand(h, w).reshape(-1);
    Tensor rows = gridH.view(h, 1).expand(h, w).reshape(-1);
    return torch.cat(new TensorVector(sincos1d(dim / 2, cols), sincos1d(dim / 2, rows)), 1);
  }

  /** diffusers' {@code get_1d_sincos_pos_embed_from_grid}: [N, dim] = [sin, cos] in fp64. */
  public static Tensor sincos1d(long dim, Tensor positions) {
    Tensor omega = torch.arange(new Scalar(dim / 2)).to(ScalarType.Double).div(new Scalar(dim / 2.0));
    omega = torch.pow(new Scalar(10000.0), omega).reciprocal();
    Tensor out = torch.outer(positions.to(ScalarType.Double), omega);
    return torch.cat(new TensorVector(torch.sin(out), torch.cos(out)), 1);
  }
}
