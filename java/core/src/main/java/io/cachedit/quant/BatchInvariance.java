package io.cachedit.quant;

import io.cachedit.kernels.FusedActivation;
import io.cachedit.kernels.Kernels;
import io.cachedit.kernels.NativeScope;
import io.cachedit.models.common.DiffusersModel;
import io.cachedit.models.common.Linear;
import io.cachedit.models.common.LinearKernel;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * Makes a model's linear layers batch-invariant: each row of a layer's output is the same bits
 * whatever else is in the batch, so requests batched together get exactly the images they get alone
 * (what {@code cachedit serve} relies on to batch; docs/serving.md). A policy applied to a loaded fp32
 * CPU model, as quantisation is: each {@link Linear} gets cachedit's fixed-order fp32 kernel in place
 * of libtorch's BLAS call, whose kernels and blocking change with the batch size.
 *
 * <p>The results differ from libtorch's by float rounding only (about 1e-6 relative); the other
 * operations of the models (attention, norms, element-wise) already treat rows independently. With
 * {@link LinearCompute#BF16} the layers compute in bf16 instead (inputs and weights rounded, fp32
 * sums): still batch-invariant, faster on CPUs with AVX-512 BF16, and as far from fp32 as bf16's
 * rounding takes it (docs/runtime.md, "bf16 compute").
 */
public final class BatchInvariance {
  private BatchInvariance() {}

  /**
   * Installs the batch-invariant kernel on every dense linear layer of {@code model} (layers that
   * already have a kernel, e.g. quantised ones, keep it: the low-bit kernel is batch-invariant too).
   *
   * @return the number of layers converted
   * @throws IllegalArgumentException for a model that is not fp32 on the CPU
   */
  public static int apply(DiffusersModel model) {
    return apply(model, LinearCompute.FP32);
  }

  /**
   * Installs the batch-invariant kernel of {@code compute} on every dense linear layer of {@code model}.
   *
   * @return the number of layers converted
   * @throws IllegalArgumentException for a model that is not fp32 on the CPU
   */
  public static int apply(DiffusersModel model, LinearCompute compute) {
    java.util.Objects.requireNonNull(compute, "compute");
    List<Map.Entry<String, Linear>> dense = new ArrayList<>();
    for (Map.Entry<String, Linear> e : model.linearLayers().entrySet()) {
      if (e.getValue().kernel() == null) {
        if (e.getValue().dtype() != ScalarType.Float || e.getValue().weight().is_cuda()) {
          throw new IllegalArgumentException("batch invariance needs an fp32 CPU model; " + e.getKey() + " is "
              + e.getValue().dtype() + (e.getValue().weight().is_cuda() ? " on CUDA" : ""));
        }
        dense.add(e);
      }
    }
    List<InvariantLinear> made = new ArrayList<>();
    try {
      for (Map.Entry<String, Linear> e : dense) {
        made.add(new InvariantLinear(e.getKey(), e.getValue().weight(), compute));
      }
    } catch (RuntimeException ex) {
      made.forEach(InvariantLinear::close);
      throw ex;
    }
    for (int i = 0; i < dense.size(); i++) {
      dense.get(i).getValue().install(made.get(i));
    }
    return dense.size();
  }

  /** Whether every linear layer of {@code model} has a batch-invariant kernel (this one or a low-bit one). */
  public static boolean applied(DiffusersModel model) {
    return model.linearLayers().values().stream().allMatch(l -> l.kernel() != null);
  }

  /** One layer's packed weight (fp32 or bf16) and the fixed-order kernel. */
  static final class InvariantLinear implements LinearKernel {
    private final NativeScope owner;
    private final Tensor packed;
    private final long out;
    private final long in;
    private final LinearCompute compute;

    InvariantLinear(String layer, Tensor weight, LinearCompute compute) {
      this.out = weight.size(0);
      this.in = weight.size(1);
      this.compute = compute;
      this.owner = NativeScope.owner("batch-invariant weight of " + layer);
      this.packed = owner.keep(compute == LinearCompute.BF16 ? kernels().packBf16Weight(weight)
          : kernels().packInvariantWeight(weight));
    }

    private static Kernels kernels() {
      return Kernels.forComputePool();
    }

    @Override
    public Tensor forward(Tensor x, Tensor bias) {
      return forward(x, bias, FusedActivation.NONE);
    }

    @Override
    public Tensor forward(Tensor x, Tensor bias, FusedActivation activation) {
      owner.ensureOpen();
      return compute == LinearCompute.BF16 ? kernels().bf16Linear(x, packed, out, in, bias, activation)
          : kernels().invariantLinear(x, packed, out, in, bias, activation);
    }

    @Override
    public Tensor forwardGated(Tensor x, Tensor bias, Tensor residual, Tensor gate) {
      owner.ensureOpen();
      return compute == LinearCompute.BF16 ? kernels().bf16LinearGated(x, packed, out, in, bias, residual, gate)
          : kernels().invariantLinearGated(x, packed, out, in, bias, residual, gate);
    }

    @Override
    public String describe() {
      return compute.kernelName();
    }

    @Override
    public long weightBytes() {
      return out * in * (compute == LinearCompute.BF16 ? 2 : 4);
    }

    @Override
    public Map<String, Tensor> checkpointTensors() {
      owner.ensureOpen();
      Tensor w;
      if (compute == LinearCompute.BF16) {
        long pairs = (in + 1) / 2;
        long panels = packed.numel() / (16 * 2 * pairs);
        // panels of [pairs][16][2] back to [out][in] (bf16 values as fp32, the model's dtype)
        w = packed.view(panels, pairs, 16, 2).permute(0, 2, 1, 3).reshape(panels * 16, 2 * pairs)
            .narrow(0, 0, out).narrow(1, 0, in).to(ScalarType.Float).contiguous();
      } else {
        long panels = packed.numel() / (16 * in);
        // panels of [in][16] back to [out][in]
        w = packed.view(panels, in, 16).permute(0, 2, 1).reshape(panels * 16, in).narrow(0, 0, out).contiguous();
      }
      return Map.of("weight", w);
    }

    @Override
    public void close() {
      owner.close();
    }
  }
}
