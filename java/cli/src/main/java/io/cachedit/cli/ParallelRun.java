package io.cachedit.cli;

import io.cachedit.cache.CacheOptions;
import io.cachedit.error.ConfigException;
import io.cachedit.models.common.DiffusionPipeline;
import io.cachedit.models.common.Transformer;
import io.cachedit.models.common.TensorParallel;
import io.cachedit.parallel.Parallelism;
import io.cachedit.parallel.TensorParallelGroup;
import io.cachedit.pipeline.ModelRegistry;
import java.nio.file.Path;
import io.cachedit.parallel.DistributedEnvironment;
import io.cachedit.parallel.ParallelismConfig;
import io.cachedit.parallel.ProcessGroups;
import java.io.OutputStream;
import java.io.PrintStream;
import java.util.List;
import java.util.function.Supplier;
import org.bytedeco.pytorch.global.torch;

/**
 * A command's parallelism ({@code --parallel <modes>}, or a config file's
 * {@code parallelism_config}): validated against {@code WORLD_SIZE} (and the model's head counts for
 * tensor parallelism) before the group is joined; the models are then loaded for its tensor-parallel
 * group and the rest (CFG branches, context parallelism) installed on them. Only rank 0 prints to
 * standard output and writes files; the other ranks compute alongside it. {@link #NONE} when the command runs on one process.
 */
final class ParallelRun implements AutoCloseable {
  static final ParallelRun NONE = new ParallelRun(null, null, null);

  private final ParallelismConfig config;
  private final ProcessGroups groups;
  private final TensorParallelGroup.Binder tensorParallel;
  private DiffusionPipeline pipeline;
  private List<? extends Transformer> models;
  private Parallelism parallelism;
  private final PrintStream stdout;

  private ParallelRun(ParallelismConfig config, ProcessGroups groups, TensorParallelGroup.Binder tensorParallel) {
    this.config = config;
    this.groups = groups;
    this.tensorParallel = tensorParallel;
    this.stdout = System.out;
  }

  /**
   * The parallelism {@code spec} (the {@code --parallel} flag, may be null) or the file's options ask
   * for, with the options returned without it. Both at once is an error.
   */
  static ParallelismConfig config(String spec, CacheOptions options) {
    ParallelismConfig fromFile = options == null ? null : options.parallelismConfig();
    if (spec != null && fromFile != null) {
      throw ConfigException.forField("--parallel", "--parallel " + spec + " and the cache config file's "
          + "parallelism_config both set the parallelism; give one");
    }
    return spec != null ? ParallelismConfig.parse(spec) : fromFile;
  }

  /**
   * Validates {@code config} against {@code WORLD_SIZE} and, with {@code tp_size}, the model's head
   * counts at {@code transformer} (read from its config.json), then joins the group. Load the models
   * with {@link #weights()} and {@link #install} them. A null config: one process.
   */
  static ParallelRun join(ParallelismConfig config, Path transformer) {
    if (config == null) {
      return NONE;
    }
    DistributedEnvironment env = DistributedEnvironment.fromEnvironment();
    config.validateFor(env.worldSize());  // before any rank waits for another
    if (config.tp() > 1 && transformer != null) {
      ModelRegistry.defaults().checkTensorParallel(transformer, config.tp());
    }
    ProcessGroups groups = ProcessGroups.create(env, ProcessGroups.timeoutFromEnvironment());
    try {
      TensorParallelGroup.Binder tp = config.tp() > 1 ? TensorParallelGroup.join(groups, config) : null;
      ParallelRun run = new ParallelRun(config, groups, tp);
      if (env.rank() != 0) {
        System.setOut(new PrintStream(OutputStream.nullOutputStream()));  // rank 0 reports
      }
      return run;
    } catch (RuntimeException e) {
      groups.close();
      throw e;
    }
  }

  /** The tensor-parallel group to load the models for, or null (whole weights). */
  TensorParallel.Factory weights() {
    return tensorParallel;
  }

  /** Installs the parallelism on a loaded pipeline (CFG branches, context parallelism). */
  void install(DiffusionPipeline pipeline) {
    install(pipeline, pipeline.transformers());
  }

  /** Installs the parallelism on loaded transformers. */
  void install(List<? extends Transformer> models) {
    install(null, models);
  }

  private void install(DiffusionPipeline pipeline, List<? extends Transformer> models) {
    if (!active()) {
      return;
    }
    this.pipeline = pipeline;
    this.models = models;
    this.parallelism = apply();
  }

  private Parallelism apply() {
    return pipeline != null ? Parallelism.apply(pipeline, config, groups) : Parallelism.apply(models, config, groups);
  }

  boolean active() {
    return groups != null;
  }

  /** Rank 0, or the only process: it prints and writes files. */
  boolean root() {
    return groups == null || groups.rank() == 0;
  }

  int worldSize() {
    return groups == null ? 1 : groups.worldSize();
  }

  ParallelismConfig config() {
    return config;
  }

  /**
   * Runs {@code work} on rank 0 alone, as one process using every core of the machine (the others
   * wait at a barrier), and returns its result; other ranks get null. The models run on one rank
   * meanwhile, and context-parallel again afterwards.
   */
  <T> T singleProcessOnRoot(Supplier<T> work) {
    if (!active()) {
      return work.get();
    }
    if (config.tp() > 1) {
      throw ConfigException.forField("--parallel", "--parallel " + config.strify() + ": each rank holds a shard of the "
          + "weights, so no rank can run the single-process comparison; compare with a separate run without tp");
    }
    T result = null;
    parallelism.close();
    try {
      if (root()) {
        int threads = torch.get_num_threads();
        torch.set_num_threads(Runtime.getRuntime().availableProcessors());
        try {
          result = work.get();
        } finally {
          torch.set_num_threads(threads);
        }
      }
      groups.world().barrier();
    } finally {
      parallelism = apply();
    }
    return result;
  }

  /** Ends the parallelism: the models run on one rank again, the group is left. */
  @Override
  public void close() {
    if (!active()) {
      return;
    }
    if (parallelism != null) {
      parallelism.close();
    }
    groups.close();
    System.setOut(stdout);
  }

  static CacheOptions withoutParallelism(CacheOptions options) {
    return options == null || options.parallelismConfig() == null ? options : options.withParallelism(null);
  }
}
