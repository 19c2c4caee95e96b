package io.cachedit.pipeline;

/**
 * Contributes model classes to {@link ModelRegistry#defaults()} through {@link java.util.ServiceLoader}
 * ({@code META-INF/services/io.cachedit.pipeline.ModelProvider}), as a library adds a model family
 * without changing cachedit.
 */
public interface ModelProvider {
  void register(ModelRegistry.Builder registry);
}
