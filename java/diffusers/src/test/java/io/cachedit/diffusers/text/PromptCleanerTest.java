package io.cachedit.diffusers.text;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/**
 * Wan's prompt cleaning against Python (ftfy 6.3 + html.unescape + the whitespace clean of diffusers'
 * pipeline_wan): curly quotes, ligatures, full/half width, line breaks, terminal escapes, control
 * characters, NFC, entities, whitespace runs.
 */
class PromptCleanerTest {
  @Test
  void cleansAsDiffusersWanPipelineDoes() throws Exception {
    JsonNode cases = new ObjectMapper().readTree(Files.readString(Path.of("src/test/resources/tokenizers/prompt_clean.json")));
    for (JsonNode c : cases) {
      assertEquals(c.get("clean").asText(), PromptCleaner.clean(c.get("text").asText()), c.get("text").asText());
    }
    assertEquals(20, cases.size());
  }
}
