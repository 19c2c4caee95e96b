package io.cachedit.diffusers.text;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.cachedit.error.ConfigException;
import io.cachedit.error.WeightLoadException;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

/**
 * A tokenizer folder as transformers 5 loads it ({@code AutoTokenizer.from_pretrained(dir)}): the
 * class named by {@code tokenizer_config.json} ({@code CLIPTokenizer}, {@code T5Tokenizer}; the
 * {@code Fast} suffix is the same class) wraps the vocabulary from {@code vocab.json} +
 * {@code merges.txt}, {@code spiece.model} or {@code tokenizer.json} in its own pipeline; any other
 * class runs its {@code tokenizer.json} as saved. Encoding runs Hugging Face's tokenizers library (the
 * one transformers runs), so ids equal the Python tokenizer's; padding, truncation and masks follow
 * transformers' {@code __call__}. Thread-safe; close it to free the native tokenizer.
 */
public final class TextTokenizer implements AutoCloseable {
  /** transformers' {@code padding}: {@code "max_length"}, {@code "longest"} (one text: none), none. */
  public enum Padding {
    MAX_LENGTH, LONGEST, NONE;

    /** {@code max_length}, {@code longest}, {@code none} (or {@code do_not_pad}, {@code false}). */
    public static Padding parse(String name) {
      return switch (name.toLowerCase(java.util.Locale.ROOT)) {
        case "max_length" -> MAX_LENGTH;
        case "longest", "true" -> LONGEST;
        case "none", "do_not_pad", "false" -> NONE;
        default -> throw ConfigException.forField("padding", "padding " + name + " is not one of max_length, longest, none");
      };
    }
  }

  /**
   * One encoded text.
   *
   * @param inputIds token ids, special tokens included, padded as asked
   * @param attentionMask 1 for tokens, 0 for padding
   * @param truncated whether tokens were cut to fit the maximum length
   */
  public record Encoding(long[] inputIds, long[] attentionMask, boolean truncated) {
    /** Tokens that are not padding. */
    public int length() {
      int n = 0;
      for (long m : attentionMask) {
        n += (int) m;
      }
      return n;
    }
  }

  /** transformers' VERY_LARGE_INTEGER and anything past an int: the tokenizer sets no limit. */
  private static final int UNLIMITED = Integer.MAX_VALUE;

  private final Path dir;
  private final String tokenizerClass;
  private final String json;
  private final int modelMaxLength;
  private final boolean padLeft;
  private final long padTokenId;
  /**
   * One native tokenizer per truncation length asked for (truncation is a setting of the native
   * tokenizer). At most {@link #CACHED} are kept, so a long-running caller passing ever new lengths
   * does not grow: an evicted one is left to DJL's finaliser, as a caller may still be using it.
   */
  private final Map<Integer, HuggingFaceTokenizer> byMaxLength = new java.util.LinkedHashMap<>(16, 0.75f, true);
  private static final int CACHED = 8;
  private volatile boolean closed;

  private final String chatTemplate;

  private TextTokenizer(Path dir, String tokenizerClass, String json, int modelMaxLength, boolean padLeft,
      long padTokenId, String chatTemplate) {
    this.chatTemplate = chatTemplate;
    this.dir = dir;
    this.tokenizerClass = tokenizerClass;
    this.json = json;
    this.modelMaxLength = modelMaxLength;
    this.padLeft = padLeft;
    this.padTokenId = padTokenId;
  }

