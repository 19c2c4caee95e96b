package io.cachedit.cli;

import io.cachedit.models.common.DiffusersTransformer;
import io.cachedit.models.flux.FluxTransformer2DModel;
import io.cachedit.parallel.CommGroup;
import io.cachedit.parallel.DistributedEnvironment;
import io.cachedit.parallel.Parallelism;
import io.cachedit.parallel.ParallelismConfig;
import io.cachedit.parallel.ProcessGroups;
import io.cachedit.parallel.TensorParallelGroup;
import io.cachedit.pipeline.FlowMatchEulerScheduler;
import io.cachedit.pipeline.FluxPipeline;
import io.cachedit.pipeline.ModelRegistry;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * Tensor and CFG parallelism measured on a FLUX-shaped transformer saved as a diffusers folder: each
 * rank's weight bytes after a sharded load against one process's, the tensor-parallel group's bytes
 * per forward, and a true-CFG generation with its branches on two single-thread ranks against one
 * single-thread process (docs/parallelism.md).
 */
@Command(name = "bench-tp-cfg", mixinStandardHelpOptions = true,
    description = {"Benchmarks tensor parallelism (per-rank weight memory, communication per step) and CFG "
        + "parallelism (true-CFG generation speed) against one process; run under cachedit launch --nproc 2 or 3."})
final class TensorCfgBenchCommand implements Callable<Integer> {
  @Option(names = "--heads", description = "attention heads of 64 dimensions (default ${DEFAULT-VALUE})")
  int heads = 6;

  @Option(names = "--double", description = "double-stream blocks (default ${DEFAULT-VALUE})")
  int doubleBlocks = 2;

  @Option(names = "--single", description = "single-stream blocks (default ${DEFAULT-VALUE})")
  int singleBlocks = 4;

  @Option(names = "--size", description = "image side in pixels (16 per token side; default ${DEFAULT-VALUE})")
  int size = 256;

  @Option(names = "--steps", description = "denoising steps of the CFG generation (default ${DEFAULT-VALUE})")
  int steps = 4;

  @Option(names = "--reps", description = "interleaved repetitions (default ${DEFAULT-VALUE})")
  int reps = 3;

  @Option(names = "--out", description = "markdown report (default docs/bench/tp-cfg-<world>.md)")
  Path out;

  @Option(names = "--work", description = "folder for the saved model (default: a temporary folder)")
  Path work;

  @Override
  public Integer call() throws IOException {
    DistributedEnvironment env = DistributedEnvironment.fromEnvironment();
    if (!env.distributed()) {
      throw io.cachedit.error.ConfigException.forField("WORLD_SIZE", "bench-tp-cfg compares processes: run it under "
          + "cachedit launch --nproc 2 (or 3)");
    }
    int w = env.worldSize();
    String json = """
        {"_class_name": "FluxTransformer2DModel", "patch_size": 1, "in_channels": 64, "num_layers": %d,
         "num_single_layers": %d, "attention_head_dim": 64, "num_attention_heads": %d, "joint_attention_dim": 256,
         "pooled_projection_dim": 64, "guidance_embeds": false, "axes_dims_rope": [16, 24, 24]}
        """.formatted(doubleBlocks, singleBlocks, heads);
    // the saved model is named by its shape, so a folder from an earlier run is only reused for the same model
    String shape = "cachedit-bench-tp-" + doubleBlocks + "x" + singleBlocks + "x" + heads + "-" + env.masterPort();
    Path dir = work != null ? work : Path.of(System.getProperty("java.io.tmpdir"), shape);
    Path folder = dir.resolve("transformer");
    StringBuilder md = new StringBuilder();
    try (ProcessGroups groups = ProcessGroups.create(env, ProcessGroups.timeoutFromEnvironment());
         PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
      CommGroup world = groups.world();
      if (groups.rank() == 0 && !Files.exists(folder.resolve("config.json"))) {
        try (DiffusersTransformer m = ModelRegistry.defaults().randomTransformer(json, 11, ScalarType.Float)) {
          ModelRegistry.save(m, folder);
        }
      }
      world.barrier();
      ParallelismConfig tpConfig = ParallelismConfig.parse("tp=" + w);
      long wholeBytes;
      long shardBytes;
      Tensor[] in = ParallelBenchCommand.inputs(size / 16 * (size / 16), 32, ScalarType.Float);
      Tensor reference;
      double wholeSeconds;
      try (DiffusersTransformer whole = ModelRegistry.defaults().loadTransformer(folder, ScalarType.Float)) {
        wholeBytes = bytes(whole);
        reference = ParallelBenchCommand.forward((FluxTransformer2DModel) whole, in);
        long t0 = System.nanoTime();
        ParallelBenchCommand.forward((FluxTransformer2DModel) whole, in);
        wholeSeconds = (System.nanoTime() - t0) / 1e9;
      }
      TensorParallelGroup.Binder tp = TensorParallelGroup.join(groups, tpConfig);
      double tpSeconds;
      long tpBytes;
      double tpDiff;
      try (DiffusersTransformer shard = ModelRegistry.defaults().loadTransformer(folder, ScalarType.Float, tp)) {
        shardBytes = bytes(shard);
        ParallelBenchCommand.forward((FluxTransformer2DModel) shard, in);
        world.barrier();
        long sent = tp.group().bytesSent();
        long t0 = System.nanoTime();
        Tensor o = ParallelBenchCommand.forward((FluxTransformer2DModel) shard, in);
        tpSeconds = (System.nanoTime() - t0) / 1e9;
        tpBytes = tp.group().bytesSent() - sent;
        tpDiff = reference.sub(o).abs().max().item_double();
      }
      md.append(String.format(Locale.ROOT, "# Tensor and CFG parallelism on %d processes%n%n", w));
      md.append(String.format(Locale.ROOT, "Command: `./cachedit launch --nproc %d --threads 1 -- bench-tp-cfg --heads %d "
              + "--double %d --single %d --size %d --steps %d --reps %d`. Machine: %d cores. FLUX-shaped transformer "
              + "(random weights, fp32, saved as a diffusers folder and loaded from it): %d double + %d single blocks, "
              + "%d heads x 64, %d image + 32 text tokens.%n%n", w, heads, doubleBlocks, singleBlocks, size, steps,
          reps, Runtime.getRuntime().availableProcessors(), doubleBlocks, singleBlocks, heads, (size / 16) * (size / 16)));
      md.append("## Tensor parallelism, tp=" + w + "\n\n| measure | one process | rank 0 of tp=" + w + " | ratio |\n"
          + "|---|---|---|---|\n");
      md.append(String.format(Locale.ROOT, "| weight bytes (parameters' allocations) | %,d | %,d | %.3fx |%n",
          wholeBytes, shardBytes, (double) shardBytes / wholeBytes));
      md.append(String.format(Locale.ROOT, "| forward s | %.3f | %.3f | %.2fx |%n", wholeSeconds, tpSeconds,
          wholeSeconds / tpSeconds));
      md.append(String.format(Locale.ROOT, "| bytes sent per forward (one step) | 0 | %,d | |%n", tpBytes));
      md.append(String.format(Locale.ROOT, "| max abs diff vs one process | | %.2e | |%n%n", tpDiff));
      md.append("Weight bytes are the parameters' own allocations: a shard is copied out of the memory-mapped file "
          + "at load, so a rank never holds the other ranks' parts (whole tensors are zero-copy views of the "
          + "mapping). Bytes sent: the all-reduces of the row-split layers and the all-gathers of the adaLN "
          + "modulations, counted by the group.\n\n");
      if (w == 2) {
        md.append(cfg(folder, groups));
      }
      world.barrier();  // every rank has loaded the model for the last time
      if (work == null && groups.rank() == 0) {
        deleteTree(dir);
      }
    }
    if (env.rank() != 0) {
      return 0;
    }
    Path report = out != null ? out : Path.of("docs", "bench", "tp-cfg-" + w + ".md");
    System.out.print(md);
    Files.createDirectories(report.toAbsolutePath().getParent());
    Files.writeString(report, md.toString());
    System.out.println("wrote " + report);
    return 0;
  }

