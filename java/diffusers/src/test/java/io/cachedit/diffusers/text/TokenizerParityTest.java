package io.cachedit.diffusers.text;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * Token ids against the Python tokenizers (transformers 5.17 / tokenizers 0.23), from
 * {@code src/test/python/make_tokenizer_fixtures.py}: CLIP from vocab.json + merges.txt, T5 from
 * spiece.model and from the tokenizer.json transformers saves, Qwen2 (with its Chat template), on unicode, emoji, whitespace runs,
 * empty and over-length strings, with the three padding/truncation calls the pipelines make.
 */
class TokenizerParityTest {
  static final Path ROOT = Path.of("src/test/resources/tokenizers");
  static final Map<String, TextTokenizer> TOKENIZERS = new HashMap<>();

  static TextTokenizer tokenizer(String name) {
    return TOKENIZERS.computeIfAbsent(name, n -> TextTokenizer.load(ROOT.resolve(n)));
  }

  @AfterAll
  static void close() {
    TOKENIZERS.values().forEach(TextTokenizer::close);
  }

  @Test
  void idsAndMasksEqualThePythonTokenizers() throws Exception {
    JsonNode cases = new ObjectMapper().readTree(Files.readString(ROOT.resolve("expected.json")));
    int checked = 0;
    for (JsonNode c : cases) {
      TextTokenizer t = tokenizer(c.get("tokenizer").asText());
      JsonNode o = c.get("options");
      TextTokenizer.Padding padding = o.has("padding") ? TextTokenizer.Padding.parse(o.get("padding").asText())
          : TextTokenizer.Padding.NONE;
      Integer max = o.has("max_length") ? o.get("max_length").asInt() : null;
      String text = c.get("text").asText();
      if (c.path("chat").asBoolean(false)) {  // Z-Image's call: the chat template first
        text = t.applyChatTemplate(text, true);
        assertEquals(c.get("rendered").asText(), text);
      }
      TextTokenizer.Encoding e = t.encode(text, padding, max, o.path("truncation").asBoolean(false));
      String what = c.get("tokenizer").asText() + " " + o + " " + new ObjectMapper().writeValueAsString(c.get("text"));
      assertArrayEquals(longs(c.get("input_ids")), e.inputIds(), what);
      assertArrayEquals(longs(c.get("attention_mask")), e.attentionMask(), what);
      checked++;
    }
    assertTrue(checked >= 220, "cases: " + checked);
  }

  @Test
  void configAndSpecialTokensAreRead() {
    TextTokenizer clip = tokenizer("clip");
    assertEquals("CLIPTokenizer", clip.tokenizerClass());
    assertEquals(77, clip.modelMaxLength());
    TextTokenizer t5 = tokenizer("t5-spm");
    assertEquals("T5Tokenizer", t5.tokenizerClass());
    assertEquals(64, t5.modelMaxLength());
    assertEquals(0, t5.padTokenId());
    TextTokenizer.Encoding e = t5.encode("a photo " .repeat(100), TextTokenizer.Padding.MAX_LENGTH, null, true);
    assertEquals(64, e.inputIds().length);
    assertTrue(e.truncated());
    assertEquals(1, e.inputIds()[63], "EOS after truncation");
  }

  @Test
  void manyTruncationLengthsKeepGivingTheSameIds() {
    TextTokenizer t5 = tokenizer("t5-spm");
    long[] full = t5.ids("a photo of a cat on a red sofa");
    for (int round = 0; round < 2; round++) {
      for (int n = 2; n < 30; n++) {  // more lengths than the tokenizer keeps natively
        long[] cut = t5.encode("a photo of a cat on a red sofa", TextTokenizer.Padding.NONE, n, true).inputIds();
        assertEquals(Math.min(n, full.length), cut.length, "length " + n);
        assertEquals(1, cut[cut.length - 1], "EOS kept at length " + n);
      }
    }
  }

  private static long[] longs(JsonNode a) {
    long[] out = new long[a.size()];
    for (int i = 0; i < out.length; i++) {
      out[i] = a.get(i).asLong();
    }
    return out;
  }
}