  /**
   * Loads the tokenizer folder {@code dir} (a pipeline's {@code tokenizer/}, {@code tokenizer_2/}, ...);
   * a missing or malformed file is a {@link WeightLoadException} naming it.
   */
  public static TextTokenizer load(Path dir) {
    if (!Files.isDirectory(dir)) {
      throw new WeightLoadException("tokenizer folder " + dir + " does not exist");
    }
    Path configFile = dir.resolve("tokenizer_config.json");
    JsonNode config = Files.isRegularFile(configFile) ? TokenizerJson.readJson(configFile)
        : TokenizerJson.JSON.createObjectNode();
    Path tokenizerJson = dir.resolve("tokenizer.json");
    Path vocab = dir.resolve("vocab.json");
    Path merges = dir.resolve("merges.txt");
    Path spiece = dir.resolve("spiece.model");
    String cls = config.path("tokenizer_class").asText("");
    if (cls.endsWith("Fast")) {
      cls = cls.substring(0, cls.length() - 4);
    }
    if (cls.isEmpty()) {  // no config: what the files are
      cls = Files.isRegularFile(spiece) ? "T5Tokenizer" : Files.isRegularFile(merges) && Files.isRegularFile(vocab)
          && !Files.isRegularFile(tokenizerJson) ? "CLIPTokenizer" : "";
    }
    ObjectNode built;
    List<TokenizerJson.Added> added = addedTokens(config, configFile);
    // read once (real ones are megabytes); a class re-wrapping it keeps its added tokens
    JsonNode fileJson = Files.isRegularFile(tokenizerJson) ? TokenizerJson.readJson(tokenizerJson) : null;
    if (fileJson != null && !cls.isEmpty()) {
      added.addAll(0, TokenizerJson.addedTokens(fileJson));
    }
    switch (cls) {
      case "CLIPTokenizer" -> {
        String bos = token(config, "bos_token", "<|startoftext|>");
        String eos = token(config, "eos_token", "<|endoftext|>");
        String unk = token(config, "unk_token", "<|endoftext|>");
        String pad = token(config, "pad_token", "<|endoftext|>");
        ObjectNode model;
        if (fileJson != null) {
          model = TokenizerJson.bpeFromTokenizerJson(fileJson, tokenizerJson, unk);
        } else if (Files.isRegularFile(vocab) && Files.isRegularFile(merges)) {
          model = TokenizerJson.bpeFromFiles(vocab, merges, unk);
        } else {
          throw new WeightLoadException(dir + " holds a CLIPTokenizer but neither tokenizer.json nor vocab.json + "
              + "merges.txt; copy the tokenizer folder whole");
        }
        for (String s : List.of(bos, eos, unk, pad)) {
          added.add(TokenizerJson.Added.special(s));
        }
        addSpecialList(config, added);
        built = TokenizerJson.clip(model, added, bos, eos);
      }
      case "T5Tokenizer", "UMT5Tokenizer" -> {
        String eos = token(config, "eos_token", "</s>");
        String unk = token(config, "unk_token", "<unk>");
        String pad = token(config, "pad_token", "<pad>");
        int extraIds = config.path("extra_ids").asInt(100);
        TokenizerJson.Vocabulary v;
        if (fileJson != null) {
          v = TokenizerJson.unigramFromTokenizerJson(fileJson, tokenizerJson);
        } else if (Files.isRegularFile(spiece)) {
          v = TokenizerJson.unigramFromSpm(SentencePieceModel.read(spiece), extraIds, spiece);
        } else {
          throw new WeightLoadException(dir + " holds a " + cls + " but neither tokenizer.json nor spiece.model; copy "
              + "the tokenizer folder whole");
        }
        for (String s : List.of(eos, unk, pad)) {
          added.add(TokenizerJson.Added.special(s));
        }
        v.spmAddedTokens().forEach(t -> added.add(TokenizerJson.Added.special(t)));
        v.spmUserTokens().forEach(t -> added.add(new TokenizerJson.Added(t, false, false, false, false, false)));
        addSpecialList(config, added);
        for (int i = 0; i < extraIds; i++) {
          added.add(TokenizerJson.Added.special("<extra_id_" + i + ">"));
        }
        built = TokenizerJson.t5(v, added, eos);
      }
      case "Qwen2Tokenizer" -> {
        String eos = token(config, "eos_token", "<|endoftext|>");
        String unk = token(config, "unk_token", "<|endoftext|>");
        String pad = token(config, "pad_token", "<|endoftext|>");
        String bos = token(config, "bos_token", null);
        ObjectNode model;
        if (fileJson != null) {
          model = TokenizerJson.bpeFromTokenizerJson(fileJson, tokenizerJson, null, "");
        } else if (Files.isRegularFile(vocab) && Files.isRegularFile(merges)) {
          model = TokenizerJson.bpeFromFiles(vocab, merges, null, "");
        } else {
          throw new WeightLoadException(dir + " holds a Qwen2Tokenizer but neither tokenizer.json nor vocab.json + "
              + "merges.txt; copy the tokenizer folder whole");
        }
        for (String s : new String[] {bos, eos, unk, pad}) {
          if (s != null) {
            added.add(TokenizerJson.Added.special(s));
          }
        }
        addSpecialList(config, added);
        built = TokenizerJson.qwen2(model, added);
      }
      default -> {
        if (fileJson == null) {
          throw new WeightLoadException(dir + ": tokenizer class \"" + cls + "\" is read from tokenizer.json, which is "
              + "missing; cachedit builds CLIPTokenizer and T5Tokenizer from their vocabulary files");
        }
        built = (ObjectNode) fileJson;
      }
    }
    String text;
    try {
      text = TokenizerJson.JSON.writeValueAsString(built);
    } catch (IOException e) {
      throw new WeightLoadException(dir + ": " + e.getMessage(), e);
    }
    int maxLength = maxLength(config.get("model_max_length"));
    boolean left = "left".equals(config.path("padding_side").asText("right"));
    String padToken = config.has("pad_token") && !config.get("pad_token").isNull() ? token(config, "pad_token", null)
        : switch (cls) {
          case "CLIPTokenizer" -> "<|endoftext|>";
          case "T5Tokenizer", "UMT5Tokenizer" -> "<pad>";
          case "Qwen2Tokenizer" -> "<|endoftext|>";
          default -> null;
        };
    long padId = padToken == null ? 0 : TokenizerJson.idOf(built, padToken);
    String template = config.path("chat_template").isTextual() ? config.get("chat_template").asText() : null;
    Path templateFile = dir.resolve("chat_template.jinja");  // where transformers 5 saves it
    if (template == null && Files.isRegularFile(templateFile)) {
      try {
        template = Files.readString(templateFile);
      } catch (IOException e) {
        throw new WeightLoadException("cannot read " + templateFile + ": " + e.getMessage(), e);
      }
    }
    TextTokenizer t = new TextTokenizer(dir, cls.isEmpty() ? "tokenizer.json" : cls, text, maxLength, left, padId,
        template);
    t.tokenizer(UNLIMITED);  // parse now: a malformed vocabulary fails at load, naming the folder
    return t;
  }

