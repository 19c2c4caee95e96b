package io.cachedit.models.vae;

import io.cachedit.io.JsonConfig;
import io.cachedit.io.WeightScope;
import io.cachedit.models.common.AbstractDiffusersModel;
import io.cachedit.models.common.ComponentModel;
import io.cachedit.models.common.ForwardInputs;
import io.cachedit.models.common.Sdpa;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.ScalarOptional;
import org.bytedeco.pytorch.ScalarTypeOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

/**
 * diffusers' {@code AutoencoderKLWan} (Wan 2.1's video VAE, also Wan 2.2 A14B's), and the same network
 * as Qwen-Image's {@code AutoencoderKLQwenImage}: causal 3D convolutions over time, RMS norms over
 * channels, 2D and temporal resampling, one single-head attention per frame in the middle blocks.
 * Decoding runs one latent frame at a time and encoding 1 then 4 frames at a time, each causal
 * convolution reading the last frames of the previous chunk from a cache, exactly as diffusers does
 * (so long videos need memory for one chunk, and the numbers equal diffusers'). Wan 2.2 TI2V-5B's
 * residual VAE ({@code is_residual}, {@code patch_size}) is not supported.
 */
public final class AutoencoderKLWan extends AbstractDiffusersModel implements ComponentModel {
  /** The fields of the VAE's config.json. */
  public record Config(int baseDim, int decoderBaseDim, int zDim, int[] dimMult, int numResBlocks, double[] attnScales,
      boolean[] temperalDownsample, double[] latentsMean, double[] latentsStd, int inChannels, int outChannels,
      int scaleFactorTemporal, int scaleFactorSpatial) {
    public Config {
      if (dimMult.length < 1 || temperalDownsample.length != dimMult.length - 1) {
        throw new IllegalArgumentException("temperal_downsample needs one entry per down step (" + (dimMult.length - 1)
            + "), got " + temperalDownsample.length);
      }
      if (attnScales.length > 0) {
        throw new IllegalArgumentException("attn_scales " + java.util.Arrays.toString(attnScales) + ": attention in "
            + "the encoder's down path is not supported (diffusers cannot run it either; Wan VAEs have none)");
      }
      if (latentsMean.length != zDim || latentsStd.length != zDim) {
        throw new IllegalArgumentException("latents_mean and latents_std need z_dim (" + zDim + ") entries");
      }
    }

    public static Config fromJson(JsonConfig c) {
      if (c.getBool("is_residual", false) || c.getIntOrNull("patch_size") != null) {
        throw io.cachedit.error.ConfigException.forField("is_residual", "model config " + c.origin()
            + ": the residual, patchified VAE of Wan 2.2 TI2V-5B is not supported; Wan 2.1 / 2.2 A14B VAEs are");
      }
      int base = c.getInt("base_dim", 96);
      Integer dec = c.getIntOrNull("decoder_base_dim");
      int z = c.getInt("z_dim", 16);
      double[] mean = doubles(c, "latents_mean", z);
      double[] std = doubles(c, "latents_std", z);
      return new Config(base, dec != null ? dec : base, z, c.getIntArray("dim_mult", new int[] {1, 2, 4, 4}),
          c.getInt("num_res_blocks", 2), doubles(c, "attn_scales", -1), bools(c, "temperal_downsample"), mean, std,
          inChannels(c), c.getInt("out_channels", 3), c.getInt("scale_factor_temporal", 4),
          c.getInt("scale_factor_spatial", 8));
    }

    /** {@code in_channels} (Wan) or {@code input_channels} (Qwen-Image). */
    private static int inChannels(JsonConfig c) {
      Integer qwen = c.getIntOrNull("input_channels");
      return qwen != null ? qwen : c.getInt("in_channels", 3);
    }

    /** Pixels per latent side: 2 per down step ({@code 2^len(temperal_downsample)}, 8 for Wan and Qwen-Image). */
    public int spatialScale() {
      return 1 << temperalDownsample.length;
    }

    private static double[] doubles(JsonConfig c, String key, int expected) {
      String json = c.isList(key) ? listJson(c, key) : null;
      if (json == null) {
        if (expected < 0) {
          return new double[0];
        }
        double[] d = new double[expected];  // no statistics: identity (mean 0, std 1)
        java.util.Arrays.fill(d, key.endsWith("std") ? 1.0 : 0.0);
        return d;
      }
      try {
        return new com.fasterxml.jackson.databind.ObjectMapper().readValue(json, double[].class);
      } catch (java.io.IOException e) {
        throw io.cachedit.error.ConfigException.forField(key, "model config " + c.origin() + ": " + key
            + " must be a list of numbers");
      }
    }

    private static boolean[] bools(JsonConfig c, String key) {
      String json = c.isList(key) ? listJson(c, key) : "[false, true, true]";
      try {
        return toPrimitive(new com.fasterxml.jackson.databind.ObjectMapper().readValue(json, Boolean[].class));
      } catch (java.io.IOException e) {
        throw io.cachedit.error.ConfigException.forField(key, "model config " + c.origin() + ": " + key
            + " must be a list of true/false");
      }
    }

    private static boolean[] toPrimitive(Boolean[] b) {
      boolean[] out = new boolean[b.length];
      for (int i = 0; i < b.length; i++) {
        out[i] = b[i];
      }
      return out;
    }

    private static String listJson(JsonConfig c, String key) {
      return c.getListJson(key);
    }
  }

