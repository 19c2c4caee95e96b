package io.cachedit.diffusers;

import io.cachedit.diffusers.text.TextTokenizer;
import io.cachedit.models.clip.CLIPTextModel;
import io.cachedit.models.common.DiffusionPipeline;
import io.cachedit.models.sd3.SD3Transformer2DModel;
import io.cachedit.models.t5.T5EncoderModel;
import io.cachedit.models.vae.AutoencoderKL;
import io.cachedit.pipeline.PipelineFolder;
import io.cachedit.pipeline.SD3Pipeline;
import java.util.List;
import java.util.function.IntConsumer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

/**
 * diffusers' {@code StableDiffusion3Pipeline} (SD3 / SD3.5): both CLIP text models' penultimate hidden
 * states side by side, zero-padded to T5's width and followed by T5's states; their projected pooled
 * outputs concatenated; CFG with {@code ""} as the default negative prompt. A folder without
 * {@code text_encoder_3} runs with zeros in T5's place, as diffusers does.
 */
final class SD3TextToImage implements TextToImagePipeline {
  /** diffusers' default {@code max_sequence_length} for SD3's T5. */
  static final int DEFAULT_MAX_SEQUENCE_LENGTH = 256;

  private final PipelineFolder folder;
  private final LoadOptions options;
  private final TextTokenizer tokenizer1;
  private final TextTokenizer tokenizer2;
  private final TextTokenizer tokenizer3;
  private CLIPTextModel clip1;
  private CLIPTextModel clip2;
  private T5EncoderModel t5;
  private final SD3Transformer2DModel transformer;
  private final AutoencoderKL vae;
  private final SD3Pipeline denoiser;
  private final boolean hasT5;

  SD3TextToImage(PipelineFolder folder, LoadOptions options) {
    this.folder = folder;
    this.options = options;
    this.hasT5 = folder.component("text_encoder_3").isPresent();
    TextTokenizer a = null;
    TextTokenizer b = null;
    TextTokenizer c = null;
    SD3Transformer2DModel tr = null;
    AutoencoderKL v = null;
    try {
      a = Components.tokenizer(folder, "tokenizer");
      b = Components.tokenizer(folder, "tokenizer_2");
      c = hasT5 ? Components.tokenizer(folder, "tokenizer_3") : null;
      v = Components.model(folder, "vae", AutoencoderKL.class, options);
      tr = Components.transformer(folder, SD3Transformer2DModel.class, options);
      if (options.keepTextEncoders()) {
        loadEncoders();
      }
      denoiser = new SD3Pipeline(tr, folder.flowMatchScheduler(), v.config().scaleFactor());
    } catch (RuntimeException e) {
      Components.closeAll(a, b, c, clip1, clip2, t5, tr, v);
      throw e;
    }
    tokenizer1 = a;
    tokenizer2 = b;
    tokenizer3 = c;
    transformer = tr;
    vae = v;
  }

  private void loadEncoders() {
    clip1 = Components.model(folder, "text_encoder", CLIPTextModel.class, options);
    clip2 = Components.model(folder, "text_encoder_2", CLIPTextModel.class, options);
    t5 = hasT5 ? Components.model(folder, "text_encoder_3", T5EncoderModel.class, options) : null;
  }

  @Override
  public String pipelineClass() {
    return "StableDiffusion3Pipeline";
  }

  @Override
  public DiffusionPipeline denoiser() {
    return denoiser;
  }

  @Override
  public int defaultSize() {
    return transformer.config().sampleSize() * denoiser.vaeScaleFactor();
  }

  @Override
  public int sizeMultiple() {
    return denoiser.vaeScaleFactor() * transformer.config().patchSize();
  }

  private int clipLength() {
    return tokenizer1.modelMaxLength() == Integer.MAX_VALUE ? 77 : tokenizer1.modelMaxLength();
  }

  /** [prompt_embeds [n, 2*77 or 77+S, D], pooled [n, P]] of one prompt, repeated for n images. */
  private Tensor[] encode(String prompt, int maxSequenceLength, int n) {
    int length = clipLength();
    CLIPTextModel.Output o1 = clip1.encode(Components.ids(tokenizer1, prompt, length, "CLIP"), null, true);
    CLIPTextModel.Output o2 = clip2.encode(Components.ids(tokenizer2, prompt, length, "CLIP 2"), null, true);
    List<Tensor> h1 = o1.hiddenStates();
    List<Tensor> h2 = o2.hiddenStates();
    Tensor clipStates = torch.cat(new TensorVector(h1.get(h1.size() - 2), h2.get(h2.size() - 2)), -1);
    long width = transformer.config().jointAttentionDim();
    Tensor t5States = t5 != null
        ? t5.encode(Components.ids(tokenizer3, prompt, maxSequenceLength, "T5"), null, false).lastHiddenState()
        : torch.zeros(1, length, width).to(clipStates.scalar_type());
    clipStates = torch.constant_pad_nd(clipStates, new long[] {0, t5States.size(-1) - clipStates.size(-1)},
        new org.bytedeco.pytorch.Scalar(0.0));
    Tensor embeds = torch.cat(new TensorVector(clipStates, t5States), -2);
    Tensor pooled = torch.cat(new TensorVector(o1.textEmbeds(), o2.textEmbeds()), -1);
    return new Tensor[] {Components.repeatRows(embeds, n), Components.repeatRows(pooled, n)};
  }

  @Override
  public synchronized GeneratedImages generate(PromptRequest r, IntConsumer onStep) {
    Components.checkSize(r, sizeMultiple(), "StableDiffusion3Pipeline");
    int maxSeq = r.maxSequenceLength() != null ? r.maxSequenceLength() : DEFAULT_MAX_SEQUENCE_LENGTH;
    boolean cfg = r.guidanceScale() > 1;
    try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
      Tensor[] pos;
      Tensor[] neg = null;
      boolean loaded = clip1 == null;
      try {
        if (loaded) {
          loadEncoders();
        }
        pos = encode(r.prompt(), maxSeq, r.numImages());
        if (cfg) {
          neg = encode(r.negativePrompt() == null ? "" : r.negativePrompt(), maxSeq, r.numImages());
        }
      } finally {
        if (loaded) {
          Components.closeAll(clip1, clip2, t5);
          clip1 = null;
          clip2 = null;
          t5 = null;
        }
      }
      Tensor latents = denoiser.generate(SD3Pipeline.Request.of(pos[0], pos[1], neg == null ? null : neg[0],
          neg == null ? null : neg[1], r.height(), r.width(), r.steps(), r.guidanceScale(), r.seed()), onStep);
      return Components.decode(vae, latents);
    }
  }

  @Override
  public void close() {
    Components.closeAll(tokenizer1, tokenizer2, tokenizer3, clip1, clip2, t5, transformer, vae);
  }
}
