package io.cachedit.pipeline;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.cachedit.error.CacheDitException;
import io.cachedit.models.TinyConfigs;
import java.util.stream.Stream;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Config values out of range or inconsistent with each other are refused, for all seven families,
 * before the model allocates anything, naming the key (no division by zero, no exhausted memory, no
 * C++ backtrace).
 */
class ModelConfigValidationTest {
  static Stream<Arguments> mutations() {
    return Stream.of(
        Arguments.of("flux", TinyConfigs.flux(false), "num_single_layers", "2147483647", "num_single_layers"),
        Arguments.of("flux", TinyConfigs.flux(false), "num_layers", "-1", "num_layers"),
        Arguments.of("flux", TinyConfigs.flux(false), "patch_size", "0", "patch_size"),
        Arguments.of("flux", TinyConfigs.flux(false), "num_attention_heads", "0", "num_attention_heads"),
        Arguments.of("flux", TinyConfigs.flux(false), "axes_dims_rope", "[8]", "axes_dims_rope"),
        Arguments.of("flux", TinyConfigs.flux(false), "axes_dims_rope", "[3, 1, 4]", "axes_dims_rope"),
        Arguments.of("flux", TinyConfigs.flux(false), "in_channels", "-8", "in_channels"),
        Arguments.of("flux", TinyConfigs.flux(false), "joint_attention_dim", "0", "joint_attention_dim"),
        Arguments.of("sd3", TinyConfigs.sd3(true), "num_attention_heads", "0", "num_attention_heads"),
        Arguments.of("sd3", TinyConfigs.sd3(true), "dual_attention_layers", "[0, 7]", "dual_attention_layers"),
        Arguments.of("sd3", TinyConfigs.sd3(true), "sample_size", "0", "sample_size"),
        Arguments.of("wan", TinyConfigs.wan(false), "patch_size", "[1, 0, 2]", "patch_size"),
        Arguments.of("wan", TinyConfigs.wan(false), "ffn_dim", "-24", "ffn_dim"),
        Arguments.of("wan", TinyConfigs.wan(false), "attention_head_dim", "13", "attention_head_dim"),
        Arguments.of("qwen", TinyConfigs.qwenImage(), "axes_dims_rope", "[8]", "axes_dims_rope"),
        Arguments.of("qwen", TinyConfigs.qwenImage(), "num_layers", "100000", "num_layers"),
        Arguments.of("zimage", TinyConfigs.zImage(), "n_heads", "0", "n_heads"),
        Arguments.of("zimage", TinyConfigs.zImage(), "axes_dims", "[3, 4, 5]", "axes_dims"),
        Arguments.of("zimage", TinyConfigs.zImage(), "dim", "0", "dim"),
        Arguments.of("dit", TinyConfigs.dit(), "sample_size", "0", "sample_size"),
        Arguments.of("dit", TinyConfigs.dit(), "sample_size", "2147483647", "sample_size"),
        Arguments.of("dit", TinyConfigs.dit(), "patch_size", "0", "patch_size"),
        Arguments.of("pixart", TinyConfigs.pixart(false), "sample_size", "0", "sample_size"),
        Arguments.of("pixart", TinyConfigs.pixart(false), "sample_size", "2147483647", "sample_size"),
        Arguments.of("pixart", TinyConfigs.pixart(false), "attention_head_dim", "-12", "attention_head_dim"));
  }

  @ParameterizedTest(name = "{0} {2} = {3}")
  @MethodSource("mutations")
  void refusedNamingTheKey(String family, String json, String key, String value, String named) {
    String bad = json.replaceFirst("\"" + key + "\": (\\[[^\\]]*\\]|[^,}\\s]+)", "\"" + key + "\": " + value);
    assertTrue(!bad.equals(json), "mutation applied to " + key);
    long t0 = System.nanoTime();
    try (PointerScope s = new PointerScope()) {
      CacheDitException e = assertThrows(CacheDitException.class,
          () -> ModelRegistry.defaults().randomTransformer(bad, 1, ScalarType.Float).close());
      assertTrue(e.getMessage().contains(named), e.getMessage());
      assertTrue(!e.getMessage().contains("\n"), "one line: " + e.getMessage());
    }
    assertTrue(System.nanoTime() - t0 < 5_000_000_000L, "refused at once");
  }
}
