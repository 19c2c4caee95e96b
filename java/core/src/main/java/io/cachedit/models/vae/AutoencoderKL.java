package io.cachedit.models.vae;

import io.cachedit.io.JsonConfig;
import io.cachedit.io.WeightScope;
import io.cachedit.models.common.AbstractDiffusersModel;
import io.cachedit.models.common.ComponentModel;
import io.cachedit.models.common.ForwardInputs;
import io.cachedit.models.common.Linear;
import io.cachedit.models.common.Sdpa;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * diffusers' {@code AutoencoderKL} (the VAE of FLUX.1, SD3 and SD/SDXL): a convolutional encoder to a
 * diagonal Gaussian over latents and a decoder back to pixels, ResNet blocks with group norms, one
 * single-head attention in each middle block. {@link #decode} and {@link #encode} switch to overlapping
 * tiles, blended as diffusers blends them, when tiling is on and the input is larger than a tile.
 * Scaling and shift factors are the pipeline's business: {@link Config#scalingFactor()} and
 * {@link Config#shiftFactor()} say what they are.
 */
public final class AutoencoderKL extends AbstractDiffusersModel implements ComponentModel {
  /** The fields of the VAE's config.json. */
  public record Config(int inChannels, int outChannels, List<String> downBlockTypes, List<String> upBlockTypes,
      int[] blockOutChannels, int layersPerBlock, String actFn, int latentChannels, int normNumGroups, int sampleSize,
      double scalingFactor, Double shiftFactor, boolean useQuantConv, boolean usePostQuantConv,
      boolean midBlockAddAttention) {
    public Config {
      if (blockOutChannels.length == 0) {
        throw new IllegalArgumentException("block_out_channels must not be empty");
      }
      if (downBlockTypes.size() != blockOutChannels.length || upBlockTypes.size() != blockOutChannels.length) {
        throw new IllegalArgumentException("down_block_types (" + downBlockTypes.size() + ") and up_block_types ("
            + upBlockTypes.size() + ") must have one entry per block_out_channels (" + blockOutChannels.length + ")");
      }
      for (String t : downBlockTypes) {
        if (!t.equals("DownEncoderBlock2D")) {
          throw new IllegalArgumentException("down block \"" + t + "\" is not supported; AutoencoderKL uses DownEncoderBlock2D");
        }
      }
      for (String t : upBlockTypes) {
        if (!t.equals("UpDecoderBlock2D")) {
          throw new IllegalArgumentException("up block \"" + t + "\" is not supported; AutoencoderKL uses UpDecoderBlock2D");
        }
      }
      for (int c : blockOutChannels) {
        if (c % normNumGroups != 0) {
          throw new IllegalArgumentException("block_out_channels " + c + " is not a multiple of norm_num_groups "
              + normNumGroups);
        }
      }
      if (!actFn.equals("silu")) {
        throw new IllegalArgumentException("act_fn \"" + actFn + "\" is not supported; AutoencoderKL uses silu");
      }
    }

    public static Config fromJson(JsonConfig c) {
      Double shift = c.getDouble("shift_factor", Double.NaN);
      return new Config(c.getInt("in_channels", 3), c.getInt("out_channels", 3),
          c.getStringList("down_block_types", List.of("DownEncoderBlock2D")),
          c.getStringList("up_block_types", List.of("UpDecoderBlock2D")), c.getIntArray("block_out_channels", new int[] {64}),
          c.getInt("layers_per_block", 1), c.getString("act_fn", "silu"), c.getInt("latent_channels", 4),
          c.getInt("norm_num_groups", 32), sampleSize(c), c.getDouble("scaling_factor", 0.18215),
          shift.isNaN() ? null : shift, c.getBool("use_quant_conv", true), c.getBool("use_post_quant_conv", true),
          c.getBool("mid_block_add_attention", true));
    }

    private static int sampleSize(JsonConfig c) {
      return c.isList("sample_size") ? c.getIntArray("sample_size", new int[] {32})[0] : c.getInt("sample_size", 32);
    }

    /** Pixels per latent side: 2 per down block after the first (8 for FLUX and SD3). */
    public int scaleFactor() {
      return 1 << (blockOutChannels.length - 1);
    }
  }

  /** A diagonal Gaussian over latents: {@code latent_dist} of diffusers' encode. */
  public record LatentDistribution(Tensor mean, Tensor logvar, Tensor std) {
    /** The mean (diffusers' {@code mode()}). */
    public Tensor mode() {
      return mean;
    }
  }

  private record Conv(Tensor weight, Tensor bias, long stride, long padding) {
    Tensor forward(Tensor x) {
      return torch.conv2d(x, weight, new TensorOptional(bias), new long[] {stride, stride},
          new long[] {padding, padding}, new long[] {1, 1}, 1);
    }
  }

  private record GroupNorm(Tensor weight, Tensor bias, long groups) {
    Tensor forward(Tensor x) {
      return torch.group_norm(x, groups, new TensorOptional(weight), new TensorOptional(bias), 1e-6, true);
    }
  }

  private record Resnet(GroupNorm norm1, Conv conv1, GroupNorm norm2, Conv conv2, Conv shortcut) {
    Tensor forward(Tensor x) {
      Tensor h = conv1.forward(torch.silu(norm1.forward(x)));
      h = conv2.forward(torch.silu(norm2.forward(h)));
      return (shortcut == null ? x : shortcut.forward(x)).add(h);
    }
  }

  /** diffusers' {@code Attention} of the mid block: group norm, one head over all pixels, residual. */
  private record Attention(GroupNorm norm, Linear q, Linear k, Linear v, Linear out) {
    Tensor forward(Tensor x) {
      long b = x.size(0);
      long c = x.size(1);
      long hw = x.size(2) * x.size(3);
      Tensor h = norm.forward(x.view(b, c, hw)).transpose(1, 2);
      Tensor a = Sdpa.AUTO.attend(q.forward(h).unsqueeze(1), k.forward(h).unsqueeze(1), v.forward(h).unsqueeze(1), null)
          .squeeze(1);
      return out.forward(a).transpose(1, 2).reshape(b, c, x.size(2), x.size(3)).add(x);
    }
  }

  private record Mid(Resnet first, Attention attention, Resnet second) {
    Tensor forward(Tensor x) {
      x = first.forward(x);
      if (attention != null) {
        x = attention.forward(x);
      }
      return second.forward(x);
    }
  }

  private record Stage(List<Resnet> resnets, Conv resample) {}

  private final Config config;
  private final String configJson;
  private final Conv encConvIn;
  private final List<Stage> down = new ArrayList<>();
  private final Mid encMid;
  private final GroupNorm encNormOut;
  private final Conv encConvOut;
  private final Conv quantConv;
  private final Conv postQuantConv;
  private final Conv decConvIn;
  private final Mid decMid;
  private final List<Stage> up = new ArrayList<>();
  private final GroupNorm decNormOut;
  private final Conv decConvOut;
  private volatile boolean tiling;

  public AutoencoderKL(Config config, WeightScope w, String configJson) {
    super("AutoencoderKL", w);
    this.config = config;
    this.configJson = configJson;
    int[] ch = config.blockOutChannels();
    int n = ch.length;
    long groups = config.normNumGroups();
    // the encoder is optional: decode-only folders (and pipelines that only decode) may omit it
    boolean hasEncoder = w.containsPrefix("encoder");
    if (hasEncoder) {
      WeightScope e = w.pp("encoder");
      encConvIn = conv(e.pp("conv_in"), config.inChannels(), ch[0], 3, 1, 1);
      int out = ch[0];
      for (int i = 0; i < n; i++) {
        int in = out;
        out = ch[i];
        WeightScope b = e.pp("down_blocks").pp(i);
        List<Resnet> resnets = new ArrayList<>();
        for (int j = 0; j < config.layersPerBlock(); j++) {
          resnets.add(resnet(b.pp("resnets").pp(j), j == 0 ? in : out, out, groups));
        }
        down.add(new Stage(resnets, i == n - 1 ? null : conv(b.pp("downsamplers").pp(0).pp("conv"), out, out, 3, 2, 0)));
      }
      encMid = mid(e.pp("mid_block"), ch[n - 1], groups);
      encNormOut = norm(e.pp("conv_norm_out"), ch[n - 1], groups);
      encConvOut = conv(e.pp("conv_out"), ch[n - 1], 2 * config.latentChannels(), 3, 1, 1);
      quantConv = config.useQuantConv() ? conv(w.pp("quant_conv"), 2 * config.latentChannels(),
          2 * config.latentChannels(), 1, 1, 0) : null;
    } else {
      encConvIn = null;
      encMid = null;
      encNormOut = null;
      encConvOut = null;
      quantConv = null;
    }
    WeightScope d = w.pp("decoder");
    postQuantConv = config.usePostQuantConv() ? conv(w.pp("post_quant_conv"), config.latentChannels(),
        config.latentChannels(), 1, 1, 0) : null;
    decConvIn = conv(d.pp("conv_in"), config.latentChannels(), ch[n - 1], 3, 1, 1);
    decMid = mid(d.pp("mid_block"), ch[n - 1], groups);
    int out = ch[n - 1];
    for (int i = 0; i < n; i++) {
      int in = out;
      out = ch[n - 1 - i];
      WeightScope b = d.pp("up_blocks").pp(i);
      List<Resnet> resnets = new ArrayList<>();
      for (int j = 0; j < config.layersPerBlock() + 1; j++) {
        resnets.add(resnet(b.pp("resnets").pp(j), j == 0 ? in : out, out, groups));
      }
      up.add(new Stage(resnets, i == n - 1 ? null : conv(b.pp("upsamplers").pp(0).pp("conv"), out, out, 3, 1, 1)));
    }
    decNormOut = norm(d.pp("conv_norm_out"), ch[0], groups);
    decConvOut = conv(d.pp("conv_out"), ch[0], config.outChannels(), 3, 1, 1);
    finishLoading(w);
  }

  private static Conv conv(WeightScope w, long in, long out, long k, long stride, long padding) {
    return new Conv(w.get("weight", out, in, k, k), w.get("bias", out), stride, padding);
  }

  private static GroupNorm norm(WeightScope w, long channels, long groups) {
    return new GroupNorm(w.get("weight", channels), w.get("bias", channels), groups);
  }

  private static Resnet resnet(WeightScope w, int in, int out, long groups) {
    return new Resnet(norm(w.pp("norm1"), in, groups), conv(w.pp("conv1"), in, out, 3, 1, 1),
        norm(w.pp("norm2"), out, groups), conv(w.pp("conv2"), out, out, 3, 1, 1),
        in != out ? conv(w.pp("conv_shortcut"), in, out, 1, 1, 0) : null);
  }

  private Mid mid(WeightScope w, int channels, long groups) {
    Attention attention = null;
    if (config.midBlockAddAttention()) {
      WeightScope a = w.pp("attentions").pp(0);
      attention = new Attention(norm(a.pp("group_norm"), channels, groups), new Linear(a.pp("to_q"), channels, channels),
          new Linear(a.pp("to_k"), channels, channels), new Linear(a.pp("to_v"), channels, channels),
          new Linear(a.pp("to_out").pp(0), channels, channels));
    }
    return new Mid(resnet(w.pp("resnets").pp(0), channels, channels, groups), attention,
        resnet(w.pp("resnets").pp(1), channels, channels, groups));
  }

  public Config config() {
    return config;
  }

  @Override
  public String configJson() {
    return configJson;
  }

  /** diffusers' {@code enable_tiling()} / {@code disable_tiling()}. */
  public void setTiling(boolean on) {
    tiling = on;
  }

  public boolean tiling() {
    return tiling;
  }

  /** Whether this folder holds the encoder (decode-only VAEs do not). */
  public boolean hasEncoder() {
    return encConvIn != null;
  }

  private int tileSampleSize() {
    return config.sampleSize();
  }

  private int tileLatentSize() {
    return config.sampleSize() / config.scaleFactor();
  }

  /** Latents [B, latent_channels, h, w] (already unscaled by the pipeline) to pixels [B, out_channels, 8h, 8w] in [-1, 1]. */
  public Tensor decode(Tensor z) {
    ensureOpen();
    checkInput(z, config.latentChannels(), "z");
    if (tiling && (z.size(-1) > tileLatentSize() || z.size(-2) > tileLatentSize())) {
      return tiledDecode(z);
    }
    return decodeTile(z);
  }

  private Tensor decodeTile(Tensor z) {
    Tensor x = postQuantConv == null ? z : postQuantConv.forward(z);
    x = decMid.forward(decConvIn.forward(x));
    for (Stage s : up) {
      for (Resnet r : s.resnets()) {
        x = r.forward(x);
      }
      if (s.resample() != null) {
        x = s.resample().forward(upsampleNearest2x(x));
      }
    }
    return decConvOut.forward(torch.silu(decNormOut.forward(x)));
  }

  /** Nearest-neighbour 2x (diffusers interpolates bf16 in fp32; copying pixels is exact in any dtype). */
  private static Tensor upsampleNearest2x(Tensor x) {
    long b = x.size(0);
    long c = x.size(1);
    long h = x.size(2);
    long w = x.size(3);
    return x.view(b, c, h, 1, w, 1).expand(b, c, h, 2, w, 2).reshape(b, c, 2 * h, 2 * w);
  }

  /** Pixels [B, in_channels, H, W] in [-1, 1] to the latent distribution. */
  public LatentDistribution encode(Tensor x) {
    ensureOpen();
    if (!hasEncoder()) {
      throw new IllegalStateException("this AutoencoderKL has no encoder weights (encoder.*): it can only decode");
    }
    checkInput(x, config.inChannels(), "x");
    Tensor moments = tiling && (x.size(-1) > tileSampleSize() || x.size(-2) > tileSampleSize()) ? tiledEncode(x)
        : encodeTile(x);
    return distribution(moments);
  }

  private Tensor encodeTile(Tensor x) {
    Tensor h = encConvIn.forward(x);
    for (Stage s : down) {
      for (Resnet r : s.resnets()) {
        h = r.forward(h);
      }
      if (s.resample() != null) {
        h = s.resample().forward(torch.constant_pad_nd(h, new long[] {0, 1, 0, 1}, new Scalar(0.0)));
      }
    }
    h = encConvOut.forward(torch.silu(encNormOut.forward(encMid.forward(h))));
    return quantConv == null ? h : quantConv.forward(h);
  }

  /** diffusers' DiagonalGaussianDistribution of the encoder's moments: mean, log variance clamped to [-30, 20], std. */
  static LatentDistribution distribution(Tensor moments) {
    long c = moments.size(1) / 2;
    Tensor mean = moments.narrow(1, 0, c);
    Tensor logvar = torch.clamp(moments.narrow(1, c, c), new org.bytedeco.pytorch.ScalarOptional(new Scalar(-30.0)),
        new org.bytedeco.pytorch.ScalarOptional(new Scalar(20.0)));
    Tensor std = torch.exp(logvar.mul(new Scalar(0.5)));
    return new LatentDistribution(mean, logvar, std);
  }

  private Tensor tiledDecode(Tensor z) {
    int latentTile = tileLatentSize();
    int sampleTile = tileSampleSize();
    int overlap = (int) (latentTile * (1 - 0.25));
    int blend = (int) (sampleTile * 0.25);
    int rowLimit = sampleTile - blend;
    List<List<Tensor>> rows = new ArrayList<>();
    for (long i = 0; i < z.size(2); i += overlap) {
      List<Tensor> row = new ArrayList<>();
      for (long j = 0; j < z.size(3); j += overlap) {
        Tensor tile = z.narrow(2, i, Math.min(latentTile, z.size(2) - i)).narrow(3, j, Math.min(latentTile, z.size(3) - j));
        row.add(decodeTile(tile));
      }
      rows.add(row);
    }
    return blendTiles(rows, blend, rowLimit);
  }

  private Tensor tiledEncode(Tensor x) {
    int latentTile = tileLatentSize();
    int sampleTile = tileSampleSize();
    int overlap = (int) (sampleTile * (1 - 0.25));
    int blend = (int) (latentTile * 0.25);
    int rowLimit = latentTile - blend;
    List<List<Tensor>> rows = new ArrayList<>();
    for (long i = 0; i < x.size(2); i += overlap) {
      List<Tensor> row = new ArrayList<>();
      for (long j = 0; j < x.size(3); j += overlap) {
        Tensor tile = x.narrow(2, i, Math.min(sampleTile, x.size(2) - i)).narrow(3, j, Math.min(sampleTile, x.size(3) - j));
        row.add(encodeTile(tile));
      }
      rows.add(row);
    }
    return blendTiles(rows, blend, rowLimit);
  }

  /**
   * diffusers' blending: each tile, in row-major order, is blended in place with the (already blended)
   * tile above and to its left over {@code extent} rows/columns, then cropped to {@code limit}.
   */
  private static Tensor blendTiles(List<List<Tensor>> rows, int extent, int limit) {
    TensorVector resultRows = new TensorVector();
    for (int i = 0; i < rows.size(); i++) {
      List<Tensor> row = rows.get(i);
      TensorVector resultRow = new TensorVector();
      for (int j = 0; j < row.size(); j++) {
        Tensor tile = row.get(j);
        if (i > 0) {
          blend(rows.get(i - 1).get(j), tile, extent, 2);
        }
        if (j > 0) {
          blend(row.get(j - 1), tile, extent, 3);
        }
        resultRow.push_back(tile.narrow(2, 0, Math.min(limit, tile.size(2))).narrow(3, 0, Math.min(limit, tile.size(3))));
      }
      resultRows.push_back(torch.cat(resultRow, 3));
    }
    return torch.cat(resultRows, 2);
  }

  private static void blend(Tensor a, Tensor b, int extent, int dim) {
    int e = (int) Math.min(Math.min(a.size(dim), b.size(dim)), extent);
    for (int y = 0; y < e; y++) {
      Tensor mixed = a.select(dim, a.size(dim) - e + y).mul(new Scalar(1 - y / (double) e))
          .add(b.select(dim, y).mul(new Scalar(y / (double) e)));
      b.select(dim, y).copy_(mixed);
    }
  }

  private static void checkInput(Tensor t, int channels, String name) {
    if (t.dim() != 4 || t.size(1) != channels) {
      throw new IllegalArgumentException(name + " must be [batch, " + channels + ", height, width], got "
          + java.util.Arrays.toString(t.sizes().vec().get()));
    }
  }

  @Override
  public List<String> calls() {
    return hasEncoder() ? List.of("decode", "encode") : List.of("decode");
  }

  @Override
  public Map<String, Tensor> call(String method, ForwardInputs inputs) {
    return VaeCalls.call(className(), method, inputs, dtype, this::decode, this::encode);
  }
}
