package io.cachedit.cli;

import io.cachedit.models.common.DiffusersTransformer;
import io.cachedit.models.flux.FluxTransformer2DModel;
import io.cachedit.parallel.CommGroup;
import io.cachedit.parallel.ContextParallel;
import io.cachedit.parallel.DistributedEnvironment;
import io.cachedit.parallel.ParallelismConfig;
import io.cachedit.parallel.ProcessGroups;
import io.cachedit.parallel.WireBytes;
import io.cachedit.pipeline.ModelRegistry;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code cachedit bench-parallel}: context parallelism on a FLUX-shaped transformer with random
 * weights, run under {@code cachedit launch}. Rank 0 alone (the others wait) times the
 * single-process forward; then every mode runs on all ranks; repetitions interleave the two so the
 * machine's drift affects both alike. Also counts the bytes each rank sends per forward (bf16 model:
 * raw vs FP8 wires) and how much communication the async mode hides.
 */
@Command(name = "bench-parallel", mixinStandardHelpOptions = true,
    description = {"Benchmarks context parallelism (Ulysses, async, FP8, UAA, ring) against one process on a "
        + "FLUX-shaped model with random weights. Run it under launch:",
        "  cachedit launch --nproc 2 --threads 1 -- bench-parallel --tokens 4096"})
final class ParallelBenchCommand implements Callable<Integer> {
  @Option(names = "--tokens", description = "image tokens (default ${DEFAULT-VALUE})")
  int tokens = 4096;

  @Option(names = "--text", description = "text tokens (default ${DEFAULT-VALUE})")
  int text = 128;

  @Option(names = "--heads", description = "attention heads of 64 dimensions (default ${DEFAULT-VALUE})")
  int heads = 6;

  @Option(names = "--double", description = "double-stream blocks (default ${DEFAULT-VALUE})")
  int doubleBlocks = 1;

  @Option(names = "--single", description = "single-stream blocks (default ${DEFAULT-VALUE})")
  int singleBlocks = 2;

  @Option(names = "--reps", description = "interleaved repetitions (default ${DEFAULT-VALUE})")
  int reps = 3;

  @Option(names = "--baseline-threads", description = "threads of the one-process baseline (default "
      + "${DEFAULT-VALUE})")
  int baselineThreads = 1;

  @Option(names = "--out", description = "markdown report (default ${DEFAULT-VALUE})")
  Path out = Path.of("docs", "bench", "parallel.md");

  String modelJson(int width) {
    return """
        {"_class_name": "FluxTransformer2DModel", "patch_size": 1, "in_channels": 64, "num_layers": %d,
         "num_single_layers": %d, "attention_head_dim": 64, "num_attention_heads": %d, "joint_attention_dim": 256,
         "pooled_projection_dim": 64, "guidance_embeds": false, "axes_dims_rope": [16, 24, 24]}
        """.formatted(doubleBlocks, singleBlocks, width);
  }

  /** One forward's inputs: a square-ish grid of image tokens and a text of {@code text} tokens. */
  static Tensor[] inputs(int tokens, int text, ScalarType dtype) {
    torch.manual_seed(7);
    int side = (int) Math.ceil(Math.sqrt(tokens));
    Tensor ids = torch.zeros(tokens, 3);
    Tensor pos = torch.arange(new Scalar(tokens));
    ids.select(1, 1).copy_(pos.floor_divide(new Scalar(side)));
    ids.select(1, 2).copy_(pos.remainder(new Scalar(side)));
    return new Tensor[] {torch.randn(1, tokens, 64).to(dtype), torch.randn(1, text, 256).to(dtype),
        torch.randn(1, 64).to(dtype), torch.full(new long[] {1}, new Scalar(0.5)), ids, torch.zeros(text, 3)};
  }

  static Tensor forward(FluxTransformer2DModel m, Tensor[] in) {
    return m.forward(in[0], in[1], in[2], in[3], in[4], in[5], null, null);
  }

  record Mode(String name, ParallelismConfig config) {}

