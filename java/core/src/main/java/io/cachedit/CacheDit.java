package io.cachedit;

import io.cachedit.adapter.AdapterRegistry;
import io.cachedit.adapter.BlockAdapter;
import io.cachedit.adapter.PatchFunctor;
import io.cachedit.cache.BasicCacheConfig;
import io.cachedit.cache.CacheOptions;
import io.cachedit.cache.CacheStats;
import io.cachedit.cache.CachedBlockRunner;
import io.cachedit.cache.CalibratorConfig;
import io.cachedit.cache.DiffReducer;
import io.cachedit.cache.ParamsModifier;
import io.cachedit.cache.StepMask;
import io.cachedit.kernels.Kernels;
import io.cachedit.models.common.BlockList;
import io.cachedit.models.common.BlockRunner;
import io.cachedit.models.common.DiffusionPipeline;
import io.cachedit.models.common.Transformer;
import java.util.ArrayList;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The one-line entry to cachedit's caching, mirroring cache-dit's API (SPEC 8):
 *
 * <pre>{@code
 * try (CacheHandle cache = CacheDit.enableCache(pipeline)) {      // DBCache F8B0, threshold 0.08
 *   pipeline.generate(...);
 *   CacheDit.summary(pipeline);
 * }
 * }</pre>
 *
 * Targets are a {@link DiffusionPipeline}, a {@link Transformer} (transformer-only mode) or a
 * {@link BlockAdapter}. All state lives on the target instance's block lists and in the returned
 * handle: nothing is static, and two instances of one model class are independent.
 */
public final class CacheDit {
  private static final Logger LOG = LoggerFactory.getLogger(CacheDit.class);

  private CacheDit() {}

  /** Enables DBCache with the reference defaults (F8B0, 8 warm-up steps, threshold 0.08, unlimited). */
  public static CacheHandle enableCache(Object target) {
    return enableCache(target, CacheOptions.defaults());
  }

  /** Enables caching with the given options, using the built-in adapter registry. */
  public static CacheHandle enableCache(Object target, CacheOptions options) {
    return enableCache(target, options, AdapterRegistry.defaults());
  }

  /** Enables caching; {@code target}'s class is looked up in {@code registry} unless it is a BlockAdapter. */
  public static CacheHandle enableCache(Object target, CacheOptions options, AdapterRegistry registry) {
    if (target == null) {
      throw new IllegalArgumentException("target must be a pipeline, a transformer or a BlockAdapter, not null");
    }
    BlockAdapter adapter = target instanceof BlockAdapter a ? a : registry.adapterFor(target);
    PatchFunctor functor = adapter.patchFunctor();
    List<Transformer> patched = new ArrayList<>();
    List<CacheHandle.Installed> installed = new ArrayList<>();
    try {
      if (functor != null) {
        for (Transformer t : adapter.transformers()) {
          functor.apply(t);
          patched.add(t);
        }
      }
      List<BlockAdapter.Target> targets = adapter.resolveTargets();
      List<ParamsModifier> modifiers = adapter.paramsModifiers().isEmpty()
          ? options.paramsModifiers() : adapter.paramsModifiers();
      Kernels kernels = Kernels.create();
      for (int i = 0; i < targets.size(); i++) {
        BlockAdapter.Target t = targets.get(i);
        BlockList<?> list = t.transformer().blockList(t.listName());
        BasicCacheConfig config = options.cacheConfig();
        CalibratorConfig calibrator = options.calibratorConfig();
        if (i < modifiers.size()) {
          config = modifiers.get(i).applyTo(config);
          calibrator = modifiers.get(i).applyTo(calibrator);
        }
        CachedBlockRunner runner = new CachedBlockRunner(list, config, calibrator, adapter.hasSeparateCfg(), kernels,
            DiffReducer.LOCAL);
        if (!list.swapRunner(BlockRunner.SEQUENTIAL, runner)) {
          runner.close();
          throw new IllegalStateException("caching is already enabled on block list " + list.name() + " of "
              + t.transformer().getClass().getSimpleName() + " (runner " + list.runner()
              + "); call CacheDit.disableCache first");
        }
        installed.add(new CacheHandle.Installed(t.transformer(), list, runner));
        LOG.info("cache enabled on {}.{}: {}_{}", t.transformer().getClass().getSimpleName(), list.name(),
            config.strify(), calibrator == null ? CalibratorConfig.NONE_TAG : calibrator.strify());
      }
    } catch (RuntimeException e) {
      for (CacheHandle.Installed i : installed) {
        i.list().swapRunner(i.runner(), BlockRunner.SEQUENTIAL);
        i.runner().close();
      }
      for (Transformer t : patched) {
        functor.revert(t);
      }
      throw e;
    }
    if (adapter.pipeline() == null && options.cacheConfig().numInferenceSteps().isEmpty()) {
      LOG.info("transformer-only caching without num_inference_steps: contexts persist across generations "
          + "unless calls carry a StepContext or CacheDit.refreshContext is called per generation");
    }
    return new CacheHandle(adapter, installed);
  }

