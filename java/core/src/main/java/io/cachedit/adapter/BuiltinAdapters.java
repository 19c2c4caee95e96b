package io.cachedit.adapter;

import io.cachedit.models.common.ForwardPattern;

/** The adapters of the models that ship with cachedit (filled as models land). */
final class BuiltinAdapters {
  private BuiltinAdapters() {}

  /** An adapter of one block list of one transformer. */
  static BlockAdapter single(io.cachedit.models.common.Transformer t, String list, ForwardPattern pattern,
      boolean separateCfg) {
    return BlockAdapter.builder().transformer(t).blocks(t, list, pattern).hasSeparateCfg(separateCfg).build();
  }

  static void register(AdapterRegistry.Builder registry) {
    registry.register(io.cachedit.models.flux.FluxTransformer2DModel.class, FluxAdapters::fused);
    registry.register(io.cachedit.pipeline.FluxPipeline.class, FluxAdapters::fused);
    registry.register(io.cachedit.models.wan.WanTransformer3DModel.class, WanAdapters::transformer);
    registry.register(io.cachedit.pipeline.WanPipeline.class, WanAdapters::pipeline);
    registry.register(io.cachedit.models.qwenimage.QwenImageTransformer2DModel.class,
        m -> single(m, "transformer_blocks", ForwardPattern.PATTERN_1, true));
    registry.register(io.cachedit.models.sd3.SD3Transformer2DModel.class,
        m -> single(m, "transformer_blocks", ForwardPattern.PATTERN_1, false));
    registry.register(io.cachedit.pipeline.SD3Pipeline.class, p -> BlockAdapter.builder().pipeline(p)
        .blocks(p.transformer(), "transformer_blocks", ForwardPattern.PATTERN_1).hasSeparateCfg(false).build());
    registry.register(io.cachedit.pipeline.QwenImagePipeline.class, p -> BlockAdapter.builder().pipeline(p)
        .blocks(p.transformer(), "transformer_blocks", ForwardPattern.PATTERN_1).hasSeparateCfg(true).build());
    registry.register(io.cachedit.pipeline.ZImagePipeline.class, p -> BlockAdapter.builder().pipeline(p)
        .blocks(p.transformer(), "layers", ForwardPattern.PATTERN_3).hasSeparateCfg(false).build());
    registry.register(io.cachedit.models.zimage.ZImageTransformer2DModel.class,
        m -> single(m, "layers", ForwardPattern.PATTERN_3, false));
    registry.register(io.cachedit.models.dit.DiTTransformer2DModel.class,
        m -> single(m, "transformer_blocks", ForwardPattern.PATTERN_3, false));
    registry.register(io.cachedit.models.pixart.PixArtTransformer2DModel.class,
        m -> single(m, "transformer_blocks", ForwardPattern.PATTERN_3, false));
  }
}
