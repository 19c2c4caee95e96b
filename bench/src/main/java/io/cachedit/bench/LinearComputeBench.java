package io.cachedit.bench;

import io.cachedit.fashion.BundledModel;
import io.cachedit.fashion.Generation;
import io.cachedit.kernels.Kernels;
import io.cachedit.kernels.NativeRuntime;
import io.cachedit.pipeline.FluxPipeline;
import io.cachedit.quant.BatchInvariance;
import io.cachedit.quant.LinearCompute;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.Blackhole;

/**
 * The linear layers' arithmetic (docs/runtime.md, "bf16 compute"), side by side in one run:
 * {@code libtorch} (its fp32 GEMM through OpenBLAS), {@code fp32} (cachedit's batch-invariant fp32
 * kernel) and {@code bf16} (cachedit's bf16-compute kernel: AVX-512 BF16 where the CPU has it).
 *
 * <ul>
 *   <li>{@code step}: one denoising step of the bundled model, the unit: 16 images with batched
 *       classifier-free guidance, i.e. one transformer forward of 32 x 53 tokens, plus the scheduler
 *       and a one-step generation's own set-up (conditioning, RoPE tables, noise).
 *   <li>{@code generationStep}: the default 28-step uncached generation, per step (JMH divides by 28):
 *       the per-forward cost with the per-generation set-up amortised.
 *   <li>{@code linear}: one layer at the bundled model's shapes, {@code MxKxN} (M = 32 x 53 tokens,
 *       hidden 128, MLP 512).
 * </ul>
 *
 * <p>Run from the repository root (the bundled model is read from models/fashion-flux):
 * {@code java -jar bench/target/benchmarks.jar LinearComputeBench}
 */
public class LinearComputeBench {
  static final Path MODEL = Path.of("models", "fashion-flux");

  static void requireModel() {
    if (!Files.isRegularFile(MODEL.resolve("model_index.json"))) {
      throw new IllegalStateException("run from the repository root: " + MODEL.toAbsolutePath() + " is missing");
    }
  }

  static void applyCompute(io.cachedit.models.common.DiffusersModel model, String compute) {
    switch (compute) {
      case "libtorch" -> { }
      case "fp32" -> BatchInvariance.apply(model, LinearCompute.FP32);
      case "bf16" -> BatchInvariance.apply(model, LinearCompute.BF16);
      default -> throw new IllegalArgumentException("compute must be libtorch, fp32 or bf16, got " + compute);
    }
  }

  /** The bundled model with one compute mode and a one-step request. */
  @State(Scope.Benchmark)
  public static class StepState {
    @Param({"libtorch", "fp32", "bf16"})
    public String compute;

    PointerScope scope;
    BundledModel model;
    FluxPipeline.Request request;

    @Setup(Level.Trial)
    public void setUp() {
      NativeRuntime.initialize();
      requireModel();
      scope = new PointerScope();
      model = BundledModel.load(MODEL);
      applyCompute(model.transformer(), compute);
      request = Generation.request(model, "sneaker", 16, 0, steps(), 4.0);
    }

    /** Denoising steps of the request. */
    int steps() {
      return 1;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
      model.close();
      scope.close();
    }
  }

  /** The bundled model with one compute mode and the default 28-step request. */
  @State(Scope.Benchmark)
  public static class GenerationState extends StepState {
    static final int STEPS = 28;

    @Override
    int steps() {
      return STEPS;
    }
  }

  /** One layer: random fp32 weight and input of the given shape, packed for the chosen kernel. */
  @State(Scope.Benchmark)
  public static class LinearState {
    @Param({"libtorch", "fp32", "bf16"})
    public String compute;

    @Param({"1696x128x512", "1696x512x128", "1696x128x128"})
    public String shape;

    PointerScope scope;
    Kernels kernels;
    Tensor x;
    Tensor w;
    Tensor packed;
    long out;
    long in;

    @Setup(Level.Trial)
    public void setUp() {
      NativeRuntime.initialize();
      scope = new PointerScope();
      String[] d = shape.split("x");
      long m = Long.parseLong(d[0]);
      in = Long.parseLong(d[1]);
      out = Long.parseLong(d[2]);
      torch.manual_seed(1);
      x = torch.randn(m, in);
      w = torch.randn(out, in);
      kernels = Kernels.withThreads(Math.max(1, torch.get_num_threads()));
      packed = switch (compute) {
        case "libtorch" -> null;
        case "fp32" -> kernels.packInvariantWeight(w);
        case "bf16" -> kernels.packBf16Weight(w);
        default -> throw new IllegalArgumentException("compute must be libtorch, fp32 or bf16, got " + compute);
      };
    }

    @TearDown(Level.Trial)
    public void tearDown() {
      scope.close();
    }
  }

  @Benchmark
  @BenchmarkMode(Mode.AverageTime)
  @OutputTimeUnit(TimeUnit.MILLISECONDS)
  @Warmup(iterations = 3, time = 2)
  @Measurement(iterations = 5, time = 2)
  @Fork(value = 1, jvmArgsAppend = {"-Xmx4g"})
  public void step(StepState s, Blackhole bh) {
    try (PointerScope scope = new PointerScope(); NoGradGuard noGrad = new NoGradGuard()) {
      bh.consume(s.model.pipeline().generate(s.request, null).numel());
    }
  }

  /** A whole uncached generation, reported per step: the per-forward cost with the per-generation work amortised. */
  @Benchmark
  @BenchmarkMode(Mode.AverageTime)
  @OutputTimeUnit(TimeUnit.MILLISECONDS)
  @OperationsPerInvocation(GenerationState.STEPS)
  @Warmup(iterations = 3, time = 3)
  @Measurement(iterations = 6, time = 3)
  @Fork(value = 1, jvmArgsAppend = {"-Xmx4g"})
  public void generationStep(GenerationState s, Blackhole bh) {
    try (PointerScope scope = new PointerScope(); NoGradGuard noGrad = new NoGradGuard()) {
      bh.consume(s.model.pipeline().generate(s.request, null).numel());
    }
  }

  @Benchmark
  @BenchmarkMode(Mode.AverageTime)
  @OutputTimeUnit(TimeUnit.MILLISECONDS)
  @Warmup(iterations = 2, time = 1)
  @Measurement(iterations = 5, time = 1)
  @Fork(value = 1, jvmArgsAppend = {"-Xmx2g"})
  public void linear(LinearState s, Blackhole bh) {
    try (PointerScope scope = new PointerScope(); NoGradGuard noGrad = new NoGradGuard()) {
      Tensor y = switch (s.compute) {
        case "libtorch" -> torch.linear(s.x, s.w);
        case "fp32" -> s.kernels.invariantLinear(s.x, s.packed, s.out, s.in, null);
        default -> s.kernels.bf16Linear(s.x, s.packed, s.out, s.in, null);
      };
      bh.consume(y.numel());
    }
  }
}
