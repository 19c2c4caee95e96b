package io.cachedit.adapter;

/**
 * Contributes adapters to {@link AdapterRegistry#defaults()} through {@link java.util.ServiceLoader}
 * ({@code META-INF/services/io.cachedit.adapter.AdapterProvider}).
 */
public interface AdapterProvider {
  void register(AdapterRegistry.Builder registry);
}
