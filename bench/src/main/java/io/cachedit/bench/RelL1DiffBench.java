package io.cachedit.bench;

import io.cachedit.kernels.Kernels;
import java.util.concurrent.TimeUnit;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
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
 * The residual diff every cached step computes (docs/algorithms.md section 3.5): {@code sum|a-b| / sum|a|}.
 *
 * <ul>
 *   <li>{@code fused}: our one-pass kernel, reading a and b once.</li>
 *   <li>{@code libtorch}: the composite a user would write, {@code (a-b).abs().mean()/a.abs().mean()};
 *       it allocates two full-size temporaries and reads a twice.</li>
 *   <li>{@code readReference}: libtorch summing a and b ({@code a.sum() + b.sum()}): the same bytes
 *       read once, no arithmetic to speak of, as the bandwidth yardstick.</li>
 * </ul>
 * Effective bandwidth = 2 * size * element bytes / time. Both libraries use the same 2 threads.
 *
 * <p>Run: {@code java -jar bench/target/benchmarks.jar RelL1DiffBench}
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"-Xmx2g", "-Dorg.bytedeco.javacpp.platform.extension="})
public class RelL1DiffBench {
  @Param({"1048576", "16777216"})
  public int size;

  @Param({"fp32", "bf16"})
  public String dtype;

  private Kernels kernels;
  private Tensor a;
  private Tensor b;

  @Setup(Level.Trial)
  public void setUp() {
    kernels = Kernels.withThreads(torch.get_num_threads());
    ScalarType type = "bf16".equals(dtype) ? ScalarType.BFloat16 : ScalarType.Float;
    torch.manual_seed(0);
    a = torch.randn(size).to(type);
    b = a.add(torch.randn(size).to(type).mul(new Scalar(0.05)));
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    a.close();
    b.close();
  }

  @Benchmark
  public double fused() {
    return kernels.relL1(a, b);
  }

  @Benchmark
  public double libtorch() {
    try (PointerScope scope = new PointerScope()) {
      return a.sub(b).abs().mean().div(a.abs().mean()).item_double();
    }
  }

  @Benchmark
  public double readReference() {
    try (PointerScope scope = new PointerScope()) {
      return a.sum().item_double() + b.sum().item_double();
    }
  }
}