  /** Disables caching on a target (pipeline, transformer or adapter); a no-op if none is enabled. */
  public static void disableCache(Object target) {
    for (CachedBlockRunner runner : runners(target)) {
      CacheHandle handle = runner.owner() instanceof CacheHandle h ? h : null;
      if (handle != null) {
        handle.close();
      }
    }
  }

  /** Recreates the contexts of a transformer's cached lists for a new step count (SPEC 8.4). */
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

  /** Statistics per cached block list of the target, logging the markdown tables (SPEC 8.8). */
  public static List<CacheStats> summary(Object target) {
    return summary(target, false);
  }

  /** As {@link #summary(Object)}; {@code details} also logs the cached steps and diffs. */
  public static List<CacheStats> summary(Object target, boolean details) {
    List<CacheStats> stats = new ArrayList<>();
    for (CachedBlockRunner runner : runners(target)) {
      CacheStats s = runner.stats();
      stats.add(s);
      if (LOG.isInfoEnabled()) {
        LOG.info("\n{}", s.markdown(details));
      }
    }
    return stats;
  }

  /**
   * The tag {@code <cache>_<calibrator>_S<cached steps>} of the target's last cached list of its first
   * transformer (as the reference tags a transformer), or "NONE" when nothing is cached.
   */
  public static String strify(Object target) {
    List<CachedBlockRunner> runners = runners(target);
    if (runners.isEmpty()) {
      return "NONE";
    }
    CacheStats s = runners.get(runners.size() - 1).stats();
    return s.cacheTag() + "_" + s.calibratorTag() + "_S" + s.accumulatedCachedSteps();
  }

  /** The mask of a predefined policy ({@code slow}, {@code medium}, {@code fast}, {@code ultra}), SPEC 7. */
  public static int[] stepsMask(String policy, int totalSteps) {
    return StepMask.policyMask(policy, totalSteps);
  }

  /** A mask from compute/cache bins (totalSteps {@code <= 0}: the bins' sum), SPEC 7. */
  public static int[] stepsMask(int[] computeBins, int[] cacheBins, int totalSteps) {
    return StepMask.binsToMask(computeBins, cacheBins, totalSteps);
  }

  private static List<CachedBlockRunner> requireRunners(Transformer transformer) {
    List<CachedBlockRunner> runners = runners(transformer);
    if (runners.isEmpty()) {
      throw new IllegalStateException("caching is not enabled on " + transformer.getClass().getSimpleName());
    }
    return runners;
  }

  private static List<CachedBlockRunner> runners(Object target) {
    List<Transformer> transformers = new ArrayList<>();
    if (target instanceof BlockAdapter a) {
      transformers.addAll(a.transformers());
    } else if (target instanceof DiffusionPipeline p) {
      transformers.addAll(p.transformers());
    } else if (target instanceof Transformer t) {
      transformers.add(t);
    } else if (target instanceof CacheHandle h) {
      return h.runners();
    } else {
      throw new IllegalArgumentException(target == null ? "target is null"
          : target.getClass().getName() + " is not a pipeline, transformer, BlockAdapter or CacheHandle");
    }
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
