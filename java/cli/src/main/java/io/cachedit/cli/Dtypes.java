package io.cachedit.cli;

import java.util.Locale;
import org.bytedeco.pytorch.global.torch.ScalarType;

/** Command-line names of model dtypes. */
final class Dtypes {
  private Dtypes() {}

  static ScalarType parse(String name) {
    return switch (name.toLowerCase(Locale.ROOT)) {
      case "fp32", "float32", "f32" -> ScalarType.Float;
      case "bf16", "bfloat16" -> ScalarType.BFloat16;
      case "fp16", "float16", "f16", "half" -> ScalarType.Half;
      default -> throw new IllegalArgumentException("--dtype " + name + " is not supported; use fp32, bf16 or fp16");
    };
  }
}
