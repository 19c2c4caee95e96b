package io.cachedit.adapter;

import io.cachedit.error.UnsupportedModelException;
import io.cachedit.cache.ParamsModifier;
import io.cachedit.models.common.BlockList;
import io.cachedit.models.common.DiffusionPipeline;
import io.cachedit.models.common.ForwardPattern;
import io.cachedit.models.common.Transformer;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Where to cache (docs/algorithms.md section 8.1): the pipeline (optional), its transformers, which block lists of each
 * to cache with which {@link ForwardPattern}, optional {@link ParamsModifier}s per list, an
 * optional {@link PatchFunctor}, and whether the pipeline calls the transformer separately for the
 * cond and uncond branches.
 *
 * <pre>{@code
 * BlockAdapter adapter = BlockAdapter.builder()
 *     .transformer(model)
 *     .blocks(model, "transformer_blocks", ForwardPattern.PATTERN_1)
 *     .blocks(model, "single_transformer_blocks", ForwardPattern.PATTERN_3)
 *     .build();
 * }</pre>
 *
 * With {@link Builder#auto} the block list of a single transformer is found by name prefix and
 * pattern, the longest (or shortest) winning.
 */
public final class BlockAdapter {
  /** A block list to cache and the pattern it is declared to follow. */
  public record Target(Transformer transformer, String listName, ForwardPattern pattern) {}

  private final DiffusionPipeline pipeline;
  private final List<Transformer> transformers;
  private final List<Target> targets;
  private final List<ParamsModifier> paramsModifiers;
  private final PatchFunctor patchFunctor;
  private final boolean hasSeparateCfg;
  private final boolean auto;
  private final ForwardPattern autoPattern;
  private final List<String> allowPrefixes;
  private final boolean preferLongest;

  private BlockAdapter(Builder b) {
    this.pipeline = b.pipeline;
    this.transformers = List.copyOf(b.transformers);
    this.targets = List.copyOf(b.targets);
    this.paramsModifiers = List.copyOf(b.paramsModifiers);
    this.patchFunctor = b.patchFunctor;
    this.hasSeparateCfg = b.hasSeparateCfg;
    this.auto = b.auto;
    this.autoPattern = b.autoPattern;
    this.allowPrefixes = List.copyOf(b.allowPrefixes);
    this.preferLongest = b.preferLongest;
  }

  public static Builder builder() {
    return new Builder();
  }

  /** The pipeline, or null in transformer-only mode. */
  public DiffusionPipeline pipeline() {
    return pipeline;
  }

  public List<Transformer> transformers() {
    return transformers;
  }

  public List<ParamsModifier> paramsModifiers() {
    return paramsModifiers;
  }

  public PatchFunctor patchFunctor() {
    return patchFunctor;
  }

  public boolean hasSeparateCfg() {
    return hasSeparateCfg;
  }

  public boolean isAuto() {
    return auto;
  }

  /**
   * The block lists to cache, transformer-major, after the patch functor ran: explicit targets, or
   * in auto mode the list found by name prefix and pattern. Checks that each list exists, is non-empty and
   * follows its declared pattern.
   */
  public List<Target> resolveTargets() {
    List<Target> result = new ArrayList<>();
    if (auto) {
      Transformer t = transformers.get(0);
      List<BlockList<?>> candidates = new ArrayList<>();
      for (BlockList<?> list : t.blockLists()) {
        boolean prefixOk = allowPrefixes.stream().anyMatch(p -> list.name().startsWith(p));
        if (prefixOk && list.size() > 0 && list.pattern() == autoPattern) {
          candidates.add(list);
        }
      }
      candidates.sort(Comparator.comparing(BlockList::name));
      BlockList<?> best = null;
      for (BlockList<?> list : candidates) {
        if (best == null || (preferLongest ? list.size() > best.size() : list.size() < best.size())) {
          best = list;
        }
      }
      if (best == null) {
        throw new UnsupportedModelException("auto mode found no block list of " + t.getClass().getSimpleName()
            + " with a name starting with one of " + allowPrefixes + " and pattern " + autoPattern
            + "; its lists are " + t.blockLists());
      }
      result.add(new Target(t, best.name(), autoPattern));
      return result;
    }
    for (Target target : targets) {
      BlockList<?> list = target.transformer().blockList(target.listName());
      if (list == null) {
        throw new UnsupportedModelException(target.transformer().getClass().getSimpleName() + " has no block list \""
            + target.listName() + "\"; it has " + target.transformer().blockLists());
      }
      if (list.pattern() != target.pattern()) {
        throw new UnsupportedModelException("block list " + target.listName() + " of "
            + target.transformer().getClass().getSimpleName() + " follows " + list.pattern() + ", not the declared "
            + target.pattern() + "; fix the adapter or add a PatchFunctor that makes it fit");
      }
      if (list.size() == 0) {
        throw new UnsupportedModelException("block list " + target.listName() + " is empty");
      }
      result.add(target);
    }
    return result;
  }

  /** Builder; transformers and their lists are added in context order. */
  public static final class Builder {
    private DiffusionPipeline pipeline;
    private final List<Transformer> transformers = new ArrayList<>();
    private final List<Target> targets = new ArrayList<>();
    private final List<ParamsModifier> paramsModifiers = new ArrayList<>();
    private PatchFunctor patchFunctor;
    private boolean hasSeparateCfg;
    private boolean auto;
    private ForwardPattern autoPattern;
    private List<String> allowPrefixes = List.of("transformer", "single_transformer", "blocks", "layers",
        "single_stream_blocks", "double_stream_blocks");
    private boolean preferLongest = true;

    private Builder() {}

    public Builder pipeline(DiffusionPipeline pipeline) {
      this.pipeline = pipeline;
      for (Transformer t : pipeline.transformers()) {
        if (t != null && !transformers.contains(t)) {
          transformers.add(t);
        }
      }
      return this;
    }

    public Builder transformer(Transformer transformer) {
      if (transformer == null) {
        throw new IllegalArgumentException("transformer must not be null");
      }
      if (!transformers.contains(transformer)) {
        transformers.add(transformer);
      }
      return this;
    }

    /** Caches the list named {@code listName} of {@code transformer}, declared to follow {@code pattern}. */
    public Builder blocks(Transformer transformer, String listName, ForwardPattern pattern) {
      transformer(transformer);
      targets.add(new Target(transformer, listName, pattern));
      return this;
    }

    /**
     * Per-list overrides: unnamed ones one per cached list in order (transformer-major), named ones by
     * list name ({@link ParamsModifier#forList}); a mismatch fails {@code CacheDit.enableCache}.
     */
    public Builder paramsModifiers(List<ParamsModifier> modifiers) {
      paramsModifiers.clear();
      paramsModifiers.addAll(modifiers);
      return this;
    }

    public Builder patchFunctor(PatchFunctor functor) {
      this.patchFunctor = functor;
      return this;
    }

    /** The pipeline computes cond and uncond in separate transformer calls (docs/algorithms.md section 5). */
    public Builder hasSeparateCfg(boolean separate) {
      this.hasSeparateCfg = separate;
      return this;
    }

    /** Finds the block list of the (single) transformer by name prefix and pattern. */
    public Builder auto(ForwardPattern pattern) {
      this.auto = true;
      this.autoPattern = pattern;
      return this;
    }

    public Builder allowPrefixes(List<String> prefixes) {
      this.allowPrefixes = List.copyOf(prefixes);
      return this;
    }

    /** In auto mode pick the list with the most blocks (default) or the fewest. */
    public Builder preferLongest(boolean longest) {
      this.preferLongest = longest;
      return this;
    }

    public BlockAdapter build() {
      if (transformers.isEmpty()) {
        throw new IllegalArgumentException("a BlockAdapter needs at least one transformer");
      }
      if (auto && transformers.size() != 1) {
        throw new IllegalArgumentException("auto mode works on a single transformer; list the block lists of "
            + transformers.size() + " transformers explicitly");
      }
      if (auto && !targets.isEmpty()) {
        throw new IllegalArgumentException("give either auto(...) or explicit blocks(...), not both");
      }
      if (!auto && targets.isEmpty()) {
        throw new IllegalArgumentException("a BlockAdapter needs block lists: call blocks(...) or auto(...)");
      }
      Map<String, Target> seen = new LinkedHashMap<>();
      for (Target t : targets) {
        String key = System.identityHashCode(t.transformer()) + "/" + t.listName();
        if (seen.put(key, t) != null) {
          throw new IllegalArgumentException("block list " + t.listName() + " is listed twice");
        }
      }
      return new BlockAdapter(this);
    }
  }
}
