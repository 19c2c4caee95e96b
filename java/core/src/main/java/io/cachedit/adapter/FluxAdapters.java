package io.cachedit.adapter;

import io.cachedit.models.common.ForwardPattern;
import io.cachedit.models.common.Transformer;
import io.cachedit.models.flux.FluxTransformer2DModel;

/**
 * Cache adapters of FLUX.1 (docs/algorithms.md section 2): by default, as cache-dit does, one fused pattern-1 list of all
 * 19 + 38 blocks (a patch functor switches the model to it and back); optionally the two lists as
 * separate contexts (pattern 1 and pattern 3).
 */
public final class FluxAdapters {
  private FluxAdapters() {}

  /** Switches a FLUX model to its fused block list while caching is enabled. */
  public static final PatchFunctor FUSE_BLOCKS = new PatchFunctor() {
    @Override
    public boolean apply(Transformer t) {
      FluxTransformer2DModel flux = (FluxTransformer2DModel) t;
      if (flux.usesFusedBlocks()) {
        return false;
      }
      flux.useFusedBlocks(true);
      return true;
    }

    @Override
    public void revert(Transformer t) {
      ((FluxTransformer2DModel) t).useFusedBlocks(false);
    }
  };

  /** The reference default: one fused list named {@code transformer_blocks}, pattern 1. */
  public static BlockAdapter fused(FluxTransformer2DModel model) {
    return BlockAdapter.builder().transformer(model).patchFunctor(FUSE_BLOCKS)
        .blocks(model, "transformer_blocks", ForwardPattern.PATTERN_1).build();
  }

  /** The fused adapter for a pipeline: its transformer, pipeline mode (fresh contexts per generation). */
  public static BlockAdapter fused(io.cachedit.pipeline.FluxPipeline pipeline) {
    FluxTransformer2DModel model = pipeline.transformer();
    return BlockAdapter.builder().pipeline(pipeline).patchFunctor(FUSE_BLOCKS)
        .blocks(model, "transformer_blocks", ForwardPattern.PATTERN_1).build();
  }

  /** Two contexts: {@code transformer_blocks} (pattern 1) and {@code single_transformer_blocks} (pattern 3). */
  public static BlockAdapter separateLists(FluxTransformer2DModel model) {
    return BlockAdapter.builder().transformer(model)
        .blocks(model, "transformer_blocks", ForwardPattern.PATTERN_1)
        .blocks(model, "single_transformer_blocks", ForwardPattern.PATTERN_3).build();
  }
}