  private static final int CACHE_T = 2;
  /** The cache entry of an upsampling time convolution after the first chunk ("Rep" in diffusers). */
  private static final Object REPEAT = new Object();

  /** The per-convolution cache of one decode or encode: slot i belongs to the i-th cached convolution. */
  private static final class FeatCache {
    final List<Object> slots = new ArrayList<>();
    int idx;

    Object get(int i) {
      return i < slots.size() ? slots.get(i) : null;
    }

    void set(int i, Object v) {
      while (slots.size() <= i) {
        slots.add(null);
      }
      slots.set(i, v);
    }
  }

  /** diffusers' WanCausalConv3d: all of the temporal padding in front, the cache's frames replacing it. */
  private record CausalConv3d(Tensor weight, Tensor bias, long[] stride, long[] padding) {
    Tensor forward(Tensor x, Tensor cache) {
      long front = 2 * padding[0];
      if (cache != null && front > 0) {
        x = torch.cat(new TensorVector(cache, x), 2);
        front -= cache.size(2);
      }
      x = torch.constant_pad_nd(x, new long[] {padding[2], padding[2], padding[1], padding[1], front, 0}, new Scalar(0.0));
      return torch.conv3d(x, weight, new TensorOptional(bias), stride, new long[] {0, 0, 0}, new long[] {1, 1, 1}, 1);
    }

    /** The cached call: remembers this chunk's last two frames (with the previous chunk's last when short). */
    Tensor forward(Tensor x, FeatCache c) {
      int i = c.idx;
      long t = x.size(2);
      Tensor cacheX = x.narrow(2, Math.max(0, t - CACHE_T), Math.min(CACHE_T, t)).clone();
      Object prev = c.get(i);
      if (cacheX.size(2) < 2 && prev instanceof Tensor p) {
        cacheX = torch.cat(new TensorVector(p.narrow(2, p.size(2) - 1, 1), cacheX), 2);
      }
      Tensor out = forward(x, prev instanceof Tensor p ? p : null);
      c.set(i, cacheX);
      c.idx++;
      return out;
    }
  }

