package io.cachedit.diffusers;

import io.cachedit.diffusers.text.TextTokenizer;
import io.cachedit.models.common.DiffusionPipeline;
import io.cachedit.models.qwentext.QwenTextModel;
import io.cachedit.models.vae.AutoencoderKL;
import io.cachedit.models.zimage.ZImageTransformer2DModel;
import io.cachedit.pipeline.PipelineFolder;
import io.cachedit.pipeline.ZImagePipeline;
import java.util.ArrayList;
import java.util.List;
import java.util.function.IntConsumer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/**
 * diffusers' {@code ZImagePipeline} (Z-Image, Z-Image-Turbo): the prompt in Qwen3's chat template (one
 * user message, generation prompt, thinking enabled), Qwen3's second-to-last hidden state at the real
 * (unpadded) tokens as caption features, then {@link ZImagePipeline}'s sampling and the VAE. CFG runs
 * for any guidance scale > 0 with {@code ""} as the default negative prompt (Turbo: guidance 0).
 */
final class ZImageTextToImage implements TextToImagePipeline {
  /** diffusers' default {@code max_sequence_length} for Z-Image. */
  static final int DEFAULT_MAX_SEQUENCE_LENGTH = 512;

  private final PipelineFolder folder;
  private final LoadOptions options;
  private final TextTokenizer tokenizer;
  private QwenTextModel textEncoder;
  private final ZImageTransformer2DModel transformer;
  private final AutoencoderKL vae;
  private final ZImagePipeline denoiser;

  ZImageTextToImage(PipelineFolder folder, LoadOptions options) {
    this.folder = folder;
    this.options = options;
    TextTokenizer tok = null;
    ZImageTransformer2DModel tr = null;
    AutoencoderKL v = null;
    try {
      tok = Components.tokenizer(folder, "tokenizer");
      tok.applyChatTemplate("", true);  // a template we cannot render fails at load, not at the first prompt
      v = Components.model(folder, "vae", AutoencoderKL.class, options);
      tr = Components.transformer(folder, ZImageTransformer2DModel.class, options);
      if (options.keepTextEncoders()) {
        textEncoder = Components.model(folder, "text_encoder", QwenTextModel.class, options);
      }
      denoiser = new ZImagePipeline(tr, folder.flowMatchScheduler(), v.config().scaleFactor());
    } catch (RuntimeException e) {
      Components.closeAll(tok, textEncoder, tr, v);
      throw e;
    }
    tokenizer = tok;
    transformer = tr;
    vae = v;
  }

  @Override
  public String pipelineClass() {
    return "ZImagePipeline";
  }

  @Override
  public DiffusionPipeline denoiser() {
    return denoiser;
  }

  @Override
  public int defaultSize() {
    return 1024;  // ZImagePipeline: height = height or 1024
  }

  @Override
  public int sizeMultiple() {
    return denoiser.vaeScaleFactor() * 2;
  }

  /** The caption features of one prompt [tokens, cap_feat_dim], {@code n} times. */
  private List<Tensor> encode(String prompt, int maxSequenceLength, int n) {
    String text = tokenizer.applyChatTemplate(prompt, true);
    TextTokenizer.Encoding e = tokenizer.encode(text, TextTokenizer.Padding.MAX_LENGTH, maxSequenceLength, true);
    if (e.truncated()) {
      org.slf4j.LoggerFactory.getLogger(ZImageTextToImage.class).warn(
          "the prompt was truncated to {} tokens (max_sequence_length) for the text encoder", maxSequenceLength);
    }
    Tensor ids = torch.tensor(e.inputIds()).view(1, -1);
    Tensor mask = torch.tensor(e.attentionMask()).view(1, -1);
    List<Tensor> hidden = textEncoder.encode(ids, mask, true).hiddenStates();
    Tensor features = hidden.get(hidden.size() - 2).select(0, 0).narrow(0, 0, e.length());  // right padding
    List<Tensor> out = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      out.add(features);
    }
    return out;
  }

  @Override
  public synchronized GeneratedImages generate(PromptRequest r, IntConsumer onStep) {
    Components.checkSize(r, sizeMultiple(), "ZImagePipeline");
    int maxSeq = r.maxSequenceLength() != null ? r.maxSequenceLength() : DEFAULT_MAX_SEQUENCE_LENGTH;
    boolean cfg = r.guidanceScale() > 0;
    try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
      List<Tensor> pos;
      List<Tensor> neg = null;
      boolean loaded = textEncoder == null;
      try {
        if (loaded) {
          textEncoder = Components.model(folder, "text_encoder", QwenTextModel.class, options);
        }
        pos = encode(r.prompt(), maxSeq, r.numImages());
        if (cfg) {
          neg = encode(r.negativePrompt() == null ? "" : r.negativePrompt(), maxSeq, r.numImages());
        }
      } finally {
        if (loaded) {
          Components.closeAll(textEncoder);
          textEncoder = null;
        }
      }
      Tensor latents = denoiser.generate(new ZImagePipeline.Request(pos, neg, r.height(), r.width(), r.steps(),
          r.guidanceScale(), 0.0, 1.0, r.seed()), onStep);
      return Components.decode(vae, latents);
    }
  }

  @Override
  public void close() {
    Components.closeAll(tokenizer, textEncoder, transformer, vae);
  }
}
