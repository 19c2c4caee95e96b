package io.cachedit.bench;

import io.cachedit.CacheDit;
import io.cachedit.CacheHandle;
import io.cachedit.adapter.BlockAdapter;
import io.cachedit.cache.CacheOptions;
import io.cachedit.cache.CacheStats;
import io.cachedit.cache.DBCacheConfig;
import io.cachedit.kernels.NativeRuntime;
import io.cachedit.kernels.NativeScope;
import io.cachedit.models.common.Block;
import io.cachedit.models.common.BlockIO;
import io.cachedit.models.common.BlockList;
import io.cachedit.models.common.ForwardPattern;
import io.cachedit.models.common.StepContext;
import io.cachedit.models.common.Transformer;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.AuxCounters;
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
 * End-to-end cost of the cache engine on a DiT-shaped stack: 12 pre-norm transformer blocks
 * (hidden 512, 8 heads, MLP 2048, GELU), 1024 tokens, fp32, CPU, 50 denoising steps of a
 * flow-matching-like loop with a per-step time embedding.
 *
 * <p>Reports (1) engine bookkeeping per step: wall time of the block-list forward minus the time
 * spent inside the blocks (probe residual, diff kernel, buffer updates, cache application), as a
 * fraction of an uncached step; (2) measured speedup (uncached / cached wall time, same run) against
 * the ideal speedup computed from the blocks actually executed.
 *
 * <p>As a JMH benchmark ({@code java -jar bench/target/benchmarks.jar EngineOverheadBench}): one
 * operation is one whole generation (single-shot: every measured iteration is one generation, so
 * its time and its counters belong together); {@code cache} is {@code none} or DBCache F1B0. The
 * auxiliary counters {@code blocksRun} and {@code engineMsPerStep} are the same quantities as the
 * report's columns, per generation.
 *
 * <p>As a report ({@code java -cp bench/target/benchmarks.jar io.cachedit.bench.EngineOverheadBench
 * [steps] [rounds]}): the table of bench/README.md, uncached and cached rounds interleaved, with the
 * derived columns (ideal speedup, measured/ideal, engine share) JMH does not compute.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 2)
@Measurement(iterations = 5)
@Fork(value = 1, jvmArgsAppend = {"-Xmx4g"})
public class EngineOverheadBench {
  /** {@code none} (uncached) or {@code F1B0} (DBCache, 1 probe block, 4 warm-up steps, threshold 0.12). */
  @Param({"none", "F1B0"})
  public String cache;

  /** Denoising steps per generation (the report's default; -p steps=20 for a shorter run). */
  @Param({"50"})
  public int steps;

  private Model model;
  private long generationId;

  /** Per-generation counters (JMH prints their mean and error over the measured generations). */
  @State(Scope.Thread)
  @AuxCounters(AuxCounters.Type.EVENTS)
  public static class Counters {
    /** Blocks executed in the generation (steps x 12 uncached). */
    public long blocksRun;
    /** Engine bookkeeping per step: list forward time minus time inside blocks, in ms. */
    public double engineMsPerStep;

    @Setup(Level.Iteration)
    public void reset() {
      blocksRun = 0;
      engineMsPerStep = 0;
    }
  }

  static DBCacheConfig f1b0() {
    return DBCacheConfig.builder().fnComputeBlocks(1).bnComputeBlocks(0).maxWarmupSteps(4)
        .residualDiffThreshold(0.12).build();
  }

  static BlockAdapter adapter(Model model) {
    return BlockAdapter.builder().transformer(model).blocks(model, "transformer_blocks", ForwardPattern.PATTERN_3)
        .build();
  }

  @Setup(Level.Trial)
  public void setUp() {
    NativeRuntime.initialize();
    if (!cache.equals("none") && !cache.equals("F1B0")) {
      throw new IllegalArgumentException("cache must be none or F1B0, got " + cache);
    }
    model = new Model(7);
    generate(model, 2, generationId++);  // class loading and first-call costs are not per-step costs
  }

  @Benchmark
  public long generation(Counters counters) {
    long[] r;
    if (cache.equals("none")) {
      r = generate(model, steps, generationId++);
      counters.blocksRun += (long) steps * BLOCKS;
    } else {
      try (CacheHandle handle = CacheDit.enableCache(adapter(model), CacheOptions.of(f1b0()))) {
        r = generate(model, steps, generationId++);
        counters.blocksRun += handle.stats().get(0).blocksComputed();
      }
    }
    counters.engineMsPerStep += (r[1] - r[2]) / 1e6 / steps;
    return r[0];
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    model.close();
  }
  static final int HIDDEN = 512;
  static final int HEADS = 8;
  static final int TOKENS = 1024;
  static final int MLP = 2048;
  static final int BLOCKS = 12;

  /** Wall time spent inside blocks, accumulated by the timed blocks. */
  static final class BlockClock {
    long nanos;
  }

  static final class Model implements Transformer, AutoCloseable {
    final BlockList<Tensor> blocks;
    final NativeScope weights = NativeScope.owner("bench model weights");
    final BlockClock clock = new BlockClock();

