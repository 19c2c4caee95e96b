package io.cachedit.models.common;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.bytedeco.pytorch.Tensor;

/**
 * A transformer forward's arguments by their diffusers names: tensors ({@code hidden_states},
 * {@code encoder_hidden_states}, {@code timestep}, ...) and plain values from JSON (lists, flags).
 * Models read what they need; {@link #checkAllUsed} rejects names no model argument has.
 */
public final class ForwardInputs {
  private final Map<String, Tensor> tensors;
  private final Map<String, Object> values;
  private final Set<String> used = new TreeSet<>();

  public ForwardInputs(Map<String, Tensor> tensors, Map<String, Object> values) {
    this.tensors = new LinkedHashMap<>(tensors);
    this.values = values == null ? Map.of() : new LinkedHashMap<>(values);
  }

  public static ForwardInputs of(Map<String, Tensor> tensors) {
    return new ForwardInputs(tensors, Map.of());
  }

  /** A required tensor. */
  public Tensor tensor(String name) {
    used.add(name);
    Tensor t = tensors.get(name);
    if (t == null) {
      throw new IllegalArgumentException("missing input tensor \"" + name + "\" (have " + tensors.keySet() + ")");
    }
    return t;
  }

  /** An optional tensor, or null. */
  public Tensor optional(String name) {
    used.add(name);
    return tensors.get(name);
  }

  /** An optional JSON value, or the default. */
  public Object value(String name, Object defaultValue) {
    used.add(name);
    return values.getOrDefault(name, defaultValue);
  }

  public Map<String, Tensor> tensors() {
    return Collections.unmodifiableMap(tensors);
  }

  /** Throws if an input was given that the model never read (a typo, or another model's argument). */
  public void checkAllUsed(String model) {
    Set<String> unused = new TreeSet<>(tensors.keySet());
    unused.addAll(values.keySet());
    unused.removeAll(used);
    if (!unused.isEmpty()) {
      throw new IllegalArgumentException(model + " does not take input(s) " + unused + "; it reads " + used);
    }
  }
}