  private String cfg(Path folder, ProcessGroups groups) {
    CommGroup world = groups.world();
    List<Double> single = new ArrayList<>();
    List<Double> parallel = new ArrayList<>();
    double diff;
    long gatherBytes;
    try (PointerScope s = new PointerScope();
         FluxTransformer2DModel m = (FluxTransformer2DModel) ModelRegistry.defaults().loadTransformer(folder,
             ScalarType.Float)) {
      FluxPipeline pipe = new FluxPipeline(m, FlowMatchEulerScheduler.flux());
      torch.manual_seed(3);
      FluxPipeline.Request r = new FluxPipeline.Request(torch.randn(1, 32, 256), torch.randn(1, 64),
          torch.randn(1, 32, 256), torch.randn(1, 64), size, size, steps, 3.5, 4.0, false, 1, 9);
      Tensor ref = null;
      Tensor got = null;
      long bytes = 0;
      pipe.generate(r, null);  // warm-up
      for (int rep = 0; rep < reps; rep++) {
        if (groups.rank() == 0) {
          long t0 = System.nanoTime();
          ref = pipe.generate(r, null);
          single.add((System.nanoTime() - t0) / 1e9);
        }
        world.barrier();
        try (Parallelism p = Parallelism.apply(pipe, ParallelismConfig.parse("cfg=2"), groups)) {
          world.barrier();
          long sent = p.cfgGroup().bytesSent();
          long t0 = System.nanoTime();
          got = pipe.generate(r, null);
          parallel.add((System.nanoTime() - t0) / 1e9);
          bytes = p.cfgGroup().bytesSent() - sent;
        }
      }
      diff = ref == null ? Double.NaN : ref.sub(got).abs().max().item_double();
      gatherBytes = bytes;
    }
    double a = ParallelBenchCommand.median(single);
    double b = ParallelBenchCommand.median(parallel);
    return String.format(Locale.ROOT, "## CFG parallelism, cfg=2%n%nA true-CFG generation (two transformer calls per "
            + "step, %d steps, one %dx%d image): one single-thread process against two single-thread ranks, each "
            + "computing one branch; medians of %d interleaved repetitions.%n%n| run | generation s (median) | all runs "
            + "s | speedup | bytes sent per rank per generation | max abs diff |%n|---|---|---|---|---|---|%n"
            + "| 1 process x 1 thread | %.3f | %s | 1.00x | | |%n| cfg=2, 2 ranks x 1 thread | %.3f | %s | %.2fx | %,d "
            + "| %.2e |%n", steps, size, size, reps, a, fmt(single), b, fmt(parallel), a / b, gatherBytes, diff);
  }

  private static String fmt(List<Double> v) {
    return v.stream().map(x -> String.format(Locale.ROOT, "%.3f", x)).toList().toString();
  }

  private static void deleteTree(Path dir) throws IOException {
    try (java.util.stream.Stream<Path> paths = Files.walk(dir)) {
      for (Path p : paths.sorted(java.util.Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(p);
      }
    }
  }

  private static long bytes(DiffusersTransformer m) {
    long n = 0;
    for (Tensor t : m.parameters().values()) {
      n += t.nbytes();
    }
    return n;
  }

}
