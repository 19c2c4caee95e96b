package io.cachedit.adapter;

/** The adapters of the models that ship with cachedit (filled as models land). */
final class BuiltinAdapters {
  private BuiltinAdapters() {}

  static void register(AdapterRegistry.Builder registry) {
    // models register here, e.g. registry.register(FluxTransformer2DModel.class, FluxAdapters::transformer)
  }
}
