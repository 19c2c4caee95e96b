package io.cachedit.quant;

import io.cachedit.kernels.Kernels;
import io.cachedit.kernels.NativeScope;
import io.cachedit.kernels.QuantActivation;
import io.cachedit.kernels.QuantFormat;
import io.cachedit.models.common.LinearKernel;
import java.util.LinkedHashMap;
import java.util.Map;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * A linear layer's weight held quantised, computed by cachedit's fused low-bit kernel: activations
 * quantised on the fly, integer products, rescale and bias in one call (docs/quantization.md).
 */
final class QuantizedLinear implements LinearKernel {
  private final String describe;
  private final QuantFormat format;
  private final QuantActivation activation;
  private final boolean perTensor;
  private final int group;
  private final long out;
  private final long in;
  private final NativeScope owner;
  private final Tensor packed;
  private final Tensor scales;
  private Tensor devicePacked;
  private Tensor deviceScales;

  private QuantizedLinear(String describe, QuantFormat format, QuantActivation activation, boolean perTensor,
      int group, long out, long in, Tensor packed, Tensor scales, String layer) {
    this.describe = describe;
    this.format = format;
    this.activation = activation;
    this.perTensor = perTensor;
    this.group = group;
    this.out = out;
    this.in = in;
    this.owner = NativeScope.owner("quantised weight of " + layer);
    this.packed = owner.keep(packed);
    this.scales = owner.keep(scales);
  }

  /** Quantises a dense weight [out, in]. */
  static QuantizedLinear quantize(String layer, Tensor weight, LayerPlan plan) {
    Kernels k = kernels();
    Tensor[] qs = k.quantizeWeight(weight, plan.format(), plan.group(), plan.perTensor());
    return fromCanonical(layer, plan.describe(), plan.format(), plan.activation(), plan.perTensor(), plan.group(),
        qs[0], qs[1], weight.size(0), weight.size(1));
  }

  /** From canonical weights and scales (a checkpoint's, already validated). */
  static QuantizedLinear fromCanonical(String layer, String describe, QuantFormat format, QuantActivation activation,
      boolean perTensor, int group, Tensor q, Tensor scales, long out, long in) {
    Tensor packed = kernels().packWeight(format, q, out, in);
    return new QuantizedLinear(describe, format, activation, perTensor, group, out, in, packed, scales.contiguous(),
        layer);
  }

  /** This layer's entry in a checkpoint's {@code quantization_config.layers}. */
  com.fasterxml.jackson.databind.node.ObjectNode spec(com.fasterxml.jackson.databind.ObjectMapper json) {
    com.fasterxml.jackson.databind.node.ObjectNode n = json.createObjectNode();
    n.put("type", describe);
    n.put("format", format.name().toLowerCase(java.util.Locale.ROOT));
    n.put("activation", activation.name().toLowerCase(java.util.Locale.ROOT));
    n.put("per_tensor", perTensor);
    if (format == QuantFormat.INT4) {
      n.put("group_size", group);
    }
    return n;
  }

  private static Kernels kernels() {
    return Kernels.forComputePool();
  }

  @Override
  public Tensor forward(Tensor x, Tensor bias) {
    owner.ensureOpen();
    if (x.is_cuda()) {
      Tensor[] d = onDevice(x);
      return kernels().quantLinear(x, activation, format, d[0], d[1], out, in, group, perTensor, bias);
    }
    return kernels().quantLinear(x, activation, format, packed, scales, out, in, group, perTensor, bias);
  }

  /** The packed weight and scales on x's GPU, copied there once (the CPU copy stays the source). */
  private synchronized Tensor[] onDevice(Tensor x) {
    if (devicePacked == null || !devicePacked.device().equals(x.device())) {
      if (devicePacked != null) {
        owner.release(devicePacked);
        owner.release(deviceScales);
      }
      devicePacked = owner.keep(packed.to(x.device(), ScalarType.Byte));
      deviceScales = owner.keep(scales.to(x.device(), ScalarType.Float));
    }
    return new Tensor[] {devicePacked, deviceScales};
  }

  @Override
  public String describe() {
    return describe;
  }

  @Override
  public long weightBytes() {
    return packedWeightBytes() + scales.numel() * 4;
  }

  /** Bytes of the weight itself (without padding of the packed layout). */
  private long packedWeightBytes() {
    return format == QuantFormat.INT4 ? out * in / 2 : out * in;
  }

  @Override
  public Map<String, Tensor> checkpointTensors() {
    owner.ensureOpen();
    Map<String, Tensor> t = new LinkedHashMap<>();
    t.put("weight", kernels().unpackWeight(format, packed, out, in));
    t.put("weight_scale", scales);
    return t;
  }

  @Override
  public void close() {
    owner.close();
  }

  @Override
  public String toString() {
    return describe + " [" + out + " x " + in + "]";
  }
}
