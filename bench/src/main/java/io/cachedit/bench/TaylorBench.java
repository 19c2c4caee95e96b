package io.cachedit.bench;

import io.cachedit.kernels.Kernels;
import java.util.List;
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
 * The TaylorSeer prediction on a cached step (docs/algorithms.md section 6.1), order 2: {@code f + d1*k + d2*k^2/2}.
 *
 * <ul>
 *   <li>{@code fused}: our kernel, writing into a preallocated buffer (what the engine does).</li>
 *   <li>{@code libtorch}: the composite a user would write, {@code f + d1*k + d2*k*k/2}, which
 *       allocates four temporaries.</li>
 *   <li>{@code libtorchInPlace}: the best libtorch can do without allocating,
 *       {@code out.copy_(f).add_(d1, k).add_(d2, k*k/2)} (three passes over out).</li>
 * </ul>
 * Bytes moved by the fused kernel = 4 * size * element bytes (read three, write one).
 *
 * <p>Run: {@code java -jar bench/target/benchmarks.jar TaylorBench}
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"-Xmx2g", "-Dorg.bytedeco.javacpp.platform.extension="})
public class TaylorBench {
  @Param({"1048576", "16777216"})
  public int size;

  @Param({"fp32", "bf16"})
  public String dtype;

  private static final double K = 3.0;

  private Kernels kernels;
  private Tensor f;
  private Tensor d1;
  private Tensor d2;
  private Tensor out;
  private List<Tensor> terms;
  private Scalar k;
  private Scalar halfKSquared;

  @Setup(Level.Trial)
  public void setUp() {
    kernels = Kernels.withThreads(torch.get_num_threads());
    ScalarType type = "bf16".equals(dtype) ? ScalarType.BFloat16 : ScalarType.Float;
    torch.manual_seed(0);
    f = torch.randn(size).to(type);
    d1 = torch.randn(size).to(type);
    d2 = torch.randn(size).to(type);
    out = torch.empty_like(f);
    terms = List.of(f, d1, d2);
    k = new Scalar(K);
    halfKSquared = new Scalar(K * K / 2);
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    for (Tensor t : new Tensor[] {f, d1, d2, out}) {
      t.close();
    }
  }

  @Benchmark
  public Tensor fused() {
    kernels.taylorPredictInto(out, terms, K);
    return out;
  }

  @Benchmark
  public double libtorch() {
    try (PointerScope scope = new PointerScope()) {
      Tensor r = f.add(d1.mul(k)).add(d2.mul(halfKSquared));
      return r.numel();
    }
  }

  @Benchmark
  public Tensor libtorchInPlace() {
    try (PointerScope scope = new PointerScope()) {
      out.copy_(f).add_(d1, k).add_(d2, halfKSquared);
      return out;
    }
  }
}