  /** WanRMS_norm: L2-normalise over channels (in fp32 for half inputs), times sqrt(channels) and gamma. */
  private record RmsNorm(Tensor gamma, double scale) {
    Tensor forward(Tensor x) {
      torch.ScalarType in = x.scalar_type().intern();
      boolean half = in == torch.ScalarType.BFloat16 || in == torch.ScalarType.Half;
      Tensor xf = half ? x.to(torch.ScalarType.Float) : x;
      Tensor n = torch.linalg_vector_norm(xf, new Scalar(2.0), new long[] {1}, true, new ScalarTypeOptional())
          .clamp_min(new Scalar(1e-12));
      Tensor normalized = xf.div(n);
      return (half ? normalized.to(in) : normalized).mul(new Scalar(scale)).mul(gamma);
    }
  }

  private record Resnet(RmsNorm norm1, CausalConv3d conv1, RmsNorm norm2, CausalConv3d conv2, CausalConv3d shortcut) {
    Tensor forward(Tensor x, FeatCache c) {
      Tensor h = shortcut == null ? x : shortcut.forward(x, (Tensor) null);
      x = conv1.forward(torch.silu(norm1.forward(x)), c);
      x = conv2.forward(torch.silu(norm2.forward(x)), c);
      return x.add(h);
    }
  }

  private record Attention(RmsNorm norm, Tensor qkvWeight, Tensor qkvBias, Tensor projWeight, Tensor projBias) {
    Tensor forward(Tensor x) {
      long b = x.size(0);
      long ch = x.size(1);
      long t = x.size(2);
      long h = x.size(3);
      long w = x.size(4);
      Tensor f = x.permute(0, 2, 1, 3, 4).reshape(b * t, ch, h, w);
      f = norm.forward(f);
      Tensor qkv = conv2d(f, qkvWeight, qkvBias, 1, 0).reshape(b * t, 1, ch * 3, -1).permute(0, 1, 3, 2).contiguous();
      Tensor q = qkv.narrow(-1, 0, ch);
      Tensor k = qkv.narrow(-1, ch, ch);
      Tensor v = qkv.narrow(-1, 2 * ch, ch);
      Tensor a = Sdpa.AUTO.attend(q, k, v, null).squeeze(1).permute(0, 2, 1).reshape(b * t, ch, h, w);
      a = conv2d(a, projWeight, projBias, 1, 0).view(b, t, ch, h, w).permute(0, 2, 1, 3, 4);
      return a.add(x);
    }
  }

  private enum Mode { UP2D, UP3D, DOWN2D, DOWN3D }

  private record Resample(Mode mode, Tensor weight, Tensor bias, CausalConv3d timeConv) {
    Tensor forward(Tensor x, FeatCache c) {
      long b = x.size(0);
      long ch = x.size(1);
      long t = x.size(2);
      if (mode == Mode.UP3D) {
        int i = c.idx;
        Object prev = c.get(i);
        if (prev == null) {
          c.set(i, REPEAT);  // the first chunk: no temporal upsampling
        } else {
          Tensor cacheX = x.narrow(2, Math.max(0, t - CACHE_T), Math.min(CACHE_T, t)).clone();
          if (cacheX.size(2) < 2 && prev instanceof Tensor p) {
            cacheX = torch.cat(new TensorVector(p.narrow(2, p.size(2) - 1, 1), cacheX), 2);
          }
          if (cacheX.size(2) < 2 && prev == REPEAT) {
            cacheX = torch.cat(new TensorVector(torch.zeros_like(cacheX), cacheX), 2);
          }
          x = timeConv.forward(x, prev instanceof Tensor p ? p : null);
          c.set(i, cacheX);
          long h = x.size(3);
          long w = x.size(4);
          x = x.reshape(b, 2, ch, t, h, w);
          x = torch.stack(new TensorVector(x.select(1, 0), x.select(1, 1)), 3).reshape(b, ch, t * 2, h, w);
        }
        c.idx++;
      }
      long frames = x.size(2);
      Tensor f = x.permute(0, 2, 1, 3, 4).reshape(b * frames, ch, x.size(3), x.size(4));
      if (mode == Mode.UP2D || mode == Mode.UP3D) {
        long h = f.size(2);
        long w = f.size(3);
        f = f.view(b * frames, ch, h, 1, w, 1).expand(b * frames, ch, h, 2, w, 2).reshape(b * frames, ch, 2 * h, 2 * w);
        f = conv2d(f, weight, bias, 1, 1);
      } else {
        f = conv2d(torch.constant_pad_nd(f, new long[] {0, 1, 0, 1}, new Scalar(0.0)), weight, bias, 2, 0);
      }
      x = f.view(b, frames, f.size(1), f.size(2), f.size(3)).permute(0, 2, 1, 3, 4);
      if (mode == Mode.DOWN3D) {
        int i = c.idx;
        Object prev = c.get(i);
        if (prev == null) {
          c.set(i, x.clone());
        } else {
          Tensor cacheX = x.narrow(2, x.size(2) - 1, 1).clone();
          Tensor p = (Tensor) prev;
          x = timeConv.forward(torch.cat(new TensorVector(p.narrow(2, p.size(2) - 1, 1), x), 2), (Tensor) null);
          c.set(i, cacheX);
        }
        c.idx++;
      }
      return x;
    }
  }

