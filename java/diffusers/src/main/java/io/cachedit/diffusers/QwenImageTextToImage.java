package io.cachedit.diffusers;

import io.cachedit.diffusers.text.TextTokenizer;
import io.cachedit.models.common.DiffusionPipeline;
import io.cachedit.models.qwenimage.QwenImageTransformer2DModel;
import io.cachedit.models.qwentext.QwenTextModel;
import io.cachedit.models.vae.AutoencoderKLWan;
import io.cachedit.pipeline.FluxPipeline;
import io.cachedit.pipeline.PipelineFolder;
import io.cachedit.pipeline.QwenImagePipeline;
import java.util.function.IntConsumer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * diffusers' {@code QwenImagePipeline}: the prompt in Qwen-Image's description template, Qwen2.5-VL's
 * last hidden state with the template's first 34 tokens dropped, then {@link QwenImagePipeline}'s
 * sampling (true CFG with a negative prompt and {@code trueCfgScale} > 1) and the Qwen-Image VAE (Wan's
 * network) on one frame, un-normalised by its latents_mean / latents_std.
 */
final class QwenImageTextToImage implements TextToImagePipeline {
  /** diffusers' template and the tokens of its prefix the embeddings leave out. */
  static final String TEMPLATE = "<|im_start|>system\nDescribe the image by detailing the color, shape, size, texture, "
      + "quantity, text, spatial relationships of the objects and background:<|im_end|>\n<|im_start|>user\n%s"
      + "<|im_end|>\n<|im_start|>assistant\n";
  static final int DROP = 34;
  /** diffusers' tokenizer_max_length (prompt tokens after the dropped prefix) and max_sequence_length. */
  static final int TOKENIZER_MAX_LENGTH = 1024;

  private final PipelineFolder folder;
  private final LoadOptions options;
  private final TextTokenizer tokenizer;
  private QwenTextModel textEncoder;
  private final QwenImageTransformer2DModel transformer;
  private final AutoencoderKLWan vae;
  private final QwenImagePipeline denoiser;

  QwenImageTextToImage(PipelineFolder folder, LoadOptions options) {
    this.folder = folder;
    this.options = options;
    TextTokenizer tok = null;
    QwenImageTransformer2DModel tr = null;
    AutoencoderKLWan v = null;
    try {
      tok = Components.tokenizer(folder, "tokenizer");
      v = Components.model(folder, "vae", AutoencoderKLWan.class, options);
      tr = Components.transformer(folder, QwenImageTransformer2DModel.class, options);
      if (options.keepTextEncoders()) {
        textEncoder = Components.model(folder, "text_encoder", QwenTextModel.class, options);
      }
      denoiser = new QwenImagePipeline(tr, folder.flowMatchScheduler(), v.config().spatialScale());
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
    return "QwenImagePipeline";
  }

  @Override
  public DiffusionPipeline denoiser() {
    return denoiser;
  }

  @Override
  public int defaultSize() {
    return 128 * denoiser.vaeScaleFactor();
  }

  @Override
  public int sizeMultiple() {
    return denoiser.vaeScaleFactor() * 2;
  }

  /** [embeds [n, S, D], mask [n, S] or null when all ones] of one prompt. */
  private Tensor[] encode(String prompt, int maxSequenceLength, int n) {
    String text = String.format(java.util.Locale.ROOT, TEMPLATE, prompt);
    TextTokenizer.Encoding e = tokenizer.encode(text, TextTokenizer.Padding.LONGEST, TOKENIZER_MAX_LENGTH + DROP, true);
    Tensor ids = torch.tensor(e.inputIds()).view(1, -1);
    Tensor states = textEncoder.encode(ids, null, false).lastHiddenState();
    long keep = Math.max(0, e.length() - DROP);
    Tensor embeds = states.narrow(1, Math.min(DROP, e.length()), keep);
    embeds = embeds.narrow(1, 0, Math.min(keep, maxSequenceLength));
    return new Tensor[] {Components.repeatRows(embeds, n), null};
  }

  @Override
  public synchronized GeneratedImages generate(PromptRequest r, IntConsumer onStep) {
    Components.checkSize(r, sizeMultiple(), "QwenImagePipeline");
    int maxSeq = r.maxSequenceLength() != null ? r.maxSequenceLength() : TOKENIZER_MAX_LENGTH;
    boolean cfg = r.trueCfgScale() > 1 && r.negativePrompt() != null;
    try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
      Tensor[] pos;
      Tensor[] neg = null;
      boolean loaded = textEncoder == null;
      try {
        if (loaded) {
          textEncoder = Components.model(folder, "text_encoder", QwenTextModel.class, options);
        }
        pos = encode(r.prompt(), maxSeq, r.numImages());
        if (cfg) {
          neg = encode(r.negativePrompt(), maxSeq, r.numImages());
        }
      } finally {
        if (loaded) {
          Components.closeAll(textEncoder);
          textEncoder = null;
        }
      }
      Tensor packed = denoiser.generate(new QwenImagePipeline.Request(pos[0], pos[1], neg == null ? null : neg[0],
          neg == null ? null : neg[1], r.height(), r.width(), r.steps(), cfg ? r.trueCfgScale() : 1.0, r.seed()), onStep);
      int s = denoiser.vaeScaleFactor();
      Tensor latents = FluxPipeline.unpack(packed, 2 * (r.height() / (s * 2)), 2 * (r.width() / (s * 2))).unsqueeze(2);
      Tensor image = vae.decode(Components.unnormalize(vae, latents)).select(2, 0);
      return Components.images(image);
    }
  }

  @Override
  public void close() {
    Components.closeAll(tokenizer, textEncoder, transformer, vae);
  }
}
