package io.cachedit.adapter;

/** The adapters of the models that ship with cachedit (filled as models land). */
final class BuiltinAdapters {
  private BuiltinAdapters() {}

  static void register(AdapterRegistry.Builder registry) {
    registry.register(io.cachedit.models.flux.FluxTransformer2DModel.class, FluxAdapters::fused);
    registry.register(io.cachedit.pipeline.FluxPipeline.class, FluxAdapters::fused);
    registry.register(io.cachedit.models.wan.WanTransformer3DModel.class, WanAdapters::transformer);
    registry.register(io.cachedit.pipeline.WanPipeline.class, WanAdapters::pipeline);
  }
}