  private static Tensor conv2d(Tensor x, Tensor w, Tensor b, long stride, long padding) {
    return torch.conv2d(x, w, new TensorOptional(b), new long[] {stride, stride}, new long[] {padding, padding},
        new long[] {1, 1}, 1);
  }

  private record Mid(Resnet first, Attention attention, Resnet second) {
    Tensor forward(Tensor x, FeatCache c) {
      return second.forward(attention.forward(first.forward(x, c)), c);
    }
  }

  private final Config config;
  private final String configJson;
  private final CausalConv3d encConvIn;
  private final List<Object> encLayers = new ArrayList<>();
  private final Mid encMid;
  private final RmsNorm encNormOut;
  private final CausalConv3d encConvOut;
  private final CausalConv3d quantConv;
  private final CausalConv3d postQuantConv;
  private final CausalConv3d decConvIn;
  private final Mid decMid;
  private final List<List<Resnet>> upResnets = new ArrayList<>();
  private final List<Resample> upSamplers = new ArrayList<>();
  private final RmsNorm decNormOut;
  private final CausalConv3d decConvOut;

  public AutoencoderKLWan(Config config, WeightScope w, String configJson) {
    this("AutoencoderKLWan", config, w, configJson);
  }

  /** Under another class name with the same network (Qwen-Image's {@code AutoencoderKLQwenImage}). */
  public AutoencoderKLWan(String className, Config config, WeightScope w, String configJson) {
    super(className, w);
    this.config = config;
    this.configJson = configJson;
    int[] mult = config.dimMult();
    int n = mult.length;
    int z = config.zDim();
    boolean hasEncoder = w.containsPrefix("encoder");
    if (hasEncoder) {
      WeightScope e = w.pp("encoder");
      int dim = config.baseDim();
      int[] dims = new int[n + 1];
      dims[0] = dim;
      for (int i = 0; i < n; i++) {
        dims[i + 1] = dim * mult[i];
      }
      encConvIn = conv3(e.pp("conv_in"), config.inChannels(), dims[0], 3, 1, 1);
      double scale = 1.0;
      int k = 0;
      int out = dims[0];
      for (int i = 0; i < n; i++) {
        int in = dims[i];
        out = dims[i + 1];
        for (int r = 0; r < config.numResBlocks(); r++) {
          encLayers.add(resnet(e.pp("down_blocks").pp(k++), in, out));
          if (contains(config.attnScales(), scale)) {
            encLayers.add(attention(e.pp("down_blocks").pp(k++), out));
          }
          in = out;
        }
        if (i != n - 1) {
          boolean temporal = config.temperalDownsample()[i];
          encLayers.add(resample(e.pp("down_blocks").pp(k++), out, temporal ? Mode.DOWN3D : Mode.DOWN2D, out));
          scale /= 2.0;
        }
      }
      encMid = mid(e.pp("mid_block"), out);
      encNormOut = rms(e.pp("norm_out"), out, false);
      encConvOut = conv3(e.pp("conv_out"), out, 2 * z, 3, 1, 1);
      quantConv = conv3(w.pp("quant_conv"), 2 * z, 2 * z, 1, 1, 0);
    } else {
      encConvIn = null;
      encMid = null;
      encNormOut = null;
      encConvOut = null;
      quantConv = null;
    }
    postQuantConv = conv3(w.pp("post_quant_conv"), z, z, 1, 1, 0);
    WeightScope d = w.pp("decoder");
    int dim = config.decoderBaseDim();
    int[] dims = new int[n + 1];
    dims[0] = dim * mult[n - 1];
    for (int i = 0; i < n; i++) {
      dims[i + 1] = dim * mult[n - 1 - i];
    }
    boolean[] temporalUp = new boolean[n - 1];
    for (int i = 0; i < n - 1; i++) {
      temporalUp[i] = config.temperalDownsample()[n - 2 - i];
    }
    decConvIn = conv3(d.pp("conv_in"), z, dims[0], 3, 1, 1);
    decMid = mid(d.pp("mid_block"), dims[0]);
    int out = dims[0];
    for (int i = 0; i < n; i++) {
      int in = i > 0 ? dims[i] / 2 : dims[i];
      out = dims[i + 1];
      WeightScope b = d.pp("up_blocks").pp(i);
      List<Resnet> resnets = new ArrayList<>();
      int cur = in;
      for (int r = 0; r < config.numResBlocks() + 1; r++) {
        resnets.add(resnet(b.pp("resnets").pp(r), cur, out));
        cur = out;
      }
      upResnets.add(resnets);
      upSamplers.add(i == n - 1 ? null
          : resample(b.pp("upsamplers").pp(0), out, temporalUp[i] ? Mode.UP3D : Mode.UP2D, out / 2));
    }
    decNormOut = rms(d.pp("norm_out"), out, false);
    decConvOut = conv3(d.pp("conv_out"), out, config.outChannels(), 3, 1, 1);
    finishLoading(w);
  }

