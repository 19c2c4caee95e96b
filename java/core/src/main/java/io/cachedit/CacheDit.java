package io.cachedit;

import io.cachedit.adapter.AdapterRegistry;
import io.cachedit.adapter.BlockAdapter;
import io.cachedit.adapter.PatchFunctor;
import io.cachedit.cache.BasicCacheConfig;
import io.cachedit.cache.CacheOptions;
import io.cachedit.cache.DBCacheConfig;
import io.cachedit.cache.CacheStats;
import io.cachedit.cache.engine.CachedBlockRunner;
import io.cachedit.cache.CalibratorConfig;
import io.cachedit.cache.EngineSettings;
import io.cachedit.cache.ParamsModifier;
import io.cachedit.cache.StepMask;
import io.cachedit.error.ConfigException;
import io.cachedit.models.common.BlockList;
import io.cachedit.models.common.BlockRunner;
import io.cachedit.models.common.DiffusersTransformer;
import io.cachedit.models.common.DiffusersModel;
import io.cachedit.models.common.DiffusionPipeline;
import io.cachedit.models.common.SequenceParallel;
import io.cachedit.parallel.DistributedEnvironment;
import io.cachedit.parallel.ParallelismConfig;
import io.cachedit.quant.QuantizeConfig;
import io.cachedit.quant.QuantizeReport;
import io.cachedit.quant.Quantizer;
import io.cachedit.parallel.Parallelism;
import io.cachedit.parallel.ProcessGroups;
import io.cachedit.models.common.Transformer;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The one-line entry to cachedit's caching, mirroring cache-dit's API (docs/algorithms.md section 8):
 *
 * <pre>{@code
 * try (CacheHandle cache = CacheDit.enableCache(pipeline)) {      // DBCache F8B0, threshold 0.08
 *   pipeline.generate(...);
 *   CacheDit.summary(pipeline);
 * }
 * }</pre>
 *
 * Targets are a {@link DiffusionPipeline}, a {@link Transformer} (transformer-only mode) or a
 * {@link BlockAdapter}; pipelines and transformers are looked up in {@link AdapterRegistry#defaults()}
 * (for another registry, pass {@code registry.adapterFor(target)}). All state lives on the target
 * instance's block lists and in the returned handle: nothing is static, and two instances of one model
 * class are independent. {@link EngineSettings} say how the engine runs (kernel threads, the diff
 * reducer of a parallel group, default buffer precision, a decision listener).
 */
public final class CacheDit {
  private static final Logger LOG = LoggerFactory.getLogger(CacheDit.class);

  private CacheDit() {}

  /**
   * Enables DBCache with the reference defaults (F8B0, 8 warm-up steps, threshold 0.08, unlimited).
   * On a block list shorter than {@value #DEFAULT_FN_MIN_BLOCKS} blocks the default probe is shortened to
   * a quarter of the list (at least one block) and the log says so; an explicit config, the defaults
   * included ({@code CacheOptions.defaults()}), is checked strictly instead (docs/caching.md).
   */
  public static CacheHandle enableCache(DiffusionPipeline pipeline) {
    return enableCache(pipeline, null);
  }

  /** Enables caching on a registered pipeline. */
  public static CacheHandle enableCache(DiffusionPipeline pipeline, CacheOptions options) {
    return enableCache(pipeline, options, EngineSettings.defaults());
  }

  public static CacheHandle enableCache(DiffusionPipeline pipeline, CacheOptions options, EngineSettings settings) {
    if (pipeline != null && pipeline.generating()) {
      throw new IllegalStateException(pipeline.getClass().getSimpleName() + " is generating on another thread;"
          + " enable caching between its generations (a generation's cache settings cannot change mid-way)");
    }
    return enableCache(AdapterRegistry.defaults().adapterFor(requireTarget(pipeline)), options, settings);
  }

  /**
   * Enables DBCache with the reference defaults on a registered transformer (transformer-only mode),
   * adapting the probe to short block lists as {@link #enableCache(DiffusionPipeline)} does.
   */
  public static CacheHandle enableCache(Transformer transformer) {
    return enableCache(transformer, null);
  }

  public static CacheHandle enableCache(Transformer transformer, CacheOptions options) {
    return enableCache(transformer, options, EngineSettings.defaults());
  }

  public static CacheHandle enableCache(Transformer transformer, CacheOptions options, EngineSettings settings) {
    return enableCache(AdapterRegistry.defaults().adapterFor(requireTarget(transformer)), options, settings);
  }

  /**
   * Enables DBCache with the reference defaults on the block lists an adapter names, adapting the
   * probe to short block lists as {@link #enableCache(DiffusionPipeline)} does.
   */
  public static CacheHandle enableCache(BlockAdapter adapter) {
    return enableCache(adapter, null);
  }

  public static CacheHandle enableCache(BlockAdapter adapter, CacheOptions options) {
    return enableCache(adapter, options, EngineSettings.defaults());
  }

  /**
   * Installs the cache engine on the adapter's block lists. Nothing is changed if it fails: caching
   * already enabled on one of the adapter's transformers, a config that does not fit a list, or
   * {@link ParamsModifier}s that do not match the cached lists are errors raised before anything is
   * installed or patched. {@code options == null} means the reference defaults with the probe adapted
   * to short lists ({@link #defaultConfigFor}); any options given are used as they are.
   */
  public static CacheHandle enableCache(BlockAdapter adapter, CacheOptions options, EngineSettings settings) {
    requireTarget(adapter);
    boolean adaptDefault = options == null;
    CacheOptions opts = options == null ? CacheOptions.defaults() : options;
    EngineSettings engine = settings == null ? EngineSettings.defaults() : settings;
    for (Transformer t : adapter.transformers()) {
      for (BlockList<?> list : t.blockLists()) {
        if (list.runner() != BlockRunner.SEQUENTIAL) {
          throw new IllegalStateException("caching is already enabled on block list " + list.name() + " of "
              + t.getClass().getSimpleName() + " (runner " + list.runner() + "); close its CacheHandle or call "
              + "CacheDit.disableCache first");
        }
      }
    }
    List<AutoCloseable> parallel = new ArrayList<>();  // what this call set up for context parallelism
    ParallelismConfig pc = opts.parallelismConfig();
    if (pc != null) {
      Parallelism.requireLoadedFor(pc, adapter.transformers());
    }
    DiffusionPipeline owner = adapter.pipeline();
    boolean alreadyParallel = activeSequenceParallel(adapter.transformers()) != null
        || (owner != null && owner.cfgParallel().active());
    if (pc != null && (pc.contextParallel() || pc.cfg() > 1) && !alreadyParallel) {
      // validated against WORLD_SIZE before joining, so a bad config never reaches a collective
      DistributedEnvironment env = DistributedEnvironment.fromEnvironment();
      Parallelism.validate(pc, env.worldSize(), owner, adapter.transformers());
      ProcessGroups groups = ProcessGroups.create(env, ProcessGroups.timeoutFromEnvironment());
      parallel.add(groups);
      try {
        parallel.add(0, owner != null ? Parallelism.apply(owner, pc, groups)
            : Parallelism.apply(adapter.transformers(), pc, groups));
      } catch (RuntimeException e) {
        groups.close();
        throw e;
      }
    }
    QuantizeConfig qc = opts.quantizeConfig();
    if (qc != null) {
      // quantised once: a model quantised before (an earlier enableCache, CacheDit.quantize) is kept as it is
      try {
        boolean quantized = false;
        for (Transformer t : adapter.transformers()) {
          quantized |= t instanceof DiffusersModel m && Quantizer.isQuantized(m);
        }
        if (quantized) {
          LOG.info("quantize_config not applied: the transformers are already quantised");
        } else if (owner != null) {
          Quantizer.quantize(owner, qc);
        } else {
          for (Transformer t : adapter.transformers()) {
            if (t instanceof DiffusersModel m) {
              Quantizer.quantize(m, qc);
            }
          }
        }
      } catch (RuntimeException e) {
        closeAll(parallel);
        throw e;
      }
    }
    SequenceParallel sp = activeSequenceParallel(adapter.transformers());
    if (sp != null && engine.reducer() == io.cachedit.cache.DiffReducer.LOCAL) {
      engine = engine.withReducer(sp::allReduceSum);  // every rank of the group takes the same decision
    }
    PatchFunctor functor = adapter.patchFunctor();
    List<Transformer> patched = new ArrayList<>();
    List<CacheHandle.Installed> installed = new ArrayList<>();
    try {
      if (functor != null) {
        for (Transformer t : adapter.transformers()) {
          if (functor.apply(t)) {
            patched.add(t);
          }
        }
      }
      List<BlockAdapter.Target> targets = adapter.resolveTargets();
      List<ParamsModifier> modifiers = adapter.paramsModifiers().isEmpty()
          ? opts.paramsModifiers() : adapter.paramsModifiers();
      Map<BlockAdapter.Target, ParamsModifier> byTarget = matchModifiers(targets, modifiers);
      List<CachedBlockRunner> runners = new ArrayList<>();
      for (BlockAdapter.Target t : targets) {
        BlockList<?> list = t.transformer().blockList(t.listName());
        BasicCacheConfig config = opts.cacheConfig();
        CalibratorConfig calibrator = opts.calibratorConfig();
        ParamsModifier m = byTarget.get(t);
        if (adaptDefault) {
          BasicCacheConfig adapted = defaultConfigFor(list.size());
          if (adapted.fnComputeBlocks() != config.fnComputeBlocks()) {
            LOG.info("default cache config on {}.{} ({} blocks): Fn_compute_blocks {} -> {}, so the probe leaves "
                + "blocks to cache; pass CacheOptions to choose (docs/caching.md)", t.transformer().getClass()
                .getSimpleName(), list.name(), list.size(), config.fnComputeBlocks(), adapted.fnComputeBlocks());
          }
          config = adapted;
        }
        if (m != null) {
          config = m.applyTo(config);
          calibrator = m.applyTo(calibrator);
        }
        runners.add(new CachedBlockRunner(list, config, calibrator, adapter.hasSeparateCfg(), engine));
      }
      for (int i = 0; i < targets.size(); i++) {
        BlockAdapter.Target t = targets.get(i);
        BlockList<?> list = t.transformer().blockList(t.listName());
        CachedBlockRunner runner = runners.get(i);
        if (!list.swapRunner(BlockRunner.SEQUENTIAL, runner)) {
          throw new IllegalStateException("caching was enabled concurrently on block list " + list.name() + " of "
              + t.transformer().getClass().getSimpleName() + " (runner " + list.runner() + ")");
        }
        installed.add(new CacheHandle.Installed(t.transformer(), list, runner));
        LOG.info("cache enabled on {}.{}: {}_{}", t.transformer().getClass().getSimpleName(), list.name(),
            runner.config().strify(), runner.calibratorConfig() == null ? CalibratorConfig.NONE_TAG
                : runner.calibratorConfig().strify());
      }
    } catch (RuntimeException e) {
      for (CacheHandle.Installed i : installed) {
        i.list().swapRunner(i.runner(), BlockRunner.SEQUENTIAL);
        i.runner().close();
      }
      for (Transformer t : patched) {
        functor.revert(t);
      }
      closeAll(parallel);
      throw e;
    }
    if (adapter.pipeline() == null && opts.cacheConfig().numInferenceSteps().isEmpty()) {
      LOG.info("transformer-only caching without num_inference_steps: contexts persist across generations "
          + "unless calls carry a StepContext or CacheDit.refreshContext is called per generation");
    }
    return new CacheHandle(adapter, installed, patched, parallel);
  }

  /** Block lists at least this long keep the reference default probe of 8 blocks. */
  public static final int DEFAULT_FN_MIN_BLOCKS = 16;

  /**
   * The default cache config ({@link CacheOptions#defaults()}: DBCache F8B0, W8, threshold 0.08) as the
   * one-line {@code enableCache} calls apply it to a block list of {@code blocks} blocks: unchanged
   * from {@value #DEFAULT_FN_MIN_BLOCKS} blocks on (every diffusers transformer we support), else
   * {@code Fn = max(1, blocks / 4)}, so the probe stays a small front part of a short list instead of
   * covering it (F8 on 8 blocks would cache nothing; on 4 it is invalid).
   */
  public static BasicCacheConfig defaultConfigFor(int blocks) {
    if (blocks < 1) {
      throw new IllegalArgumentException("a block list has at least one block, got " + blocks);
    }
    DBCacheConfig reference = DBCacheConfig.defaults();
    if (blocks >= DEFAULT_FN_MIN_BLOCKS) {
      return reference;
    }
    return reference.toBuilder().fnComputeBlocks(Math.max(1, blocks / 4)).build();
  }

  /**
   * Quantises {@code model}'s linear layers as {@code config} says (docs/quantization.md): the chosen
   * layers' dense weights are replaced by low-bit ones computed by cachedit's fused kernels. Under
   * tensor parallelism, call it on each rank after loading for the group (each quantises its shards).
   *
   * @return what was quantised, kept dense and why, and the bytes before and after
   * @throws IllegalStateException if the model is already quantised
   */
  public static QuantizeReport quantize(DiffusersModel model, QuantizeConfig config) {
    return Quantizer.quantize(Objects.requireNonNull(model, "model"), Objects.requireNonNull(config, "config"));
  }

  /**
   * Quantises the pipeline's transformers, or the components {@code components_to_quantize} names.
   *
   * @return one report per component
   */
  public static List<QuantizeReport> quantize(DiffusionPipeline pipeline, QuantizeConfig config) {
    return Quantizer.quantize(Objects.requireNonNull(pipeline, "pipeline"), Objects.requireNonNull(config, "config"));
  }

  /**
   * Runs {@code pipeline} parallel over {@code groups} as {@code config} says (docs/parallelism.md):
   * its CFG branches on different ranks ({@code cfg_size}), its transformers context-parallel
   * ({@code ulysses_size}, {@code ring_size}); with {@code tp_size}, its transformers must have been
   * loaded for the tensor-parallel group. Every rank calls it with the same config. Caching enabled
   * afterwards decides alike on all ranks. Close the result to run on one rank again; the groups
   * stay open (their owner closes them).
   */
  public static Parallelism enableParallelism(DiffusionPipeline pipeline, ParallelismConfig config,
      ProcessGroups groups) {
    return Parallelism.apply(requirePipeline(pipeline), config, groups);
  }

  /** Runs one transformer parallel over {@code groups} (context and tensor parallelism; no CFG). */
  public static Parallelism enableParallelism(Transformer transformer, ParallelismConfig config,
      ProcessGroups groups) {
    return Parallelism.apply(List.of(requireTarget(transformer)), config, groups);
  }

  private static DiffusionPipeline requirePipeline(DiffusionPipeline pipeline) {
    if (pipeline == null) {
      throw new IllegalArgumentException("pipeline must not be null");
    }
    transformersOf(pipeline);
    return pipeline;
  }

  private static SequenceParallel activeSequenceParallel(List<? extends Transformer> transformers) {
    for (Transformer t : transformers) {
      if (t instanceof DiffusersTransformer d && d.sequenceParallel().active()) {
        return d.sequenceParallel();
      }
    }
    return null;
  }

  static void closeAll(List<AutoCloseable> resources) {
    for (AutoCloseable c : resources) {
      try {
        c.close();
      } catch (Exception e) {
        LOG.warn("closing {} failed: {}", c, e.toString());
      }
    }
  }

  /**
   * Which modifier applies to which cached list (docs/algorithms.md section 8.3): unnamed modifiers one
   * per list, in order; named ones by list name. Anything else is an error that lists the cached lists.
   */
  static Map<BlockAdapter.Target, ParamsModifier> matchModifiers(List<BlockAdapter.Target> targets,
      List<ParamsModifier> modifiers) {
    Map<BlockAdapter.Target, ParamsModifier> byTarget = new IdentityHashMap<>();
    if (modifiers.isEmpty()) {
      return byTarget;
    }
    long named = modifiers.stream().filter(m -> m.list().isPresent()).count();
    if (named == 0) {
      if (modifiers.size() != targets.size()) {
        throw new ConfigException("params_modifiers: " + modifiers.size() + " modifier(s) for " + targets.size()
            + " cached block list(s) " + describe(targets) + "; give exactly one per list, in this order, or name "
            + "the list of each (ParamsModifier.forList, or blocks_name in a config file)");
      }
      for (int i = 0; i < targets.size(); i++) {
        byTarget.put(targets.get(i), modifiers.get(i));
      }
      return byTarget;
    }
    if (named != modifiers.size()) {
      throw new ConfigException("params_modifiers: " + named + " of " + modifiers.size() + " modifiers name a block "
          + "list; name all of them or none (the cached lists are " + describe(targets) + ")");
    }
    for (ParamsModifier m : modifiers) {
      String name = m.list().orElseThrow();
      boolean found = false;
      for (BlockAdapter.Target t : targets) {
        if (t.listName().equals(name)) {
          found = true;
          if (byTarget.put(t, m) != null) {
            throw new ConfigException("params_modifiers: block list \"" + name + "\" is named by two modifiers");
          }
        }
      }
      if (!found) {
        throw ConfigException.forField("blocks_name", "params_modifiers: no cached block list is named \"" + name
            + "\"; the cached lists are " + describe(targets));
      }
    }
    return byTarget;
  }

  private static String describe(List<BlockAdapter.Target> targets) {
    List<String> names = new ArrayList<>();
    for (BlockAdapter.Target t : targets) {
      BlockList<?> list = t.transformer().blockList(t.listName());
      names.add(t.listName() + " of " + t.transformer().getClass().getSimpleName()
          + (list == null ? "" : " (" + list.size() + " blocks)"));
    }
    return names.toString();
  }

  /** Disables caching on a pipeline; a no-op if none is enabled. */
  public static void disableCache(DiffusionPipeline pipeline) {
    closeHandles(runners(transformersOf(pipeline)));
  }

  /** Disables caching on a transformer; a no-op if none is enabled. */
  public static void disableCache(Transformer transformer) {
    closeHandles(runners(List.of(requireTarget(transformer))));
  }

  /** Disables caching on an adapter's transformers; a no-op if none is enabled. */
  public static void disableCache(BlockAdapter adapter) {
    closeHandles(runners(requireTarget(adapter).transformers()));
  }

  private static void closeHandles(List<CachedBlockRunner> runners) {
    for (CachedBlockRunner runner : runners) {
      if (runner.owner() instanceof CacheHandle h) {
        h.close();
      }
    }
  }

  /** Recreates the contexts of a transformer's cached lists for a new step count. */
  public static void refreshContext(Transformer transformer, int numInferenceSteps) {
    for (CachedBlockRunner runner : requireRunners(transformer)) {
      runner.refresh(numInferenceSteps);
    }
  }

  /** Recreates the contexts of a transformer's cached lists with a new cache config, keeping their calibrators. */
  public static void refreshContext(Transformer transformer, BasicCacheConfig config) {
    for (CachedBlockRunner runner : requireRunners(transformer)) {
      runner.refresh(config, runner.calibratorConfig());
    }
  }

  /** Recreates the contexts of a transformer's cached lists with new configs (calibrator may be null). */
  public static void refreshContext(Transformer transformer, BasicCacheConfig config, CalibratorConfig calibrator) {
    for (CachedBlockRunner runner : requireRunners(transformer)) {
      runner.refresh(config, calibrator);
    }
  }

  /** Statistics per cached block list of the pipeline, logging the markdown tables (section 8.4). */
  public static List<CacheStats> summary(DiffusionPipeline pipeline) {
    return summary(pipeline, false);
  }

  /** As {@link #summary(DiffusionPipeline)}; {@code details} also logs cached steps, diffs and decisions. */
  public static List<CacheStats> summary(DiffusionPipeline pipeline, boolean details) {
    return summary(runners(transformersOf(pipeline)), details);
  }

  public static List<CacheStats> summary(Transformer transformer) {
    return summary(transformer, false);
  }

  public static List<CacheStats> summary(Transformer transformer, boolean details) {
    return summary(runners(List.of(requireTarget(transformer))), details);
  }

  public static List<CacheStats> summary(CacheHandle handle) {
    return summary(handle, false);
  }

  public static List<CacheStats> summary(CacheHandle handle, boolean details) {
    return summary(requireTarget(handle).runners(), details);
  }

  private static List<CacheStats> summary(List<CachedBlockRunner> runners, boolean details) {
    List<CacheStats> stats = new ArrayList<>();
    for (CachedBlockRunner runner : runners) {
      CacheStats s = runner.stats();
      stats.add(s);
      if (LOG.isInfoEnabled()) {
        LOG.info("\n{}", s.markdown(details));
      }
    }
    return stats;
  }

  /**
   * The tag {@code <cache>_<calibrator>_S<cached steps>} of the pipeline's last cached list of its
   * first transformer (as the reference tags a transformer), or "NONE" when nothing is cached.
   */
  public static String strify(DiffusionPipeline pipeline) {
    return strify(runners(transformersOf(pipeline)));
  }

  public static String strify(Transformer transformer) {
    return strify(runners(List.of(requireTarget(transformer))));
  }

  public static String strify(CacheHandle handle) {
    return strify(requireTarget(handle).runners());
  }

  private static String strify(List<CachedBlockRunner> runners) {
    if (runners.isEmpty()) {
      return "NONE";
    }
    CacheStats s = runners.get(runners.size() - 1).stats();
    return s.cacheTag() + "_" + s.calibratorTag() + "_S" + s.accumulatedCachedSteps();
  }

  /** The mask of a predefined policy ({@code slow}, {@code medium}, {@code fast}, {@code ultra}, {@code quadratic:N}). */
  public static int[] stepsMask(String policy, int totalSteps) {
    return StepMask.policyMask(policy, totalSteps);
  }

  /** A mask from compute/cache bins (totalSteps {@code <= 0}: the bins' sum), docs/algorithms.md section 7. */
  public static int[] stepsMask(int[] computeBins, int[] cacheBins, int totalSteps) {
    return StepMask.binsToMask(computeBins, cacheBins, totalSteps);
  }

  private static <T> T requireTarget(T target) {
    if (target == null) {
      throw new IllegalArgumentException("target must be a pipeline, a transformer or a BlockAdapter, not null");
    }
    return target;
  }

  private static List<CachedBlockRunner> requireRunners(Transformer transformer) {
    List<CachedBlockRunner> runners = runners(List.of(requireTarget(transformer)));
    if (runners.isEmpty()) {
      throw new IllegalStateException("caching is not enabled on " + transformer.getClass().getSimpleName());
    }
    return runners;
  }

  private static List<? extends Transformer> transformersOf(DiffusionPipeline pipeline) {
    return requireTarget(pipeline).transformers();
  }

  private static List<CachedBlockRunner> runners(List<? extends Transformer> transformers) {
    List<CachedBlockRunner> runners = new ArrayList<>();
    for (Transformer t : transformers) {
      if (t == null) {
        continue;
      }
      for (BlockList<?> list : t.blockLists()) {
        if (list.runner() instanceof CachedBlockRunner r) {
          runners.add(r);
        }
      }
    }
    return runners;
  }
}
