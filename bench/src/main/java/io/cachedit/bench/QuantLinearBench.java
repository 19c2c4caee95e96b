package io.cachedit.bench;

import io.cachedit.kernels.Kernels;
import io.cachedit.kernels.NativeRuntime;
import io.cachedit.quant.QuantType;
import java.util.concurrent.TimeUnit;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * A linear layer {@code y = x W^T + b}, x [M, K], W [N, K], fp32 in and out (docs/quantization.md):
 *
 * <ul>
 *   <li>{@code fp32}: libtorch's {@code linear} on the fp32 weight (OpenBLAS sgemm on CPU).</li>
 *   <li>{@code quantized}: cachedit's fused low-bit kernel for {@code type}: the activations quantised
 *       on the fly, integer dot products, rescale and bias in one call.</li>
 * </ul>
 * Shapes {@code MxKxN}: a FLUX.1 block (4096 image tokens, hidden 3072, MLP 12288) and the bundled
 * model's (hidden 128, 32 x 53 tokens at batch 16 with CFG). Both use the same threads.
 *
 * <p>Run: {@code java -jar bench/target/benchmarks.jar QuantLinearBench}
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 4, time = 2)
@Fork(value = 1, jvmArgsAppend = {"-Xmx4g", "-Dorg.bytedeco.javacpp.platform.extension="})
public class QuantLinearBench {
  @Param({"float8_per_row", "float8_per_tensor", "float8_weight_only", "int8_per_row", "int8_per_tensor",
      "int8_weight_only", "int4_weight_only"})
  public String type;

  @Param({"4096x3072x3072", "4096x3072x12288", "1696x128x128", "1696x128x512", "1696x640x128"})
  public String shape;

  /** int4 inputs per scale. */
  @Param({"32"})
  public int group;

  private Kernels kernels;
  private QuantType quant;
  private long n;
  private long k;
  private Tensor x;
  private Tensor w;
  private Tensor b;
  private Tensor packed;
  private Tensor scales;

  @Setup(Level.Trial)
  public void setUp() {
    NativeRuntime.initialize();  // first, as every cachedit entry point: libgomp's wait policy is read at load
    String[] dims = shape.split("x");
    long m = Long.parseLong(dims[0]);
    k = Long.parseLong(dims[1]);
    n = Long.parseLong(dims[2]);
    quant = QuantType.of(type, "type");
    kernels = Kernels.withThreads(torch.get_num_threads());
    torch.manual_seed(0);
    x = torch.randn(m, k);
    w = torch.randn(n, k).mul(new Scalar(1.0 / Math.sqrt(k)));
    b = torch.randn(n);
    Tensor[] q = kernels.quantizeWeight(w, quant.format(), group, quant.perTensorWeights());
    packed = kernels.packWeight(quant.format(), q[0], n, k);
    scales = q[1];
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    for (Tensor t : new Tensor[] {x, w, b, packed, scales}) {
      t.close();
    }
  }

  @Benchmark
  public long fp32() {
    try (PointerScope scope = new PointerScope()) {
      return torch.linear(x, w, b).numel();
    }
  }

  @Benchmark
  public long quantized() {
    try (PointerScope scope = new PointerScope()) {
      return kernels.quantLinear(x, quant.activation(), quant.format(), packed, scales, n, k, group,
          quant.perTensorWeights(), b).numel();
    }
  }
}
