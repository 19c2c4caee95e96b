package io.cachedit.adapter;

import io.cachedit.models.common.ForwardPattern;
import io.cachedit.models.wan.WanTransformer3DModel;
import io.cachedit.pipeline.WanPipeline;

/** Cache adapters of Wan 2.1 / 2.2: {@code blocks}, pattern 2, separate CFG; Wan 2.2 MoE: one context per transformer. */
public final class WanAdapters {
  private WanAdapters() {}

  public static BlockAdapter transformer(WanTransformer3DModel model) {
    return BlockAdapter.builder().transformer(model).blocks(model, "blocks", ForwardPattern.PATTERN_2)
        .hasSeparateCfg(true).build();
  }

  public static BlockAdapter pipeline(WanPipeline pipeline) {
    BlockAdapter.Builder b = BlockAdapter.builder().pipeline(pipeline).hasSeparateCfg(true);
    for (WanTransformer3DModel t : pipeline.transformers()) {
      b.blocks(t, "blocks", ForwardPattern.PATTERN_2);
    }
    return b.build();
  }
}
