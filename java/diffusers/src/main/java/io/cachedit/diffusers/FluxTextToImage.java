package io.cachedit.diffusers;

import io.cachedit.diffusers.text.TextTokenizer;
import io.cachedit.models.clip.CLIPTextModel;
import io.cachedit.models.common.DiffusionPipeline;
import io.cachedit.models.flux.FluxTransformer2DModel;
import io.cachedit.models.t5.T5EncoderModel;
import io.cachedit.models.vae.AutoencoderKL;
import io.cachedit.pipeline.FluxPipeline;
import io.cachedit.pipeline.PipelineFolder;
import java.util.function.IntConsumer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;

/**
 * diffusers' {@code FluxPipeline} (FLUX.1 dev and schnell): the CLIP text model's pooled output and T5's
 * last hidden state of the prompt, then {@link FluxPipeline}'s sampling, then the VAE. The prompt goes
 * to both encoders (diffusers' {@code prompt_2} defaults to it); a negative prompt with
 * {@code trueCfgScale} > 1 adds true CFG as two calls per step, as diffusers makes them.
 */
final class FluxTextToImage implements TextToImagePipeline {
  /** diffusers' default {@code max_sequence_length} for FLUX's T5. */
  static final int DEFAULT_MAX_SEQUENCE_LENGTH = 512;

  private final PipelineFolder folder;
  private final LoadOptions options;
  private final TextTokenizer clipTokenizer;
  private final TextTokenizer t5Tokenizer;
  private CLIPTextModel clip;
  private T5EncoderModel t5;
  private final FluxTransformer2DModel transformer;
  private final AutoencoderKL vae;
  private final FluxPipeline denoiser;

  FluxTextToImage(PipelineFolder folder, LoadOptions options) {
    this.folder = folder;
    this.options = options;
    TextTokenizer ct = null;
    TextTokenizer tt = null;
    FluxTransformer2DModel tr = null;
    AutoencoderKL v = null;
    try {
      ct = Components.tokenizer(folder, "tokenizer");
      tt = Components.tokenizer(folder, "tokenizer_2");
      v = Components.model(folder, "vae", AutoencoderKL.class, options);
      tr = Components.transformer(folder, FluxTransformer2DModel.class, options);
      if (options.keepTextEncoders()) {
        clip = Components.model(folder, "text_encoder", CLIPTextModel.class, options);
        t5 = Components.model(folder, "text_encoder_2", T5EncoderModel.class, options);
      }
      denoiser = new FluxPipeline(tr, folder.flowMatchScheduler(), v.config().scaleFactor(), 2);
    } catch (RuntimeException e) {
      Components.closeAll(ct, tt, clip, t5, tr, v);
      throw e;
    }
    clipTokenizer = ct;
    t5Tokenizer = tt;
    transformer = tr;
    vae = v;
  }

  @Override
  public String pipelineClass() {
    return "FluxPipeline";
  }

  @Override
  public DiffusionPipeline denoiser() {
    return denoiser;
  }

  @Override
  public int defaultSize() {
    return 128 * vae.config().scaleFactor();  // FluxPipeline.default_sample_size x vae_scale_factor
  }

  @Override
  public int sizeMultiple() {
    return denoiser.pixelsPerToken();
  }

  /** [pooled CLIP [n, D], T5 states [n, S, D]] of one prompt, repeated for n images. */
  private Tensor[] encode(String prompt, int maxSequenceLength, int n) {
    int clipLength = clipTokenizer.modelMaxLength() == Integer.MAX_VALUE ? 77 : clipTokenizer.modelMaxLength();
    Tensor pooled = clip.encode(Components.ids(clipTokenizer, prompt, clipLength, "CLIP"), null, false).pooled();
    Tensor states = t5.encode(Components.ids(t5Tokenizer, prompt, maxSequenceLength, "T5"), null, false)
        .lastHiddenState();
    return new Tensor[] {Components.repeatRows(pooled, n), Components.repeatRows(states, n)};
  }

  @Override
  public synchronized GeneratedImages generate(PromptRequest r, IntConsumer onStep) {
    Components.checkSize(r, sizeMultiple(), "FluxPipeline");
    int maxSeq = r.maxSequenceLength() != null ? r.maxSequenceLength() : DEFAULT_MAX_SEQUENCE_LENGTH;
    boolean trueCfg = r.trueCfgScale() > 1 && r.negativePrompt() != null;
    try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
      Tensor[] pos;
      Tensor[] neg = null;
      boolean loaded = clip == null;
      try {
        if (loaded) {
          clip = Components.model(folder, "text_encoder", CLIPTextModel.class, options);
          t5 = Components.model(folder, "text_encoder_2", T5EncoderModel.class, options);
        }
        pos = encode(r.prompt(), maxSeq, r.numImages());
        if (trueCfg) {
          neg = encode(r.negativePrompt(), maxSeq, r.numImages());
        }
      } finally {
        if (loaded) {
          Components.closeAll(clip, t5);
          clip = null;
          t5 = null;
        }
      }
      Tensor latents = denoiser.generate(new FluxPipeline.Request(pos[1], pos[0], neg == null ? null : neg[1],
          neg == null ? null : neg[0], r.height(), r.width(), r.steps(), r.guidanceScale(),
          trueCfg ? r.trueCfgScale() : 1.0, false, 1, r.seed()), onStep);
      return Components.decode(vae, latents);
    }
  }

  @Override
  public void close() {
    Components.closeAll(clipTokenizer, t5Tokenizer, clip, t5, transformer, vae);
  }
}