    Model(long seed) {
      torch.manual_seed(seed);
      List<Block<Tensor>> list = new ArrayList<>();
      for (int i = 0; i < BLOCKS; i++) {
        Tensor wqkv = keep(torch.randn(3 * HIDDEN, HIDDEN).mul(new Scalar(1.0 / Math.sqrt(HIDDEN))));
        Tensor wo = keep(torch.randn(HIDDEN, HIDDEN).mul(new Scalar(0.5 / Math.sqrt(HIDDEN))));
        Tensor w1 = keep(torch.randn(MLP, HIDDEN).mul(new Scalar(1.0 / Math.sqrt(HIDDEN))));
        Tensor w2 = keep(torch.randn(HIDDEN, MLP).mul(new Scalar(0.5 / Math.sqrt(MLP))));
        list.add((hidden, encoder, temb) -> {
          long t0 = System.nanoTime();
          Tensor x = hidden.add(temb);
          Tensor n1 = torch.layer_norm(x, HIDDEN);
          Tensor qkv = torch.linear(n1, wqkv).view(1, TOKENS, 3, HEADS, HIDDEN / HEADS).permute(2, 0, 3, 1, 4);
          Tensor attn = torch.scaled_dot_product_attention(qkv.select(0, 0), qkv.select(0, 1), qkv.select(0, 2));
          Tensor h = hidden.add(torch.linear(attn.transpose(1, 2).reshape(1, TOKENS, HIDDEN), wo));
          Tensor n2 = torch.layer_norm(h, HIDDEN);
          Tensor out = h.add(torch.linear(torch.gelu(torch.linear(n2, w1)), w2));
          clock.nanos += System.nanoTime() - t0;
          return BlockIO.of(out);
        });
      }
      blocks = new BlockList<>("transformer_blocks", ForwardPattern.PATTERN_3, list);
    }

    private Tensor keep(Tensor t) {
      return weights.keep(t);
    }

    @Override
    public List<BlockList<?>> blockLists() {
      return List.of(blocks);
    }

    @Override
    public void close() {
      weights.close();
    }
  }

  /** One generation; returns {total ns, ns inside the list forward, ns inside blocks}. */
  static long[] generate(Model model, int steps, long generation) {
    long listNanos = 0;
    model.clock.nanos = 0;
    long start = System.nanoTime();
    torch.manual_seed(42);
    NativeScope generationScope = NativeScope.owner("bench generation");
    Tensor hidden = generationScope.keep(torch.randn(1, TOKENS, HIDDEN));
    for (int t = 0; t < steps; t++) {
      try (PointerScope scope = new PointerScope()) {
        double time = 1.0 - (double) t / steps;
        Tensor temb = torch.sin(torch.arange(new Scalar(HIDDEN)).mul(new Scalar(0.01 * (1 + 20 * time))))
            .mul(new Scalar(0.1));
        long l0 = System.nanoTime();
        BlockIO out = model.blocks.forward(hidden, null, temb, new StepContext(generation, t, steps,
            StepContext.Branch.SINGLE));
        listNanos += System.nanoTime() - l0;
        hidden = generationScope.replace(hidden, hidden.sub(out.hidden().sub(hidden).mul(new Scalar(1.0 / steps))));
      }
    }
    generationScope.close();
    return new long[] {System.nanoTime() - start, listNanos, model.clock.nanos};
  }

  public static void main(String[] args) {
    int steps = args.length > 0 ? Integer.parseInt(args[0]) : 50;
    int rounds = args.length > 1 ? Integer.parseInt(args[1]) : 2;
    NativeRuntime.initialize();  // before libtorch loads: OMP_WAIT_POLICY=PASSIVE (see NativeRuntime)
    try (Model model = new Model(7)) {
      DBCacheConfig config = f1b0();
      // warm-up of both paths (class loading and JIT of the engine's code are not per-step costs)
      generate(model, 2, 0);
      try (CacheHandle warm = CacheDit.enableCache(BlockAdapter.builder().transformer(model)
          .blocks(model, "transformer_blocks", ForwardPattern.PATTERN_3).build(), CacheOptions.of(
              config.toBuilder().maxWarmupSteps(1).residualDiffThreshold(0.5).build()))) {
        generate(model, 4, 1);
      }
      System.out.printf(Locale.ROOT, "12 blocks, hidden %d, %d tokens, fp32, CPU (%d torch threads, OMP_WAIT_POLICY=%s),"
          + " %d steps%n%n", HIDDEN, TOKENS, torch.get_num_threads(), NativeRuntime.ompWaitPolicy(), steps);
      System.out.println("| round | config | wall s | s/step | blocks run | ideal speedup | measured speedup "
          + "| measured/ideal | engine ms/step | engine % of uncached step |");
      System.out.println("|---|---|---|---|---|---|---|---|---|---|");
      for (int r = 1; r <= rounds; r++) {
        long[] plain = generate(model, steps, 10L * r);
        double plainStep = plain[0] / 1e9 / steps;
        System.out.printf(Locale.ROOT, "| %d | uncached | %.2f | %.3f | %d | 1.00 | 1.00 | | %.2f | %.2f%% |%n", r,
            plain[0] / 1e9, plainStep, steps * BLOCKS, (plain[1] - plain[2]) / 1e6 / steps,
            100.0 * (plain[1] - plain[2]) / 1e9 / steps / plainStep);
        try (CacheHandle handle = CacheDit.enableCache(BlockAdapter.builder().transformer(model)
            .blocks(model, "transformer_blocks", ForwardPattern.PATTERN_3).build(), CacheOptions.of(config))) {
          long[] cached = generate(model, steps, 10L * r + 1);
          CacheStats s = handle.stats().get(0);
          double measured = (double) plain[0] / cached[0];
          double engineMs = (cached[1] - cached[2]) / 1e6 / steps;
          System.out.printf(Locale.ROOT, "| %d | %s (%d cached) | %.2f | %.3f | %d | %.2f | %.2f | %.3f | %.2f | %.2f%% |%n",
              r, config.strify(), s.cachedSteps().size(), cached[0] / 1e9, cached[0] / 1e9 / steps, s.blocksComputed(),
              s.idealSpeedup(), measured, measured / s.idealSpeedup(), engineMs, 100.0 * engineMs / 1e3 / plainStep);
        }
      }
    }
  }
}
