package io.cachedit.quant;

/**
 * The arithmetic of cachedit's batch-invariant CPU linear kernels ({@link BatchInvariance}).
 *
 * <p>{@link #FP32}: fp32 inputs and weights, one fused multiply-add per element in a fixed order —
 * results within float rounding of libtorch's. {@link #BF16}: inputs and weights rounded to bf16,
 * products exact, sums in fp32 (the opt-in bf16 compute mode, docs/runtime.md): on CPUs with AVX-512
 * BF16 twice the multiply-adds per instruction, at bf16's 8-bit mantissa on the operands.
 */
public enum LinearCompute {
  FP32("fp32_batch_invariant"),
  BF16("bf16_compute");

  private final String kernelName;

  LinearCompute(String kernelName) {
    this.kernelName = kernelName;
  }

  /** The name layers report ({@code LinearKernel.describe()}). */
  public String kernelName() {
    return kernelName;
  }

  /** {@code fp32} or {@code bf16} (case-insensitive), as the command line's {@code --compute} takes it. */
  public static LinearCompute parse(String name) {
    String n = name == null ? "" : name.trim().toLowerCase(java.util.Locale.ROOT);
    return switch (n) {
      case "fp32" -> FP32;
      case "bf16" -> BF16;
      default -> throw new io.cachedit.error.ConfigException("compute", name, "must be fp32 or bf16");
    };
  }
}