  private static int maxLength(JsonNode n) {
    if (n == null || !n.isNumber()) {
      return UNLIMITED;
    }
    double v = n.asDouble();
    return v >= UNLIMITED || v <= 0 ? UNLIMITED : (int) v;
  }

  private static String token(JsonNode config, String key, String fallback) {
    JsonNode n = config.get(key);
    if (n == null || n.isNull()) {
      return fallback;
    }
    if (n.isTextual()) {
      return n.asText();
    }
    if (n.isObject() && n.path("content").isTextual()) {
      return n.get("content").asText();
    }
    throw new WeightLoadException("tokenizer_config.json: " + key + " = " + n + " must be a string or {\"content\": ...}");
  }

  /** {@code added_tokens_decoder} of tokenizer_config.json, in id order, with their flags. */
  private static List<TokenizerJson.Added> addedTokens(JsonNode config, Path file) {
    List<TokenizerJson.Added> out = new ArrayList<>();
    JsonNode decoder = config.path("added_tokens_decoder");
    List<Map.Entry<Integer, JsonNode>> entries = new ArrayList<>();
    for (Iterator<Map.Entry<String, JsonNode>> it = decoder.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      try {
        entries.add(Map.entry(Integer.parseInt(e.getKey()), e.getValue()));
      } catch (NumberFormatException ex) {
        throw new WeightLoadException(file + ": added_tokens_decoder key \"" + e.getKey() + "\" must be a token id");
      }
    }
    entries.sort(Map.Entry.comparingByKey());
    for (Map.Entry<Integer, JsonNode> e : entries) {
      JsonNode t = e.getValue();
      if (!t.path("content").isTextual()) {
        throw new WeightLoadException(file + ": added_tokens_decoder." + e.getKey() + " has no \"content\" string");
      }
      out.add(new TokenizerJson.Added(t.get("content").asText(), t.path("special").asBoolean(true),
          t.path("normalized").asBoolean(false), t.path("lstrip").asBoolean(false), t.path("rstrip").asBoolean(false),
          t.path("single_word").asBoolean(false)));
    }
    return out;
  }

  private static void addSpecialList(JsonNode config, List<TokenizerJson.Added> added) {
    for (String key : List.of("additional_special_tokens", "extra_special_tokens")) {
      JsonNode list = config.get(key);
      if (list != null && list.isArray()) {
        for (JsonNode n : list) {
          String s = n.isTextual() ? n.asText() : n.path("content").asText(null);
          if (s != null) {
            added.add(TokenizerJson.Added.special(s));
          }
        }
      }
    }
  }

  /** The tokenizer class this folder was built as ({@code CLIPTokenizer}, {@code T5Tokenizer}, ...). */
  public String tokenizerClass() {
    return tokenizerClass;
  }

  /** {@code model_max_length} of tokenizer_config.json; {@link Integer#MAX_VALUE} when it sets none. */
  public int modelMaxLength() {
    return modelMaxLength;
  }

  public long padTokenId() {
    return padTokenId;
  }

  /** The folder this tokenizer was loaded from. */
  public Path dir() {
    return dir;
  }

  /** The tokenizer.json this tokenizer runs (what transformers builds in memory). */
  public String tokenizerJson() {
    return json;
  }

  /** The folder's chat template (tokenizer_config.json {@code chat_template} or chat_template.jinja), or null. */
  public String chatTemplate() {
    return chatTemplate;
  }

