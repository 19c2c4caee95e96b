package io.cachedit.diffusers;

import io.cachedit.diffusers.text.TextTokenizer;
import io.cachedit.error.UnsupportedModelException;
import io.cachedit.error.WeightLoadException;
import io.cachedit.image.Images;
import io.cachedit.io.DiffusersFolder;
import io.cachedit.models.common.DiffusersModel;
import io.cachedit.models.vae.AutoencoderKL;
import io.cachedit.pipeline.PipelineFolder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.ScalarOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** What the pipelines share: loading components by class, tokens to tensors, latents to images. */
final class Components {
  private static final Logger LOG = LoggerFactory.getLogger(Components.class);

  private Components() {}

  /** Loads component {@code name}, checking that it is of {@code type}. */
  static <T extends DiffusersModel> T model(PipelineFolder folder, String name, Class<T> type, LoadOptions options) {
    DiffusersModel m = folder.load(name, options.registry(), options.dtype());
    if (m instanceof AutoencoderKL vae) {
      vae.setTiling(options.vaeTiling());
    }
    if (!type.isInstance(m)) {
      String cls = m.className();
      m.close();
      throw new UnsupportedModelException("component \"" + name + "\" of " + folder.dir() + " is a " + cls + "; the "
          + folder.pipelineClass() + " needs a " + type.getSimpleName() + " there");
    }
    return type.cast(m);
  }

  /** The transformer: the folder's, or the replacement {@link LoadOptions#transformer()}. */
  static <T extends DiffusersModel> T transformer(PipelineFolder folder, Class<T> type, LoadOptions options) {
    if (options.transformer() == null) {
      return model(folder, "transformer", type, options);
    }
    Path p = options.transformer();
    DiffusersModel m;
    if (Files.isRegularFile(p) && !Files.isRegularFile(p.toAbsolutePath().getParent().resolve("config.json"))) {
      Path config = folder.require("transformer").dir().resolve("config.json");
      m = options.registry().load(new DiffusersFolder(config, p), options.dtype());
    } else {
      m = options.registry().load(p, options.dtype());
    }
    if (!type.isInstance(m)) {
      String cls = m.className();
      m.close();
      throw new UnsupportedModelException("replacement transformer " + p + " is a " + cls + "; " + folder.pipelineClass()
          + " needs a " + type.getSimpleName());
    }
    return type.cast(m);
  }

  static TextTokenizer tokenizer(PipelineFolder folder, String name) {
    PipelineFolder.Component c = folder.require(name);
    return TextTokenizer.load(c.dir());
  }

  /**
   * {@code tokenizer(prompt, padding="max_length", max_length=n, truncation=True)} as ids [1, n]; logs
   * what was cut, as the diffusers pipelines warn.
   */
  static Tensor ids(TextTokenizer tokenizer, String prompt, int maxLength, String what) {
    TextTokenizer.Encoding e = tokenizer.encode(prompt, TextTokenizer.Padding.MAX_LENGTH, maxLength, true);
    if (e.truncated()) {
      LOG.warn("the prompt was truncated to {} tokens for {} ({} tokens in all)", maxLength, what,
          tokenizer.ids(prompt).length);
    }
    return torch.tensor(e.inputIds()).view(1, -1);
  }

  /** {@code t.repeat(1, n, ...).view(n * B, ...)} for B = 1: each prompt's rows n times. */
  static Tensor repeatRows(Tensor t, int n) {
    if (n == 1) {
      return t;
    }
    long[] reps = new long[(int) t.dim()];
    java.util.Arrays.fill(reps, 1);
    reps[0] = n;
    return t.repeat(reps);
  }

  /**
   * The VAE's decode of final latents [B, C, h, w]: unscaled as diffusers does
   * ({@code latents / scaling_factor + shift_factor}), decoded, then {@code (x * 0.5 + 0.5).clamp(0, 1)}.
   */
  static GeneratedImages decode(AutoencoderKL vae, Tensor latents) {
    AutoencoderKL.Config c = vae.config();
    Tensor z = latents.div(new Scalar(c.scalingFactor()));
    if (c.shiftFactor() != null) {
      z = z.add(new Scalar(c.shiftFactor()));
    }
    return images(vae.decode(z.to(vae.dtype())));
  }

  /** Decoded pixels [B, 3, H, W] in [-1, 1] to images: {@code (x * 0.5 + 0.5).clamp(0, 1)}, as diffusers postprocesses. */
  static GeneratedImages images(Tensor decoded) {
    Tensor image = decoded.to(ScalarType.Float).mul(new Scalar(0.5)).add(new Scalar(0.5))
        .clamp(new ScalarOptional(new Scalar(0.0)), new ScalarOptional(new Scalar(1.0)));
    Tensor hwc = image.permute(0, 2, 3, 1).contiguous();
    int b = (int) hwc.size(0);
    int h = (int) hwc.size(1);
    int w = (int) hwc.size(2);
    float[] pixels = new float[b * h * w * 3];
    new org.bytedeco.javacpp.FloatPointer(hwc.data_ptr_float()).capacity(pixels.length).get(pixels);
    Tensor bytes = hwc.mul(new Scalar(255.0)).round().to(ScalarType.Int).contiguous();
    int[] all = new int[pixels.length];
    new IntPointer(bytes.data_ptr_int()).capacity(all.length).get(all);
    List<Images.Image8> images = new ArrayList<>();
    int per = h * w * 3;
    for (int i = 0; i < b; i++) {
      images.add(new Images.Image8(w, h, 3, java.util.Arrays.copyOfRange(all, i * per, (i + 1) * per)));
    }
    return new GeneratedImages(images, pixels, w, h);
  }

  /**
   * Wan-style latents back to the VAE's scale, as diffusers' Wan and Qwen-Image pipelines do:
   * {@code latents / (1 / latents_std) + latents_mean} per channel, in the VAE's dtype.
   */
  static Tensor unnormalize(io.cachedit.models.vae.AutoencoderKLWan vae, Tensor latents) {
    io.cachedit.models.vae.AutoencoderKLWan.Config c = vae.config();
    Tensor mean = torch.tensor(floats(c.latentsMean())).view(1, c.zDim(), 1, 1, 1);
    Tensor invStd = torch.ones(new long[] {1}).div(torch.tensor(floats(c.latentsStd()))).view(1, c.zDim(), 1, 1, 1);
    ScalarType dt = vae.dtype();
    return latents.to(dt).div(invStd.to(dt)).add(mean.to(dt));
  }

  private static float[] floats(double[] d) {
    float[] f = new float[d.length];
    for (int i = 0; i < d.length; i++) {
      f[i] = (float) d[i];
    }
    return f;
  }

  static void checkSize(PromptRequest r, int multiple, String pipeline) {
    if (r.height() % multiple != 0 || r.width() % multiple != 0) {
      throw io.cachedit.error.ConfigException.forField("height", pipeline + ": height and width must be multiples of "
          + multiple + ", got " + r.height() + "x" + r.width() + "; use " + (r.height() / multiple) * multiple + "x"
          + (r.width() / multiple) * multiple);
    }
  }

  static void closeAll(AutoCloseable... parts) {
    RuntimeException first = null;
    for (AutoCloseable p : parts) {
      if (p == null) {
        continue;
      }
      try {
        p.close();
      } catch (Exception e) {
        if (first == null) {
          first = e instanceof RuntimeException re ? re : new WeightLoadException("closing a component: " + e.getMessage(), e);
        }
      }
    }
    if (first != null) {
      throw first;
    }
  }
}
