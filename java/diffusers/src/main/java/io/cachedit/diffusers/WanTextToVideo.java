package io.cachedit.diffusers;

import io.cachedit.diffusers.text.PromptCleaner;
import io.cachedit.diffusers.text.TextTokenizer;
import io.cachedit.error.ConfigException;
import io.cachedit.error.UnsupportedModelException;
import io.cachedit.models.common.DiffusionPipeline;
import io.cachedit.models.t5.T5EncoderModel;
import io.cachedit.models.vae.AutoencoderKLWan;
import io.cachedit.models.wan.WanTransformer3DModel;
import io.cachedit.pipeline.PipelineFolder;
import io.cachedit.pipeline.UniPcScheduler;
import io.cachedit.pipeline.WanPipeline;
import java.util.function.IntConsumer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/**
 * diffusers' {@code WanPipeline} (Wan 2.1 T2V; Wan 2.2 A14B with {@code transformer_2} and its
 * {@code boundary_ratio}): the cleaned prompt through UMT5, its states at the real tokens padded back
 * with zeros to {@code max_sequence_length}, CFG with {@code ""} as the default negative prompt when
 * the guidance scale is above 1, the folder's UniPC (or flow-matching Euler) sampler, and the Wan VAE
 * decoding one latent frame at a time. The result's images are the video's frames; write them as a GIF
 * with {@link GeneratedImages#writeGif}.
 */
final class WanTextToVideo implements TextToImagePipeline {
  static final int DEFAULT_MAX_SEQUENCE_LENGTH = 512;
  static final int DEFAULT_FRAMES = 81;

  private final PipelineFolder folder;
  private final LoadOptions options;
  private final TextTokenizer tokenizer;
  private T5EncoderModel textEncoder;
  private final WanTransformer3DModel transformer;
  private final WanTransformer3DModel transformer2;
  private final AutoencoderKLWan vae;
  private final WanPipeline denoiser;

  WanTextToVideo(PipelineFolder folder, LoadOptions options) {
    this.folder = folder;
    this.options = options;
    TextTokenizer tok = null;
    WanTransformer3DModel tr = null;
    WanTransformer3DModel tr2 = null;
    AutoencoderKLWan v = null;
    try {
      if (folder.settings().containsKey("expand_timesteps") && folder.settings().get("expand_timesteps").asBoolean(false)) {
        throw new UnsupportedModelException(folder.dir() + ": expand_timesteps (Wan 2.2 TI2V-5B) is not supported");
      }
      tok = Components.tokenizer(folder, "tokenizer");
      v = Components.model(folder, "vae", AutoencoderKLWan.class, options);
      tr = Components.transformer(folder, WanTransformer3DModel.class, options);
      double boundary = 0;
      if (folder.component("transformer_2").isPresent()) {
        tr2 = Components.model(folder, "transformer_2", WanTransformer3DModel.class, options);
        com.fasterxml.jackson.databind.JsonNode b = folder.settings().get("boundary_ratio");
        if (b == null || !b.isNumber()) {
          throw ConfigException.forField("boundary_ratio", folder.dir() + "/model_index.json has transformer_2 but no "
              + "boundary_ratio");
        }
        boundary = b.asDouble();
      }
      if (options.keepTextEncoders()) {
        textEncoder = Components.model(folder, "text_encoder", T5EncoderModel.class, options);
      }
      String scheduler = folder.require("scheduler").className();
      denoiser = scheduler.equals("UniPCMultistepScheduler")
          ? new WanPipeline(tr, tr2, UniPcScheduler.fromJson(folder.schedulerConfig()), boundary)
          : new WanPipeline(tr, tr2, folder.flowMatchScheduler(), boundary);
    } catch (RuntimeException e) {
      Components.closeAll(tok, textEncoder, tr, tr2, v);
      throw e;
    }
    tokenizer = tok;
    transformer = tr;
    transformer2 = tr2;
    vae = v;
  }

  @Override
  public String pipelineClass() {
    return "WanPipeline";
  }

  @Override
  public DiffusionPipeline denoiser() {
    return denoiser;
  }

  @Override
  public int defaultSize() {
    return 480;
  }

  @Override
  public int sizeMultiple() {
    return 16;
  }

  /** UMT5 states [1, max_sequence_length, D]: the real tokens' states, zeros after. */
  private Tensor encode(String prompt, int maxSequenceLength) {
    String text = PromptCleaner.clean(prompt);
    TextTokenizer.Encoding e = tokenizer.encode(text, TextTokenizer.Padding.MAX_LENGTH, maxSequenceLength, true);
    Tensor ids = torch.tensor(e.inputIds()).view(1, -1);
    Tensor mask = torch.tensor(e.attentionMask()).view(1, -1);
    Tensor states = textEncoder.encode(ids, mask, false).lastHiddenState();
    int n = e.length();
    Tensor real = states.narrow(1, 0, n);
    return n == maxSequenceLength ? real
        : torch.cat(new org.bytedeco.pytorch.TensorVector(real, torch.zeros(1, maxSequenceLength - n, states.size(2))
            .to(states.scalar_type())), 1);
  }

  @Override
  public synchronized GeneratedImages generate(PromptRequest r, IntConsumer onStep) {
    Components.checkSize(r, sizeMultiple(), "WanPipeline");
    if (r.numImages() != 1) {
      throw ConfigException.forField("num_images", "WanPipeline generates one video per request; got num_images "
          + r.numImages());
    }
    int frames = r.numFrames() != null ? r.numFrames() : DEFAULT_FRAMES;
    int maxSeq = r.maxSequenceLength() != null ? r.maxSequenceLength() : DEFAULT_MAX_SEQUENCE_LENGTH;
    boolean cfg = r.guidanceScale() > 1;
    try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
      Tensor pos;
      Tensor neg = null;
      boolean loaded = textEncoder == null;
      try {
        if (loaded) {
          textEncoder = Components.model(folder, "text_encoder", T5EncoderModel.class, options);
        }
        pos = encode(r.prompt(), maxSeq);
        if (cfg) {
          neg = encode(r.negativePrompt() == null ? "" : r.negativePrompt(), maxSeq);
        }
      } finally {
        if (loaded) {
          Components.closeAll(textEncoder);
          textEncoder = null;
        }
      }
      double guidance2 = r.guidanceScale();  // diffusers: guidance_scale_2 defaults to guidance_scale
      Tensor latents = denoiser.generate(new WanPipeline.Request(pos.to(transformer.dtype()),
          neg == null ? null : neg.to(transformer.dtype()), frames, r.height(), r.width(), r.steps(), r.guidanceScale(),
          guidance2, r.seed()), onStep);
      Tensor video = vae.decode(Components.unnormalize(vae, latents));  // [1, 3, F, H, W]
      return Components.images(video.select(0, 0).permute(1, 0, 2, 3));  // frames as images
    }
  }

  @Override
  public void close() {
    Components.closeAll(tokenizer, textEncoder, transformer, transformer2, vae);
  }
}