  @Override
  public Integer call() throws IOException {
    DistributedEnvironment env = DistributedEnvironment.fromEnvironment();
    if (!env.distributed()) {
      throw io.cachedit.error.ConfigException.forField("WORLD_SIZE", "bench-parallel compares processes: run it "
          + "under cachedit launch --nproc 2 (or with torchrun's environment)");
    }
    int w = env.worldSize();
    List<Mode> modes = new ArrayList<>(List.of(
        new Mode("ulysses=" + w, ParallelismConfig.parse("ulysses=" + w)),
        new Mode("ulysses=" + w + ",async", ParallelismConfig.parse("ulysses=" + w + ",async")),
        new Mode("ulysses=" + w + ",float8", ParallelismConfig.parse("ulysses=" + w + ",float8")),
        new Mode("ulysses=" + w + ",anything", ParallelismConfig.parse("ulysses=" + w + ",anything")),
        new Mode("ring=" + w, ParallelismConfig.parse("ring=" + w)),
        new Mode("ring=" + w + ",allgather", ParallelismConfig.parse("ring=" + w + ",allgather"))));
    int threads = torch.get_num_threads();
    Map<String, List<Double>> seconds = new LinkedHashMap<>();
    Map<String, Long> bytes = new LinkedHashMap<>();
    Map<String, Double> waitMs = new LinkedHashMap<>();
    Map<String, Double> maxDiff = new LinkedHashMap<>();
    String baseName = "1 process x " + baselineThreads + " thread" + (baselineThreads == 1 ? "" : "s");
    seconds.put(baseName, new ArrayList<>());
    modes.forEach(m -> seconds.put(m.name(), new ArrayList<>()));
    Map<WireBytes.Kind, long[]> wire = new LinkedHashMap<>();  // bf16 model: {raw, float8} bytes per kind
    try (ProcessGroups groups = ProcessGroups.create(env, ProcessGroups.timeoutFromEnvironment());
         PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard();
         DiffusersTransformer model = ModelRegistry.defaults().randomTransformer(modelJson(heads), 11,
             ScalarType.Float)) {
      FluxTransformer2DModel flux = (FluxTransformer2DModel) model;
      Tensor[] in = inputs(tokens, text, ScalarType.Float);
      CommGroup world = groups.world();
      Tensor reference = null;
      // warm-up: one process, then each mode once
      if (groups.rank() == 0) {
        torch.set_num_threads(baselineThreads);
        reference = forward(flux, in);
        torch.set_num_threads(threads);
      }
      world.barrier();
      for (Mode m : modes) {
        try (PointerScope s = new PointerScope(); ContextParallel cp = ContextParallel.apply(flux, m.config(), groups)) {
          forward(flux, in);
        }
      }
      for (int rep = 0; rep < reps; rep++) {
        if (groups.rank() == 0) {
          torch.set_num_threads(baselineThreads);
          try (PointerScope s = new PointerScope()) {
            long t0 = System.nanoTime();
            forward(flux, in);
            seconds.get(baseName).add((System.nanoTime() - t0) / 1e9);
          }
          torch.set_num_threads(threads);
        }
        world.barrier();
        for (Mode m : modes) {
          try (PointerScope s = new PointerScope(); ContextParallel cp = ContextParallel.apply(flux, m.config(), groups)) {
            world.barrier();
            long sent = world.bytesSent();
            long wait = world.waitNanos();
            long t0 = System.nanoTime();
            Tensor o = forward(flux, in);
            seconds.get(m.name()).add((System.nanoTime() - t0) / 1e9);
            bytes.put(m.name(), world.bytesSent() - sent);
            waitMs.merge(m.name(), (world.waitNanos() - wait) / 1e6 / reps, Double::sum);
            if (reference != null && rep == 0) {
              maxDiff.put(m.name(), reference.sub(o).abs().max().item_double());
            }
          }
        }
        System.err.printf(Locale.ROOT, "rank %d: repetition %d of %d done%n", groups.rank(), rep + 1, reps);
      }
      // bytes on the wire with a bf16 model, raw vs FP8 exchanges (one forward each)
      try (PointerScope s = new PointerScope();
           DiffusersTransformer bf16 = ModelRegistry.defaults().randomTransformer(modelJson(heads), 11,
               ScalarType.BFloat16)) {
        Tensor[] in16 = inputs(tokens, text, ScalarType.BFloat16);
        for (int f8 = 0; f8 < 2; f8++) {
          ParallelismConfig c = ParallelismConfig.parse("ulysses=" + w + (f8 == 1 ? ",float8" : ""));
          try (ContextParallel cp = ContextParallel.apply(bf16, c, groups)) {
            forward((FluxTransformer2DModel) bf16, in16);
            for (WireBytes.Kind k : WireBytes.Kind.values()) {
              wire.computeIfAbsent(k, x -> new long[2])[f8] = cp.wireBytes().get(k);
            }
          }
        }
      }
      if (groups.rank() != 0) {
        return 0;
      }
    }
    String report = report(w, seconds, baseName, bytes, waitMs, maxDiff, wire);
    System.out.print(report);
    Files.createDirectories(out.toAbsolutePath().getParent());
    Files.writeString(out, report);
    System.out.println("wrote " + out);
    return 0;
  }