  private static boolean contains(double[] values, double v) {
    for (double x : values) {
      if (x == v) {
        return true;
      }
    }
    return false;
  }

  private static CausalConv3d conv3(WeightScope w, long in, long out, long k, long stride, long padding) {
    return new CausalConv3d(w.get("weight", out, in, k, k, k), w.get("bias", out), new long[] {stride, stride, stride},
        new long[] {padding, padding, padding});
  }

  private static RmsNorm rms(WeightScope w, int dim, boolean images) {
    return new RmsNorm(images ? w.get("gamma", dim, 1, 1) : w.get("gamma", dim, 1, 1, 1), Math.sqrt(dim));
  }

  private static Resnet resnet(WeightScope w, int in, int out) {
    return new Resnet(rms(w.pp("norm1"), in, false), conv3(w.pp("conv1"), in, out, 3, 1, 1),
        rms(w.pp("norm2"), out, false), conv3(w.pp("conv2"), out, out, 3, 1, 1),
        in != out ? conv3(w.pp("conv_shortcut"), in, out, 1, 1, 0) : null);
  }

  private static Attention attention(WeightScope w, int dim) {
    return new Attention(rms(w.pp("norm"), dim, true), w.get("to_qkv.weight", 3L * dim, dim, 1, 1),
        w.get("to_qkv.bias", 3L * dim), w.get("proj.weight", dim, dim, 1, 1), w.get("proj.bias", dim));
  }

