package io.cachedit.quant;

import io.cachedit.kernels.QuantActivation;
import io.cachedit.kernels.QuantFormat;

/**
 * How one layer is quantised: the type asked for, and what the kernel does (a per-tensor fallback
 * differs from the type).
 *
 * @param type the type asked for
 * @param format weight format
 * @param activation activation quantisation
 * @param perTensor one weight scale
 * @param group int4 inputs per scale (0 otherwise)
 * @param fallback why the layer fell back to per-tensor, or null
 */
record LayerPlan(QuantType type, QuantFormat format, QuantActivation activation, boolean perTensor, int group,
    String fallback) {

  static LayerPlan of(QuantType type, int groupSize) {
    return new LayerPlan(type, type.format(), type.activation(), type.perTensorWeights(),
        type.format() == QuantFormat.INT4 ? groupSize : 0, null);
  }

  /** int4 cannot split the inputs into groups: int8 weights with one scale, activations as they are. */
  static LayerPlan int4Fallback(QuantType type, String why) {
    return new LayerPlan(type, QuantFormat.INT8, QuantActivation.NONE, true, 0, why);
  }

  /** What the layer computes, as reported and stored in a checkpoint. */
  String describe() {
    if (fallback == null) {
      return format == QuantFormat.INT4 ? type.configName() + "(group_size=" + group + ")" : type.configName();
    }
    return type.configName() + "->int8_weight_only(per_tensor)";
  }
}
