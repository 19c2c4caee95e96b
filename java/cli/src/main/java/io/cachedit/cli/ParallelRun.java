package io.cachedit.cli;

import io.cachedit.cache.CacheOptions;
import io.cachedit.error.ConfigException;
import io.cachedit.models.common.DiffusionPipeline;
import io.cachedit.models.common.Transformer;
import io.cachedit.parallel.ContextParallel;
import io.cachedit.parallel.DistributedEnvironment;
import io.cachedit.parallel.ParallelismConfig;
import io.cachedit.parallel.ProcessGroups;
import java.io.OutputStream;
import java.io.PrintStream;
import java.util.List;
import java.util.function.Supplier;
import org.bytedeco.pytorch.global.torch;

/**
 * A command's context parallelism ({@code --parallel <spec>}, or a config file's
 * {@code parallelism_config}): validated against {@code WORLD_SIZE} and the models before the group
 * is joined, then installed on the models. Only rank 0 prints to standard output and writes files;
 * the other ranks compute alongside it. {@link #NONE} when the command runs on one process.
 */
final class ParallelRun implements AutoCloseable {
  static final ParallelRun NONE = new ParallelRun(null, null, null, null);

  private final ParallelismConfig config;
  private final ProcessGroups groups;
  private final List<? extends Transformer> models;
  private ContextParallel contextParallel;
  private final PrintStream stdout;

  private ParallelRun(ParallelismConfig config, ProcessGroups groups, List<? extends Transformer> models,
      ContextParallel contextParallel) {
    this.config = config;
    this.groups = groups;
    this.models = models;
    this.contextParallel = contextParallel;
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

  /** Joins the group and installs {@code config} on the pipeline's transformers (null config: one process). */
  static ParallelRun start(ParallelismConfig config, DiffusionPipeline pipeline) {
    return start(config, pipeline.transformers());
  }

  static ParallelRun start(ParallelismConfig config, List<? extends Transformer> models) {
    if (config == null) {
      return NONE;
    }
    DistributedEnvironment env = DistributedEnvironment.fromEnvironment();
    ContextParallel.validate(config, env.worldSize(), models);  // before any rank waits for another
    ProcessGroups groups = ProcessGroups.create(env, ProcessGroups.timeoutFromEnvironment());
    try {
      ContextParallel cp = ContextParallel.apply(models, config, groups);
      ParallelRun run = new ParallelRun(config, groups, models, cp);
      if (env.rank() != 0) {
        System.setOut(new PrintStream(OutputStream.nullOutputStream()));  // rank 0 reports
      }
      return run;
    } catch (RuntimeException e) {
      groups.close();
      throw e;
    }
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
    T result = null;
    contextParallel.close();
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
      contextParallel = ContextParallel.apply(models, config, groups);
    }
    return result;
  }

  /** Ends the parallelism: the models run on one rank again, the group is left. */
  @Override
  public void close() {
    if (!active()) {
      return;
    }
    contextParallel.close();
    groups.close();
    System.setOut(stdout);
  }

  static CacheOptions withoutParallelism(CacheOptions options) {
    return options == null || options.parallelismConfig() == null ? options : options.withParallelism(null);
  }
}
