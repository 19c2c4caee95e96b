package io.cachedit.diffusers.text;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.cachedit.error.WeightLoadException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Builds the {@code tokenizer.json} (Hugging Face tokenizers' serialisation) that transformers 5 builds
 * in memory for a tokenizer folder, from whatever files the folder ships: CLIP's {@code vocab.json} +
 * {@code merges.txt}, T5's {@code spiece.model}, or a {@code tokenizer.json} whose vocabulary the
 * tokenizer class re-wraps in its own normaliser, pre-tokeniser and post-processor. The pipeline per
 * class is transformers' ({@code CLIPTokenizer}, {@code T5Tokenizer}), so the ids equal the Python
 * tokenizers' (docs/pipelines.md, "Tokenizers").
 */
final class TokenizerJson {
  static final ObjectMapper JSON = new ObjectMapper();
  private static final JsonNodeFactory F = JsonNodeFactory.instance;
  /** Qwen2's pre-tokenisation split (transformers' PRETOKENIZE_REGEX for Qwen2Tokenizer). */
  static final String QWEN2_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  static final String CLIP_PATTERN =
      "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+";

  /** The model part (vocabulary) of a folder, before the class wraps it. */
  record Vocabulary(ObjectNode model, byte[] precompiledCharsmap, List<String> spmAddedTokens,
      List<String> spmUserTokens) {}

  private TokenizerJson() {}

  /** An added (special) token of the tokenizer. */
  record Added(String content, boolean special, boolean normalized, boolean lstrip, boolean rstrip,
      boolean singleWord, Integer id) {
    Added(String content, boolean special, boolean normalized, boolean lstrip, boolean rstrip, boolean singleWord) {
      this(content, special, normalized, lstrip, rstrip, singleWord, null);
    }

    static Added special(String content) {
      return new Added(content, true, false, false, false, false);
    }
  }

  /** The {@code added_tokens} of a tokenizer.json, with their ids and flags (transformers 5 saves them there). */
  static List<Added> addedTokens(JsonNode file) {
    List<Added> out = new ArrayList<>();
    for (JsonNode t : file.path("added_tokens")) {
      if (t.path("content").isTextual()) {
        out.add(new Added(t.get("content").asText(), t.path("special").asBoolean(true),
            t.path("normalized").asBoolean(false), t.path("lstrip").asBoolean(false), t.path("rstrip").asBoolean(false),
            t.path("single_word").asBoolean(false), t.path("id").canConvertToInt() ? t.get("id").asInt() : null));
      }
    }
    return out;
  }

  static JsonNode readJson(Path file) {
    try {
      JsonNode n = JSON.readTree(Files.readString(file));
      if (n == null || !n.isObject()) {
        throw new WeightLoadException(file + " must hold a JSON object");
      }
      return n;
    } catch (IOException e) {
      throw new WeightLoadException(file + " is not valid JSON: " + firstLine(e.getMessage()), e);
    }
  }

  static String firstLine(String s) {
    if (s == null) {
      return "";
    }
    int nl = s.indexOf('\n');
    return nl < 0 ? s : s.substring(0, nl);
  }

  /** CLIP's byte-level BPE from {@code vocab.json} and {@code merges.txt}. */
  static ObjectNode bpeFromFiles(Path vocabFile, Path mergesFile, String unkToken) {
    return bpeFromFiles(vocabFile, mergesFile, unkToken, "</w>");
  }

  /** A byte-level BPE from {@code vocab.json} and {@code merges.txt}; {@code suffix} ends each word. */
  static ObjectNode bpeFromFiles(Path vocabFile, Path mergesFile, String unkToken, String suffix) {
    JsonNode vocab = readJson(vocabFile);
    for (Iterator<Map.Entry<String, JsonNode>> it = vocab.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      if (!e.getValue().canConvertToInt() || e.getValue().asInt() < 0) {
        throw new WeightLoadException(vocabFile + ": token " + JSON.valueToTree(e.getKey()) + " has id " + e.getValue()
            + "; every entry must map a token to a non-negative integer id");
      }
    }
    ArrayNode merges = F.arrayNode();
    List<String> lines;
    try {
      lines = Files.readAllLines(mergesFile);
    } catch (IOException e) {
      throw new WeightLoadException("cannot read " + mergesFile + ": " + e.getMessage(), e);
    }
    for (int i = 0; i < lines.size(); i++) {
      String line = lines.get(i);
      if ((i == 0 && line.startsWith("#version")) || line.isEmpty()) {
        continue;
      }
      String[] pair = line.split(" ");
      if (pair.length != 2) {
        throw new WeightLoadException(mergesFile + " line " + (i + 1) + ": \"" + line + "\" must be two tokens "
            + "separated by one space");
      }
      merges.add(F.arrayNode().add(pair[0]).add(pair[1]));
    }
    return bpe(vocab, merges, unkToken, suffix);
  }

  private static ObjectNode bpe(JsonNode vocab, JsonNode merges, String unkToken, String suffix) {
    ObjectNode m = F.objectNode();
    m.put("type", "BPE");
    m.putNull("dropout");
    if (unkToken == null) {
      m.putNull("unk_token");
    } else {
      m.put("unk_token", unkToken);
    }
    m.put("continuing_subword_prefix", "");
    m.put("end_of_word_suffix", suffix);
    m.put("fuse_unk", false);
    m.put("byte_fallback", false);
    m.put("ignore_merges", false);
    m.set("vocab", vocab);
    m.set("merges", merges);
    return m;
  }

  /** A BPE vocabulary and merges taken from a {@code tokenizer.json}, re-wrapped as CLIP's model. */
  static ObjectNode bpeFromTokenizerJson(JsonNode file, Path origin, String unkToken) {
    return bpeFromTokenizerJson(file, origin, unkToken, "</w>");
  }

  /** A BPE vocabulary and merges from a {@code tokenizer.json}, re-wrapped with {@code suffix}. */
  static ObjectNode bpeFromTokenizerJson(JsonNode file, Path origin, String unkToken, String suffix) {
    JsonNode model = file.path("model");
    if (!"BPE".equals(model.path("type").asText("BPE")) || !model.path("vocab").isObject()) {
      throw new WeightLoadException(origin + ": model must be a BPE model with a vocab object for a byte-level BPE "
          + "tokenizer (CLIP, Qwen2)");
    }
    ArrayNode merges = F.arrayNode();
    for (JsonNode merge : model.path("merges")) {
      if (merge.isTextual()) {
        String[] pair = merge.asText().split(" ");
        merges.add(F.arrayNode().add(pair[0]).add(pair.length > 1 ? pair[1] : ""));
      } else {
        merges.add(merge);
      }
    }
    return bpe(model.get("vocab"), merges, unkToken, suffix);
  }

  /** A unigram model from SentencePiece pieces plus T5's sentinel tokens, as transformers converts it. */
  static Vocabulary unigramFromSpm(SentencePieceModel spm, int extraIds, Path origin) {
    if (spm.modelType() != SentencePieceModel.UNIGRAM) {
      throw new WeightLoadException(origin + " is a SentencePiece model of type " + spm.modelType()
          + "; T5 and UMT5 tokenizers are unigram models (type 1)");
    }
    ArrayNode vocab = F.arrayNode();
    List<String> added = new ArrayList<>();
    List<String> user = new ArrayList<>();
    for (SentencePieceModel.Piece p : spm.pieces()) {
      vocab.add(F.arrayNode().add(p.piece()).add(p.score()));
      if (p.type() == SentencePieceModel.CONTROL) {
        added.add(p.piece());
      } else if (p.type() == SentencePieceModel.USER_DEFINED) {
        user.add(p.piece());
      }
    }
    for (int i = extraIds - 1; i >= 0; i--) {
      vocab.add(F.arrayNode().add("<extra_id_" + i + ">").add(0.0));
    }
    return new Vocabulary(unigram(vocab), spm.precompiledCharsmap(), added, user);
  }

  /** A unigram vocabulary from a {@code tokenizer.json}, with its precompiled charsmap if it has one. */
  static Vocabulary unigramFromTokenizerJson(JsonNode file, Path origin) {
    JsonNode model = file.path("model");
    if (!"Unigram".equals(model.path("type").asText()) || !model.path("vocab").isArray()) {
      throw new WeightLoadException(origin + ": model must be a Unigram model with a vocab list for a T5 tokenizer");
    }
    byte[] charsmap = null;
    JsonNode normalizer = file.path("normalizer");
    List<JsonNode> normalizers = new ArrayList<>();
    if ("Sequence".equals(normalizer.path("type").asText())) {
      normalizer.path("normalizers").forEach(normalizers::add);
    } else if (normalizer.isObject()) {
      normalizers.add(normalizer);
    }
    for (JsonNode n : normalizers) {
      if ("Precompiled".equals(n.path("type").asText()) && n.path("precompiled_charsmap").isTextual()) {
        charsmap = Base64.getDecoder().decode(n.get("precompiled_charsmap").asText());
        break;
      }
    }
    return new Vocabulary(unigram(model.get("vocab")), charsmap, List.of(), List.of());
  }

  private static ObjectNode unigram(JsonNode vocab) {
    ObjectNode m = F.objectNode();
    m.put("type", "Unigram");
    m.put("unk_id", 2);  // T5Tokenizer fixes it at 2, whatever the trainer spec says
    m.set("vocab", vocab);
    m.put("byte_fallback", false);
    return m;
  }

  /** CLIP's pipeline: NFC, whitespace runs to one space, lower case; its split; byte level; BOS ... EOS. */
  static ObjectNode clip(ObjectNode model, List<Added> added, String bos, String eos) {
    ObjectNode root = root(model, added);
    ArrayNode norms = F.arrayNode();
    norms.add(F.objectNode().put("type", "NFC"));
    norms.add(F.objectNode().put("type", "Replace").<ObjectNode>set("pattern", F.objectNode().put("Regex", "\\s+"))
        .put("content", " "));
    norms.add(F.objectNode().put("type", "Lowercase"));
    root.set("normalizer", F.objectNode().put("type", "Sequence").set("normalizers", norms));
    ArrayNode pre = F.arrayNode();
    pre.add(F.objectNode().put("type", "Split").<ObjectNode>set("pattern", F.objectNode().put("Regex", CLIP_PATTERN))
        .put("behavior", "Removed").put("invert", true));
    pre.add(F.objectNode().put("type", "ByteLevel").put("add_prefix_space", false).put("trim_offsets", true)
        .put("use_regex", true));
    root.set("pre_tokenizer", F.objectNode().put("type", "Sequence").set("pretokenizers", pre));
    int bosId = idOf(root, bos);
    int eosId = idOf(root, eos);
    root.set("post_processor", F.objectNode().put("type", "RobertaProcessing")
        .<ObjectNode>set("sep", F.arrayNode().add(eos).add(eosId))
        .<ObjectNode>set("cls", F.arrayNode().add(bos).add(bosId))
        .put("trim_offsets", false).put("add_prefix_space", false));
    root.set("decoder", F.objectNode().put("type", "ByteLevel").put("add_prefix_space", true).put("trim_offsets", true)
        .put("use_regex", true));
    return root;
  }

  /** Qwen2's pipeline (Qwen2, Qwen2.5, Qwen3): NFC, Qwen's split (isolated), byte level; no special tokens added. */
  static ObjectNode qwen2(ObjectNode model, List<Added> added) {
    ObjectNode root = root(model, added);
    root.set("normalizer", F.objectNode().put("type", "NFC"));
    ArrayNode pre = F.arrayNode();
    pre.add(F.objectNode().put("type", "Split").<ObjectNode>set("pattern", F.objectNode().put("Regex", QWEN2_PATTERN))
        .put("behavior", "Isolated").put("invert", false));
    pre.add(F.objectNode().put("type", "ByteLevel").put("add_prefix_space", false).put("trim_offsets", true)
        .put("use_regex", false));
    root.set("pre_tokenizer", F.objectNode().put("type", "Sequence").set("pretokenizers", pre));
    root.set("decoder", F.objectNode().put("type", "ByteLevel").put("add_prefix_space", true).put("trim_offsets", true)
        .put("use_regex", true));
    return root;
  }

  /** T5's pipeline: the precompiled normaliser, whitespace split + metaspace, {@code $A </s>}. */
  static ObjectNode t5(Vocabulary v, List<Added> added, String eos) {
    ObjectNode root = root(v.model(), added);
    if (v.precompiledCharsmap() != null && v.precompiledCharsmap().length > 0) {
      root.set("normalizer", F.objectNode().put("type", "Precompiled")
          .put("precompiled_charsmap", Base64.getEncoder().encodeToString(v.precompiledCharsmap())));
    }
    ArrayNode pre = F.arrayNode();
    pre.add(F.objectNode().put("type", "WhitespaceSplit"));
    pre.add(F.objectNode().put("type", "Metaspace").put("replacement", "\u2581").put("prepend_scheme", "always")
        .put("split", true));
    root.set("pre_tokenizer", F.objectNode().put("type", "Sequence").set("pretokenizers", pre));
    int eosId = idOf(root, eos);
    ObjectNode seqA = F.objectNode().set("Sequence", F.objectNode().put("id", "A").put("type_id", 0));
    ObjectNode seqB = F.objectNode().set("Sequence", F.objectNode().put("id", "B").put("type_id", 0));
    ObjectNode sp = F.objectNode().set("SpecialToken", F.objectNode().put("id", eos).put("type_id", 0));
    root.set("post_processor", F.objectNode().put("type", "TemplateProcessing")
        .<ObjectNode>set("single", F.arrayNode().add(seqA).add(sp))
        .<ObjectNode>set("pair", F.arrayNode().add(seqA.deepCopy()).add(sp.deepCopy()).add(seqB).add(sp.deepCopy()))
        .set("special_tokens", F.objectNode().set(eos, F.objectNode().put("id", eos)
            .<ObjectNode>set("ids", F.arrayNode().add(eosId)).set("tokens", F.arrayNode().add(eos)))));
    root.set("decoder", F.objectNode().put("type", "Metaspace").put("replacement", "\u2581").put("prepend_scheme", "always")
        .put("split", true));
    return root;
  }

  private static ObjectNode root(ObjectNode model, List<Added> added) {
    ObjectNode root = F.objectNode();
    root.put("version", "1.0");
    root.putNull("truncation");
    root.putNull("padding");
    Map<String, Integer> ids = vocabIds(model);
    int next = ids.values().stream().mapToInt(Integer::intValue).max().orElse(-1) + 1;
    ArrayNode tokens = F.arrayNode();
    Map<String, Boolean> seen = new LinkedHashMap<>();
    List<ObjectNode> entries = new ArrayList<>();
    for (Added a : added) {
      if (a.content() == null || seen.put(a.content(), true) != null) {
        continue;
      }
      Integer id = a.id() != null ? a.id() : ids.get(a.content());
      if (id == null) {
        id = next++;
      }
      ids.put(a.content(), id);
      next = Math.max(next, id + 1);
      entries.add(F.objectNode().put("id", id).put("content", a.content()).put("single_word", a.singleWord())
          .put("lstrip", a.lstrip()).put("rstrip", a.rstrip()).put("normalized", a.normalized())
          .put("special", a.special()));
    }
    entries.sort((x, y) -> Integer.compare(x.get("id").asInt(), y.get("id").asInt()));
    entries.forEach(tokens::add);
    root.set("added_tokens", tokens);
    root.set("model", model);
    return root;
  }

  private static Map<String, Integer> vocabIds(ObjectNode model) {
    Map<String, Integer> ids = new LinkedHashMap<>();
    JsonNode vocab = model.get("vocab");
    if (vocab.isObject()) {
      vocab.fields().forEachRemaining(e -> ids.put(e.getKey(), e.getValue().asInt()));
    } else {
      int i = 0;
      for (JsonNode entry : vocab) {
        ids.putIfAbsent(entry.get(0).asText(), i++);
      }
    }
    return ids;
  }

  static int idOf(ObjectNode root, String token) {
    for (JsonNode a : root.get("added_tokens")) {
      if (a.get("content").asText().equals(token)) {
        return a.get("id").asInt();
      }
    }
    Integer id = vocabIds((ObjectNode) root.get("model")).get(token);
    if (id == null) {
      throw new WeightLoadException("the tokenizer's vocabulary has no token \"" + token + "\"");
    }
    return id;
  }
}
