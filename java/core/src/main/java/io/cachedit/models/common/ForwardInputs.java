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

  /**
   * A list argument (diffusers' {@code List[torch.Tensor]}): either one stacked tensor under
   * {@code name} (unbound along dimension 0) or items {@code name.0}, {@code name.1}, ... (which may
   * differ in shape).
   */
  public java.util.List<Tensor> tensorList(String name) {
    used.add(name);
    java.util.List<Tensor> items = new java.util.ArrayList<>();
    Tensor stacked = tensors.get(name);
    for (int i = 0; tensors.containsKey(name + "." + i); i++) {
      used.add(name + "." + i);
      items.add(tensors.get(name + "." + i));
    }
    if (stacked != null && !items.isEmpty()) {
      throw new IllegalArgumentException("give either \"" + name + "\" or \"" + name + ".0\", \"" + name
          + ".1\", ..., not both");
    }
    if (stacked != null) {
      org.bytedeco.pytorch.TensorVector v = stacked.unbind(0);
      for (long i = 0; i < v.size(); i++) {
        items.add(v.get(i));
      }
    }
    if (items.isEmpty()) {
      throw new IllegalArgumentException("missing input \"" + name + "\" (a stacked tensor, or items \"" + name
          + ".0\", \"" + name + ".1\", ...; have " + tensors.keySet() + ")");
    }
    return items;
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
