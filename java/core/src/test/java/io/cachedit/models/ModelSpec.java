package io.cachedit.models;

import java.util.Map;
import java.util.function.LongFunction;
import org.bytedeco.pytorch.Tensor;

/**
 * A model under test: its tiny config, a builder of forward inputs (by seed) and what the cache
 * engine should see.
 *
 * @param name display name
 * @param configJson tiny config.json
 * @param inputs forward inputs by seed (diffusers names)
 * @param timestepKey the input that carries the timestep (varied over a fake denoising loop)
 * @param timestepScale value of the timestep at t = 1 (1 for sigma models, 1000 for timestep models)
 * @param lists expected block-list names when cached with the registered adapter
 * @param values non-tensor forward arguments
 * @param hiddenKey the input that carries the latents (updated over the fake denoising loop)
 */
public record ModelSpec(String name, String configJson, LongFunction<Map<String, Tensor>> inputs, String timestepKey,
    double timestepScale, java.util.List<String> lists, Map<String, Object> values, String hiddenKey) {
  public ModelSpec(String name, String configJson, LongFunction<Map<String, Tensor>> inputs, String timestepKey,
      double timestepScale, java.util.List<String> lists, Map<String, Object> values) {
    this(name, configJson, inputs, timestepKey, timestepScale, lists, values, "hidden_states");
  }

  public ModelSpec(String name, String configJson, LongFunction<Map<String, Tensor>> inputs, String timestepKey,
      double timestepScale, java.util.List<String> lists) {
    this(name, configJson, inputs, timestepKey, timestepScale, lists, Map.of());
  }

  @Override
  public String toString() {
    return name;
  }
}
