package io.cachedit.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.cachedit.diffusers.text.TextTokenizer;
import io.cachedit.error.ConfigException;
import java.io.BufferedReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code cachedit tokenize}: token ids of texts, one call per text, as the Python tokenizer of the folder
 * gives them; what the reference checks compare.
 */
@Command(name = "tokenize", mixinStandardHelpOptions = true,
    description = "Tokenizes each line of --texts-file (one JSON-encoded string per line) with a tokenizer folder "
        + "and prints {\"input_ids\": [...], \"attention_mask\": [...]} per line, in order.")
final class TokenizeCommand implements Main.WithoutLibtorch, Callable<Integer> {
  @Option(names = "--model", required = true, description = "a tokenizer folder (tokenizer.json, vocab.json + "
      + "merges.txt or spiece.model, with tokenizer_config.json), or a pipeline folder (its tokenizer/)")
  Path model;

  @Option(names = "--texts-file", required = true, description = "one JSON string per line (\"a cat\", \"line\\nbreak\")")
  Path textsFile;

  @Option(names = "--max-length", description = "maximum length for --truncation and --padding max_length "
      + "(default: the tokenizer's model_max_length)")
  Integer maxLength;

  @Option(names = "--padding", defaultValue = "none", description = "max_length, longest or none (default ${DEFAULT-VALUE})")
  String padding;

  @Option(names = "--truncation", description = "cut to --max-length (special tokens kept)")
  boolean truncation;

  @Option(names = "--json", description = "one JSON object per line (the only output format; accepted for scripts)")
  boolean json;

  @Override
  public Integer call() throws Exception {
    TextTokenizer.Padding pad;
    try {
      pad = TextTokenizer.Padding.parse(padding);
    } catch (ConfigException e) {
      throw ConfigException.forField("--padding", "--padding " + padding + " is not one of max_length, longest, none");
    }
    if (maxLength != null && maxLength < 1) {
      throw ConfigException.forField("--max-length", "--max-length must be >= 1, got " + maxLength);
    }
    if (!Files.isRegularFile(textsFile)) {
      throw ConfigException.forField("--texts-file", "--texts-file " + textsFile + " is not a file");
    }
    Path dir = model;
    if (!isTokenizerFolder(dir) && isTokenizerFolder(dir.resolve("tokenizer"))) {
      dir = dir.resolve("tokenizer");
    }
    ObjectMapper mapper = new ObjectMapper();
    try (TextTokenizer tokenizer = TextTokenizer.load(dir);
         BufferedReader in = Files.newBufferedReader(textsFile, StandardCharsets.UTF_8)) {
      StringBuilder out = new StringBuilder();
      String line;
      int number = 0;
      while ((line = in.readLine()) != null) {
        number++;
        if (line.isBlank()) {
          continue;
        }
        String text;
        try {
          text = mapper.readValue(line, String.class);
        } catch (java.io.IOException e) {
          throw ConfigException.forField("--texts-file", textsFile + " line " + number + " is not a JSON string: "
              + line.substring(0, Math.min(line.length(), 60)) + "; write each text JSON-encoded, e.g. \"a cat\"");
        }
        TextTokenizer.Encoding e = tokenizer.encode(text, pad, maxLength, truncation);
        ObjectNode o = mapper.createObjectNode();
        o.set("input_ids", mapper.valueToTree(e.inputIds()));
        o.set("attention_mask", mapper.valueToTree(e.attentionMask()));
        out.append(mapper.writeValueAsString(o)).append('\n');
      }
      System.out.print(out);
      System.out.flush();
    }
    return 0;
  }

  static boolean isTokenizerFolder(Path dir) {
    for (String f : new String[] {"tokenizer.json", "tokenizer_config.json", "vocab.json", "spiece.model"}) {
      if (Files.isRegularFile(dir.resolve(f))) {
        return true;
      }
    }
    return false;
  }
}