  static double median(List<Double> v) {
    double[] a = v.stream().mapToDouble(Double::doubleValue).sorted().toArray();
    return a.length == 0 ? Double.NaN : a.length % 2 == 1 ? a[a.length / 2] : (a[a.length / 2 - 1] + a[a.length / 2]) / 2;
  }

  String report(int w, Map<String, List<Double>> seconds, String baseName, Map<String, Long> bytes,
      Map<String, Double> waitMs, Map<String, Double> maxDiff, Map<WireBytes.Kind, long[]> wire) {
    StringBuilder md = new StringBuilder();
    double base = median(seconds.get(baseName));
    md.append(String.format(Locale.ROOT, "# Context parallelism on %d processes%n%n", w));
    md.append(String.format(Locale.ROOT, "Command: `./cachedit launch --nproc %d --threads 1 -- bench-parallel --tokens %d"
            + " --text %d --heads %d --double %d --single %d --reps %d`. Machine: %d cores, %s. FLUX-shaped transformer"
            + " (random weights, fp32): %d double + %d single blocks, %d heads x 64, %d image + %d text tokens. One "
            + "forward per row; medians of %d repetitions, interleaved with the one-process run.%n%n", w, tokens, text,
        heads, doubleBlocks, singleBlocks, reps, Runtime.getRuntime().availableProcessors(),
        System.getProperty("os.arch"), doubleBlocks, singleBlocks, heads, tokens, text, reps));
    md.append("| run | forward s (median) | all runs s | speedup vs 1 process | bytes sent per rank | comm wait ms | "
        + "max abs diff vs 1 process |\n|---|---|---|---|---|---|---|\n");
    for (Map.Entry<String, List<Double>> e : seconds.entrySet()) {
      String name = e.getKey();
      double s = median(e.getValue());
      md.append(String.format(Locale.ROOT, "| %s | %.3f | %s | %s | %s | %s | %s |%n", name, s,
          e.getValue().stream().map(x -> String.format(Locale.ROOT, "%.3f", x)).toList(),
          name.equals(baseName) ? "1.00x" : String.format(Locale.ROOT, "%.2fx", base / s),
          bytes.containsKey(name) ? String.format(Locale.ROOT, "%,d", bytes.get(name)) : "",
          waitMs.containsKey(name) ? String.format(Locale.ROOT, "%.1f", waitMs.get(name)) : "",
          maxDiff.containsKey(name) ? String.format(Locale.ROOT, "%.2e", maxDiff.get(name)) : ""));
    }
    String sync = "ulysses=" + w;
    String async = sync + ",async";
    if (waitMs.containsKey(sync) && waitMs.containsKey(async) && waitMs.get(sync) > 0) {
      md.append(String.format(Locale.ROOT, "%nAsync Ulysses: rank 0 waited %.1f ms for communication per forward "
              + "against %.1f ms without async: %.0f%% of the waiting hidden behind the projections and MLPs.%n",
          waitMs.get(async), waitMs.get(sync), 100 * (1 - waitMs.get(async) / waitMs.get(sync))));
    }
    md.append("\nBytes rank 0 sends in the Ulysses exchanges of one forward, bf16 model (counted by the exchanges):\n\n");
    md.append("| tensor | bf16 bytes | FP8 bytes | FP8 / bf16 |\n|---|---|---|---|\n");
    long raw = 0;
    long f8 = 0;
    long rawQvo = 0;
    long f8Qvo = 0;
    for (Map.Entry<WireBytes.Kind, long[]> e : wire.entrySet()) {
      long[] v = e.getValue();
      raw += v[0];
      f8 += v[1];
      if (e.getKey() != WireBytes.Kind.K) {
        rawQvo += v[0];
        f8Qvo += v[1];
      }
      md.append(String.format(Locale.ROOT, "| %s | %,d | %,d | %.3fx |%n", e.getKey(), v[0], v[1],
          v[0] == 0 ? Double.NaN : (double) v[1] / v[0]));
    }
    md.append(String.format(Locale.ROOT, "| Q, V, O (FP8 wires) | %,d | %,d | %.3fx |%n", rawQvo, f8Qvo,
        rawQvo == 0 ? Double.NaN : (double) f8Qvo / rawQvo));
    md.append(String.format(Locale.ROOT, "| all (K stays 16-bit) | %,d | %,d | %.3fx |%n", raw, f8,
        raw == 0 ? Double.NaN : (double) f8 / raw));
    return md.toString();
  }
}
