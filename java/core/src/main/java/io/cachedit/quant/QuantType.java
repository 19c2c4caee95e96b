package io.cachedit.quant;

import io.cachedit.error.ConfigException;
import io.cachedit.kernels.QuantActivation;
import io.cachedit.kernels.QuantFormat;
import java.util.Arrays;
import java.util.Locale;
import java.util.stream.Collectors;

/** The quantisation types, under the reference's {@code quant_type} names (docs/quantization.md). */
public enum QuantType {
  /** Dynamic fp8 (e4m3) activations per row x fp8 weights per output row. The default. */
  FLOAT8_PER_ROW("float8_per_row", QuantFormat.FP8, QuantActivation.FP8_PER_ROW, false),
  /** Dynamic fp8 activations x fp8 weights, one scale each per tensor. */
  FLOAT8_PER_TENSOR("float8_per_tensor", QuantFormat.FP8, QuantActivation.FP8_PER_TENSOR, true),
  /** fp8 weights per output row; activations stay in their precision. */
  FLOAT8_WEIGHT_ONLY("float8_weight_only", QuantFormat.FP8, QuantActivation.NONE, false),
  /** Dynamic int8 activations per token x int8 weights per output channel. */
  INT8_PER_ROW("int8_per_row", QuantFormat.INT8, QuantActivation.INT8_PER_ROW, false),
  /** Dynamic int8 activations x int8 weights, one scale each per tensor. */
  INT8_PER_TENSOR("int8_per_tensor", QuantFormat.INT8, QuantActivation.INT8_PER_TENSOR, true),
  /** int8 weights per output channel; activations stay in their precision. */
  INT8_WEIGHT_ONLY("int8_weight_only", QuantFormat.INT8, QuantActivation.NONE, false),
  /** 4-bit weights with one scale per group of inputs (group_size, 32 by default). */
  INT4_WEIGHT_ONLY("int4_weight_only", QuantFormat.INT4, QuantActivation.NONE, false);

  private final String configName;
  private final QuantFormat format;
  private final QuantActivation activation;
  private final boolean perTensor;

  QuantType(String configName, QuantFormat format, QuantActivation activation, boolean perTensor) {
    this.configName = configName;
    this.format = format;
    this.activation = activation;
    this.perTensor = perTensor;
  }

  /** The {@code quant_type} name. */
  public String configName() {
    return configName;
  }

  public QuantFormat format() {
    return format;
  }

  public QuantActivation activation() {
    return activation;
  }

  /** One weight scale for the whole matrix. */
  public boolean perTensorWeights() {
    return perTensor;
  }

  /** Whether activations are quantised too (not weight-only). */
  public boolean dynamicActivations() {
    return activation != QuantActivation.NONE;
  }

  /**
   * The type called {@code name} ({@code quant_type} spelling, case-insensitive).
   *
   * @throws ConfigException naming {@code field} and listing the types
   */
  public static QuantType of(String name, String field) {
    if (name != null) {
      String n = name.trim().toLowerCase(Locale.ROOT);
      for (QuantType t : values()) {
        if (t.configName.equals(n)) {
          return t;
        }
      }
      if (n.startsWith("svdq") || n.startsWith("nvfp4") || n.equals("float8_per_block")) {
        throw ConfigException.forField(field, "quant_type \"" + name + "\" is not available in cachedit (it needs "
            + "calibration or Hopper/Blackwell tensor cores); available: " + names());
      }
    }
    throw ConfigException.forField(field, "unknown quant_type \"" + name + "\"; available: " + names());
  }

  /** The names of every type, comma-separated. */
  public static String names() {
    return Arrays.stream(values()).map(QuantType::configName).collect(Collectors.joining(", "));
  }

  @Override
  public String toString() {
    return configName;
  }
}