  private static Resample resample(WeightScope w, int dim, Mode mode, int outDim) {
    boolean up = mode == Mode.UP2D || mode == Mode.UP3D;
    int convOut = up ? outDim : dim;
    Tensor weight = w.get("resample.1.weight", convOut, dim, 3, 3);
    Tensor bias = w.get("resample.1.bias", convOut);
    CausalConv3d time = null;
    if (mode == Mode.UP3D) {
      time = new CausalConv3d(w.get("time_conv.weight", 2L * dim, dim, 3, 1, 1), w.get("time_conv.bias", 2L * dim),
          new long[] {1, 1, 1}, new long[] {1, 0, 0});
    } else if (mode == Mode.DOWN3D) {
      time = new CausalConv3d(w.get("time_conv.weight", dim, dim, 3, 1, 1), w.get("time_conv.bias", dim),
          new long[] {2, 1, 1}, new long[] {0, 0, 0});
    }
    return new Resample(mode, weight, bias, time);
  }

  private Mid mid(WeightScope w, int dim) {
    return new Mid(resnet(w.pp("resnets").pp(0), dim, dim), attention(w.pp("attentions").pp(0), dim),
        resnet(w.pp("resnets").pp(1), dim, dim));
  }

  public Config config() {
    return config;
  }

  @Override
  public String configJson() {
    return configJson;
  }

  public boolean hasEncoder() {
    return encConvIn != null;
  }

  /**
   * Latents [B, z_dim, F, h, w] (already un-normalised by the pipeline) to video [B, 3, 1 + 4 (F - 1),
   * 8h, 8w] in [-1, 1], one latent frame at a time.
   */
  public Tensor decode(Tensor z) {
    ensureOpen();
    check(z, config.zDim(), "z");
    FeatCache cache = new FeatCache();
    Tensor x = postQuantConv.forward(z, (Tensor) null);
    TensorVector frames = new TensorVector();
    for (long i = 0; i < x.size(2); i++) {
      cache.idx = 0;
      Tensor h = decConvIn.forward(x.narrow(2, i, 1), cache);
      h = decMid.forward(h, cache);
      for (int b = 0; b < upResnets.size(); b++) {
        for (Resnet r : upResnets.get(b)) {
          h = r.forward(h, cache);
        }
        if (upSamplers.get(b) != null) {
          h = upSamplers.get(b).forward(h, cache);
        }
      }
      h = decConvOut.forward(torch.silu(decNormOut.forward(h)), cache);
      frames.push_back(h);
    }
    return torch.clamp(torch.cat(frames, 2), new ScalarOptional(new Scalar(-1.0)), new ScalarOptional(new Scalar(1.0)));
  }

  /** Video [B, 3, F, H, W] in [-1, 1] (F = 1 + 4k) to the latent distribution, 1 then 4 frames at a time. */
  public AutoencoderKL.LatentDistribution encode(Tensor x) {
    ensureOpen();
    if (!hasEncoder()) {
      throw new IllegalStateException(className() + " has no encoder weights (encoder.*): it can only decode");
    }
    check(x, config.inChannels(), "x");
    FeatCache cache = new FeatCache();
    long frames = x.size(2);
    long chunks = 1 + (frames - 1) / 4;
    TensorVector outs = new TensorVector();
    for (long i = 0; i < chunks; i++) {
      cache.idx = 0;
      Tensor part = i == 0 ? x.narrow(2, 0, 1) : x.narrow(2, 1 + 4 * (i - 1), Math.min(4, frames - (1 + 4 * (i - 1))));
      Tensor h = encConvIn.forward(part, cache);
      for (Object layer : encLayers) {
        if (layer instanceof Resnet r) {
          h = r.forward(h, cache);
        } else if (layer instanceof Attention a) {
          h = a.forward(h);
        } else {
          h = ((Resample) layer).forward(h, cache);
        }
      }
      h = encMid.forward(h, cache);
      h = encConvOut.forward(torch.silu(encNormOut.forward(h)), cache);
      outs.push_back(h);
    }
    Tensor moments = quantConv.forward(torch.cat(outs, 2), (Tensor) null);
    return AutoencoderKL.distribution(moments);
  }

  private static void check(Tensor t, int channels, String name) {
    if (t.dim() != 5 || t.size(1) != channels) {
      throw new IllegalArgumentException(name + " must be [batch, " + channels + ", frames, height, width], got "
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
