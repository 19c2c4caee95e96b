package io.cachedit.parallel;

import io.cachedit.error.ConfigException;
import io.cachedit.models.common.CfgParallel;
import io.cachedit.models.common.DiffusersTransformer;
import io.cachedit.models.common.DiffusionPipeline;
import io.cachedit.models.common.Transformer;
import java.util.List;

/**
 * Everything a {@link ParallelismConfig} installs on a pipeline (or bare transformers) once their
 * weights are loaded (docs/parallelism.md): CFG branches spread over ranks, context parallelism on
 * the transformers, and a check that tensor-parallel models were loaded for this config's group
 * (tensor parallelism itself happens at load time, see {@link TensorParallelGroup}). Every rank
 * applies the same config; {@link #close()} returns the pipeline to one rank.
 */
public final class Parallelism implements AutoCloseable {
  private final ParallelismConfig config;
  private final DiffusionPipeline pipeline;
  private final CfgParallel previousCfg;
  private final CfgParallelGroup cfg;
  private final ContextParallel context;
  private boolean closed;

  private Parallelism(ParallelismConfig config, DiffusionPipeline pipeline, CfgParallel previousCfg,
      CfgParallelGroup cfg, ContextParallel context) {
    this.config = config;
    this.pipeline = pipeline;
    this.previousCfg = previousCfg;
    this.cfg = cfg;
    this.context = context;
  }

  /**
   * Checks, without communication, that {@code config} fits {@code worldSize} ranks and these
   * models: sizes, CFG parallelism only for a pipeline with CFG calls, the models' context-parallel
   * plans when the sequence is split and their load-time split when the weights are.
   */
  public static void validate(ParallelismConfig config, int worldSize, DiffusionPipeline pipeline,
      List<? extends Transformer> models) {
    config.validateFor(worldSize);
    if (config.cfg() > 1 && (pipeline == null || !pipeline.supportsCfgParallel())) {
      throw new ConfigException("cfg_size", config.cfg(), pipeline == null
          ? "CFG parallelism spreads a pipeline's cond and uncond calls over ranks: run a pipeline (generate), not "
              + "a single transformer forward"
          : pipeline.getClass().getSimpleName() + " does not spread its classifier-free-guidance calls over ranks "
              + "(pipelines that do: FluxPipeline, QwenImagePipeline, WanPipeline, SD3Pipeline)");
    }
    if (config.contextParallel()) {
      ContextParallel.validate(config, worldSize, models);
    } else {
      requireLoadedFor(config, models);
    }
  }

  /**
   * Tensor parallelism happens at load time: each model must have been loaded with its weights split
   * over {@code config}'s {@code tp_size} (1: whole), else a {@link ConfigException} for {@code tp_size}.
   */
  public static void requireLoadedFor(ParallelismConfig config, List<? extends Transformer> models) {
    for (Transformer t : models) {
      int loaded = t instanceof DiffusersTransformer d ? d.tensorParallel().size() : 1;
      if (loaded != config.tp()) {
        String name = t instanceof DiffusersTransformer d ? d.className() : t.getClass().getSimpleName();
        throw new ConfigException("tp_size", config.tp(), name + " was loaded with its weights split over " + loaded
            + " rank(s): load it for the tensor-parallel group of this config "
            + "(ModelRegistry.loadTransformer(path, dtype, TensorParallelGroup.join(groups, config)))");
      }
    }
  }

  /** Installs {@code config} on a pipeline's transformers (and its CFG calls). */
  public static Parallelism apply(DiffusionPipeline pipeline, ParallelismConfig config, ProcessGroups groups) {
    return apply(pipeline, pipeline.transformers(), config, groups);
  }

  /** Installs {@code config} on bare transformers (no CFG parallelism). */
  public static Parallelism apply(List<? extends Transformer> models, ParallelismConfig config, ProcessGroups groups) {
    return apply(null, models, config, groups);
  }

  private static Parallelism apply(DiffusionPipeline pipeline, List<? extends Transformer> models,
      ParallelismConfig config, ProcessGroups groups) {
    validate(config, groups.worldSize(), pipeline, models);
    ParallelMesh mesh = new ParallelMesh(config, groups.rank());
    CfgParallelGroup cfg = null;
    CfgParallel previous = null;
    if (config.cfg() > 1) {
      cfg = new CfgParallelGroup(ParallelMesh.group(groups, mesh, "cfg", mesh.cfgRanks()));
    }
    ContextParallel context = config.contextParallel() ? ContextParallel.apply(models, config, groups) : null;
    if (cfg != null) {
      previous = pipeline.cfgParallel();
      pipeline.setCfgParallel(cfg);
    }
    return new Parallelism(config, pipeline, previous, cfg, context);
  }

  public ParallelismConfig config() {
    return config;
  }

  /** The context parallelism installed, or null when the sequence is not split. */
  public ContextParallel contextParallel() {
    return context;
  }

  /** The group the CFG branches are spread over, or null. */
  public CommGroup cfgGroup() {
    return cfg == null ? null : cfg.group();
  }

  /** Returns the pipeline to one rank (its models keep their load-time weight split). Idempotent. */
  @Override
  public synchronized void close() {
    if (closed) {
      return;
    }
    closed = true;
    if (context != null) {
      context.close();
    }
    if (cfg != null) {
      pipeline.setCfgParallel(previousCfg);
    }
  }

  @Override
  public String toString() {
    return "Parallelism[" + config.strify() + "]";
  }
}