  /**
   * {@code apply_chat_template([{"role": "user", "content": text}], tokenize=False,
   * add_generation_prompt=True, enable_thinking=...)} for the ChatML templates of Qwen2, Qwen2.5 and
   * Qwen3 (the chat templates the pipelines' tokenizers ship); other templates are refused, naming
   * the folder. Qwen2.5's default system message is added when its template has one.
   */
  public String applyChatTemplate(String userContent, boolean enableThinking) {
    if (chatTemplate == null || !chatTemplate.contains("<|im_start|>")) {
      throw new io.cachedit.error.UnsupportedModelException("the tokenizer in " + dir + " has "
          + (chatTemplate == null ? "no chat template" : "a chat template that is not ChatML (<|im_start|>)")
          + "; cachedit renders the ChatML templates of Qwen tokenizers");
    }
    StringBuilder out = new StringBuilder();
    String qwen25System = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";
    if (chatTemplate.contains(qwen25System)) {
      out.append("<|im_start|>system\n").append(qwen25System).append("<|im_end|>\n");
    }
    out.append("<|im_start|>user\n").append(userContent).append("<|im_end|>\n<|im_start|>assistant\n");
    if (!enableThinking && chatTemplate.contains("enable_thinking")) {
      out.append("<think>\n\n</think>\n\n");
    }
    return out.toString();
  }

  /** Token ids of {@code text} with special tokens, neither truncated nor padded. */
  public long[] ids(String text) {
    return encode(text, Padding.NONE, null, false).inputIds();
  }

  /**
   * transformers' {@code tokenizer(text, padding=, max_length=, truncation=)}: special tokens added
   * as the class adds them; with {@code truncation}, tokens past {@code maxLength} (null: the model
   * maximum) are cut before the special tokens are added; {@code MAX_LENGTH} pads to
   * {@code maxLength} (null: the model maximum) on the configured side.
   */
  public Encoding encode(String text, Padding padding, Integer maxLength, boolean truncation) {
    if (text == null) {
      throw new IllegalArgumentException("text must not be null (use \"\" for an empty prompt)");
    }
    if (maxLength != null && maxLength < 1) {
      throw ConfigException.forField("max_length", "max_length must be >= 1, got " + maxLength);
    }
    int limit = maxLength != null ? maxLength : modelMaxLength;
    boolean truncate = truncation && limit != UNLIMITED;
    ai.djl.huggingface.tokenizers.Encoding e = tokenizer(truncate ? limit : UNLIMITED).encode(text, true, false);
    long[] ids = e.getIds();
    long[] mask = e.getAttentionMask();
    boolean cut = truncate && e.exceedMaxLength();
    if (padding == Padding.MAX_LENGTH && limit != UNLIMITED && ids.length < limit) {
      long[] pi = new long[limit];
      long[] pm = new long[limit];
      int off = padLeft ? limit - ids.length : 0;
      Arrays.fill(pi, padTokenId);
      System.arraycopy(ids, 0, pi, off, ids.length);
      System.arraycopy(mask, 0, pm, off, mask.length);
      ids = pi;
      mask = pm;
    }
    return new Encoding(ids, mask, cut);
  }

  private synchronized HuggingFaceTokenizer tokenizer(int maxLength) {
    if (closed) {
      throw new IllegalStateException("the tokenizer of " + dir + " was closed");
    }
    HuggingFaceTokenizer cached = byMaxLength.get(maxLength);
    if (cached != null) {
      return cached;
    }
    if (byMaxLength.size() >= CACHED) {  // drop the least recently used length (the untruncated one stays)
      byMaxLength.keySet().stream().filter(k -> k != UNLIMITED).findFirst().ifPresent(byMaxLength::remove);
    }
    HuggingFaceTokenizer made = build(maxLength);
    byMaxLength.put(maxLength, made);
    return made;
  }

  private HuggingFaceTokenizer build(int n) {
    Map<String, String> options = new java.util.HashMap<>();
    options.put("addSpecialTokens", "true");
    options.put("padding", "false");
    options.put("truncation", n == UNLIMITED ? "false" : "true");
    if (n != UNLIMITED) {
      options.put("maxLength", Integer.toString(n));
    }
    options.put("modelMaxLength", Integer.toString(Integer.MAX_VALUE));  // DJL would cap maxLength at 512
    try {
      return HuggingFaceTokenizer.newInstance(new ByteArrayInputStream(json.getBytes(StandardCharsets.UTF_8)), options);
    } catch (IOException | RuntimeException e) {
      throw new WeightLoadException("tokenizer " + dir + " cannot be built: " + TokenizerJson.firstLine(e.getMessage())
          + "; check its vocabulary files", e);
    }
  }

  @Override
  public synchronized void close() {
    closed = true;
    byMaxLength.values().forEach(HuggingFaceTokenizer::close);
    byMaxLength.clear();
  }
}
