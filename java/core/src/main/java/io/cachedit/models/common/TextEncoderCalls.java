package io.cachedit.models.common;

import java.util.List;
import java.util.Map;
import org.bytedeco.pytorch.Tensor;

/** The argument handling the text encoders' {@code forward} calls share (ComponentModel#call). */
public final class TextEncoderCalls {
  private TextEncoderCalls() {}

  /**
   * Checks that {@code method} is {@code forward}, reads the plain values transformers' forward takes
   * ({@code return_dict}, {@code use_cache}: accepted, no effect) and returns {@code output_hidden_states}.
   */
  public static boolean begin(String className, String method, ForwardInputs inputs) {
    if (!method.equals("forward")) {
      throw new IllegalArgumentException(className + " runs forward, not " + method);
    }
    inputs.value("return_dict", true);
    inputs.value("use_cache", false);
    return Boolean.TRUE.equals(inputs.value("output_hidden_states", false));
  }

  /** Adds {@code hidden_states.<i>} for each state (none when not asked for). */
  public static void putHiddenStates(Map<String, Tensor> out, List<Tensor> hiddenStates) {
    if (hiddenStates != null) {
      for (int i = 0; i < hiddenStates.size(); i++) {
        out.put("hidden_states." + i, hiddenStates.get(i));
      }
    }
  }
}
