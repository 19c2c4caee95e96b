package io.cachedit.bench;

import io.cachedit.kernels.NativeRuntime;
import io.cachedit.models.common.DiffusersTransformer;
import io.cachedit.models.common.ForwardInputs;
import io.cachedit.pipeline.ModelRegistry;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import jdk.jfr.Recording;
import jdk.jfr.consumer.RecordedEvent;
import jdk.jfr.consumer.RecordedThread;
import jdk.jfr.consumer.RecordingFile;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import java.util.concurrent.TimeUnit;
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
 * Uncached forward time of a FLUX-shaped transformer (the real {@code FluxTransformer2DModel}:
 * double-stream then single-stream blocks, 3-axis RoPE, guidance embedding) at reduced depth on CPU,
 * and how much of it the Java path costs.
 *
 * <p>Java overhead is measured with JDK Flight Recorder on the calling thread: {@code
 * jdk.ExecutionSample} fires only while the thread runs Java code (model code, JavaCPP wrappers,
 * argument marshalling), {@code jdk.NativeMethodSample} only while it is inside native code
 * (libtorch's dispatcher and kernels; libtorch's OpenMP workers are native threads and never
 * sampled). Java share = Java samples / (Java + native samples), both at a 1 ms period. For scale it
 * also prints the cost of one Java-to-libtorch call on a 1-element tensor (JNI, wrapper objects,
 * libtorch's dispatcher and a trivial kernel).
 *
 * <p>As JMH benchmarks ({@code java -jar bench/target/benchmarks.jar ForwardOverheadBench}):
 * {@code forward}, ms per uncached forward for each width and dtype, and {@code javaToLibtorchCall},
 * ns per call on a 1-element tensor.
 *
 * <p>As a report ({@code java -cp bench/target/benchmarks.jar io.cachedit.bench.ForwardOverheadBench
 * [forwards]}): the same forwards under a JFR recording of the calling thread, for the Java share.
 * That part stays a plain program: it needs the recording around exactly the measured forwards on
 * exactly one thread, which JMH's profilers (they sample the whole fork) do not give.
 */
public class ForwardOverheadBench {
  /** One model and its inputs per (width, dtype). */
  @State(Scope.Benchmark)
  public static class ForwardState {
    /** Attention heads of 128 dims: hidden 512, 1024, 1536. */
    @Param({"4", "8", "12"})
    public int heads;

    @Param({"fp32", "bf16"})
    public String dtype;

    PointerScope scope;
    DiffusersTransformer model;
    Map<String, Tensor> in;

    @Setup(Level.Trial)
    public void setUp() {
      NativeRuntime.initialize();
      scope = new PointerScope();
      ScalarType type = switch (dtype) {
        case "fp32" -> ScalarType.Float;
        case "bf16" -> ScalarType.BFloat16;
        default -> throw new IllegalArgumentException("dtype must be fp32 or bf16, got " + dtype);
      };
      in = inputs();
      model = ModelRegistry.defaults().randomTransformer(config(heads), 1, type);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
      model.close();
      scope.close();
    }
  }

  /** Two 1-element tensors. */
  @State(Scope.Benchmark)
  public static class TinyState {
    PointerScope scope;
    Tensor a;
    Tensor b;

    @Setup(Level.Trial)
    public void setUp() {
      NativeRuntime.initialize();
      scope = new PointerScope();
      a = torch.ones(1);
      b = torch.ones(1);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
      scope.close();
    }
  }

  static final int TINY_CALLS = 1000;

  @Benchmark
  @BenchmarkMode(Mode.AverageTime)
  @OutputTimeUnit(TimeUnit.MILLISECONDS)
  @Warmup(iterations = 2, time = 2)
  @Measurement(iterations = 5, time = 2)
  @Fork(value = 1, jvmArgsAppend = {"-Xmx4g"})
  public void forward(ForwardState s, Blackhole bh) {
    try (PointerScope scope = new PointerScope()) {
      bh.consume(s.model.forward(ForwardInputs.of(s.in), null).numel());
    }
  }

  /** One Java-to-libtorch call: JNI, the wrapper objects, libtorch's dispatcher, a trivial kernel. */
  @Benchmark
  @BenchmarkMode(Mode.AverageTime)
  @OutputTimeUnit(TimeUnit.NANOSECONDS)
  @OperationsPerInvocation(TINY_CALLS)
  @Warmup(iterations = 2, time = 1)
  @Measurement(iterations = 5, time = 1)
  @Fork(value = 1, jvmArgsAppend = {"-Xmx1g"})
  public void javaToLibtorchCall(TinyState s) {
    try (PointerScope scope = new PointerScope()) {
      for (int i = 0; i < TINY_CALLS; i++) {
        s.a.add(s.b);
      }
    }
  }
  static final int IMAGE_SIDE = 16;
  static final int TEXT_TOKENS = 64;
  static final int HEAD_DIM = 128;

  static String config(int heads) {
    return """
        {"_class_name": "FluxTransformer2DModel", "patch_size": 1, "in_channels": 64, "num_layers": 1,
         "num_single_layers": 2, "attention_head_dim": %d, "num_attention_heads": %d, "joint_attention_dim": 4096,
         "pooled_projection_dim": 768, "guidance_embeds": true, "axes_dims_rope": [16, 56, 56]}
        """.formatted(HEAD_DIM, heads);
  }

  static Map<String, Tensor> inputs() {
    torch.manual_seed(0);
    int n = IMAGE_SIDE * IMAGE_SIDE;
    Map<String, Tensor> in = new LinkedHashMap<>();
    in.put("hidden_states", torch.randn(1, n, 64));
    in.put("encoder_hidden_states", torch.randn(1, TEXT_TOKENS, 4096));
    in.put("pooled_projections", torch.randn(1, 768));
    in.put("timestep", torch.full(new long[] {1}, new Scalar(0.5)));
    in.put("guidance", torch.full(new long[] {1}, new Scalar(3.5)));
    Tensor rows = torch.arange(new Scalar(IMAGE_SIDE)).view(IMAGE_SIDE, 1).expand(IMAGE_SIDE, IMAGE_SIDE).reshape(-1);
    Tensor cols = torch.arange(new Scalar(IMAGE_SIDE)).view(1, IMAGE_SIDE).expand(IMAGE_SIDE, IMAGE_SIDE).reshape(-1);
    in.put("img_ids", torch.stack(new org.bytedeco.pytorch.TensorVector(torch.zeros(n), rows.to(ScalarType.Float),
        cols.to(ScalarType.Float)), 1));
    in.put("txt_ids", torch.zeros(TEXT_TOKENS, 3));
    return in;
  }

  record Result(double msPerForward, long javaSamples, long nativeSamples) {
    double javaShare() {
      return (double) javaSamples / Math.max(1, javaSamples + nativeSamples);
    }
  }

  static Result measure(DiffusersTransformer model, Map<String, Tensor> in, int forwards) throws IOException {
    for (int i = 0; i < 2; i++) {
      try (PointerScope scope = new PointerScope()) {
        model.forward(ForwardInputs.of(in), null);
      }
    }
    Path file = Files.createTempFile("cachedit-forward", ".jfr");
    long elapsed;
    try (Recording recording = new Recording()) {
      recording.enable("jdk.ExecutionSample").withPeriod(Duration.ofMillis(1));
      recording.enable("jdk.NativeMethodSample").withPeriod(Duration.ofMillis(1));
      recording.start();
      long t0 = System.nanoTime();
      for (int i = 0; i < forwards; i++) {
        try (PointerScope scope = new PointerScope()) {
          model.forward(ForwardInputs.of(in), null);
        }
      }
      elapsed = System.nanoTime() - t0;
      recording.stop();
      recording.dump(file);
    }
    long javaSamples = 0;
    long nativeSamples = 0;
    long me = Thread.currentThread().getId();
    for (RecordedEvent e : RecordingFile.readAllEvents(file)) {
      RecordedThread t = e.getThread("sampledThread");
      if (t == null || t.getJavaThreadId() != me) {
        continue;
      }
      if (e.getEventType().getName().equals("jdk.ExecutionSample")) {
        javaSamples++;
      } else {
        nativeSamples++;
      }
    }
    Files.deleteIfExists(file);
    return new Result(elapsed / 1e6 / forwards, javaSamples, nativeSamples);
  }

  /** Nanoseconds of one Java-to-libtorch call on a 1-element tensor (JNI + wrapper + dispatch + kernel). */
  static double tinyOpNanos() {
    Tensor a = torch.ones(1);
    Tensor b = torch.ones(1);
    for (int round = 0; round < 3; round++) {
      try (PointerScope scope = new PointerScope()) {
        for (int i = 0; i < 20_000; i++) {
          a.add(b);
        }
      }
    }
    int n = 200_000;
    long t0 = System.nanoTime();
    for (int chunk = 0; chunk < n / 10_000; chunk++) {
      try (PointerScope scope = new PointerScope()) {
        for (int i = 0; i < 10_000; i++) {
          a.add(b);
        }
      }
    }
    return (System.nanoTime() - t0) / (double) n;
  }

  public static void main(String[] args) throws Exception {
    NativeRuntime.initialize();
    int forwards = args.length > 0 ? Integer.parseInt(args[0]) : 5;
    Map<String, Tensor> in = inputs();
    double opNanos = tinyOpNanos();
    System.out.printf(Locale.ROOT, "one Java->libtorch call on a 1-element tensor: %.2f us%n", opNanos / 1e3);
    System.out.println("| hidden | dtype | ms/forward | Java samples | native samples | Java share |");
    System.out.println("|---|---|---|---|---|---|");
    for (int heads : new int[] {4, 8, 12}) {
      for (ScalarType dtype : new ScalarType[] {ScalarType.Float, ScalarType.BFloat16}) {
        try (PointerScope outer = new PointerScope();
            DiffusersTransformer model = ModelRegistry.defaults().randomTransformer(config(heads), 1, dtype)) {
          Result r = measure(model, in, forwards);
          System.out.printf(Locale.ROOT, "| %d | %s | %.1f | %d | %d | %.2f%% |%n", heads * HEAD_DIM,
              dtype == ScalarType.Float ? "fp32" : "bf16", r.msPerForward(), r.javaSamples(), r.nativeSamples(),
              100 * r.javaShare());
        }
      }
    }
  }
}
