package io.cachedit.fashion;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.cachedit.io.SafetensorsFile;
import io.cachedit.io.SafetensorsWriter;
import io.cachedit.error.WeightLoadException;
import io.cachedit.kernels.NativeScope;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * The bundled model's "text encoder": a learned table from a closed prompt vocabulary (the ten
 * Fashion-MNIST class names, plus the empty prompt for classifier-free guidance) to FLUX's two text
 * inputs, {@code prompt_embeds} [tokens, joint_attention_dim] and {@code pooled_prompt_embeds}
 * [pooled_projection_dim]. Saved as {@code text_encoder/config.json} + {@code model.safetensors}.
 * Holds its own handles on the two tables: close it.
 */
public final class ClassTextEncoder implements AutoCloseable {
  public static final String CLASS_NAME = "ClassTextEncoder";

  private final NativeScope owner = NativeScope.owner(CLASS_NAME);
  private final Tensor promptEmbeds;
  private final Tensor pooledPromptEmbeds;

  /**
   * @param promptEmbeds [classes + 1, tokens, dim]; the last row is the empty prompt
   * @param pooledPromptEmbeds [classes + 1, pooled dim]
   */
  public ClassTextEncoder(Tensor promptEmbeds, Tensor pooledPromptEmbeds) {
    this.promptEmbeds = owner.keep(promptEmbeds);
    this.pooledPromptEmbeds = owner.keep(pooledPromptEmbeds);
  }

  /** [classes + 1, tokens, dim]. */
  public Tensor promptEmbeds() {
    owner.ensureOpen();
    return promptEmbeds;
  }

  /** [classes + 1, pooled dim]. */
  public Tensor pooledPromptEmbeds() {
    owner.ensureOpen();
    return pooledPromptEmbeds;
  }

  @Override
  public void close() {
    owner.close();
  }

  public List<String> prompts() {
    return FashionMnist.CLASSES;
  }

  /** Index of a prompt: a class name (case and surrounding blanks ignored), or the null class for "". */
  public int index(String prompt) {
    String p = prompt.trim().toLowerCase(Locale.ROOT);
    if (p.isEmpty()) {
      return prompts().size();
    }
    int i = prompts().indexOf(p);
    if (i < 0) {
      throw new IllegalArgumentException("prompt \"" + prompt + "\" is not one this model knows; use one of "
          + prompts() + " (or \"\" for unconditional)");
    }
    return i;
  }

  /** [1, tokens, dim] prompt embeddings of {@code prompt}. */
  public Tensor promptEmbeds(String prompt) {
    return promptEmbeds().narrow(0, index(prompt), 1);
  }

  /** [1, pooled dim]. */
  public Tensor pooledPromptEmbeds(String prompt) {
    return pooledPromptEmbeds().narrow(0, index(prompt), 1);
  }

  public void save(Path dir) {
    try {
      Files.createDirectories(dir);
      ObjectMapper json = new ObjectMapper();
      ObjectNode config = json.createObjectNode();
      config.put("_class_name", CLASS_NAME);
      ArrayNode classes = config.putArray("prompts");
      prompts().forEach(classes::add);
      config.put("null_prompt", "");
      config.put("tokens", promptEmbeds.size(1));
      Files.writeString(dir.resolve("config.json"), json.writerWithDefaultPrettyPrinter().writeValueAsString(config));
      Map<String, Tensor> tensors = new LinkedHashMap<>();
      tensors.put("prompt_embeds", promptEmbeds.contiguous());
      tensors.put("pooled_prompt_embeds", pooledPromptEmbeds.contiguous());
      SafetensorsWriter.write(dir.resolve("model.safetensors"), tensors, Map.of("format", "pt"));
    } catch (IOException e) {
      throw new WeightLoadException("cannot write text encoder to " + dir + ": " + e.getMessage(), e);
    }
  }

  /** Loads {@code dir/config.json} and {@code dir/model.safetensors} (tensors are copied, fp32). */
  public static ClassTextEncoder load(Path dir) {
    Path config = dir.resolve("config.json");
    try {
      JsonNode c = new ObjectMapper().readTree(Files.readString(config));
      if (c == null || !CLASS_NAME.equals(c.path("_class_name").asText())) {
        throw new WeightLoadException(config + ": _class_name must be " + CLASS_NAME);
      }
      List<String> prompts = new ArrayList<>();
      c.path("prompts").forEach(n -> prompts.add(n.asText()));
      if (!prompts.equals(FashionMnist.CLASSES)) {
        throw new WeightLoadException(config + ": prompts " + prompts + " differ from " + FashionMnist.CLASSES);
      }
    } catch (IOException e) {
      throw new WeightLoadException("cannot read " + config + ": " + e.getMessage(), e);
    }
    try (SafetensorsFile f = SafetensorsFile.open(dir.resolve("model.safetensors"))) {
      Tensor prompt = f.tensor("prompt_embeds");
      Tensor pooled = f.tensor("pooled_prompt_embeds");
      long rows = FashionMnist.CLASSES.size() + 1;
      if (prompt.dim() != 3 || prompt.size(0) != rows || pooled.dim() != 2 || pooled.size(0) != rows) {
        throw new WeightLoadException(dir.resolve("model.safetensors") + ": expected prompt_embeds [" + rows
            + ", T, D] and pooled_prompt_embeds [" + rows + ", P]");
      }
      return new ClassTextEncoder(prompt.to(ScalarType.Float).clone(), pooled.to(ScalarType.Float).clone());
    }
  }

}
