package io.cachedit.adapter;

import io.cachedit.error.UnsupportedModelException;
import io.cachedit.models.common.DiffusionPipeline;
import io.cachedit.models.common.Transformer;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.ServiceLoader;
import java.util.function.Function;

/**
 * Maps model classes (pipelines or transformers) to the {@link BlockAdapter} that describes them,
 * so enabling the cache is one line for every registered model. An instance, not a global: tests
 * build their own; {@link #defaults()} holds the built-in models plus {@link AdapterProvider}s.
 * Lookups match the exact class first, then its superclasses.
 */
public final class AdapterRegistry {
  private final Map<Class<?>, Function<Object, BlockAdapter>> factories;

  private AdapterRegistry(Map<Class<?>, Function<Object, BlockAdapter>> factories) {
    this.factories = Map.copyOf(factories);
  }

  public static Builder builder() {
    return new Builder();
  }

  public static AdapterRegistry empty() {
    return builder().build();
  }

  /** Built-in adapters and those of every {@link AdapterProvider} on the class path. */
  public static AdapterRegistry defaults() {
    Builder b = builder();
    BuiltinAdapters.register(b);
    for (AdapterProvider provider : ServiceLoader.load(AdapterProvider.class)) {
      provider.register(b);
    }
    return b.build();
  }

  /** Whether a class (or a superclass) has an adapter. */
  public boolean supports(Class<?> type) {
    return factory(type) != null;
  }

  /** Registered classes, by simple name. */
  public java.util.List<String> supportedModels() {
    return factories.keySet().stream().map(Class::getSimpleName).sorted().toList();
  }

  /** The adapter for a pipeline instance. */
  public BlockAdapter adapterFor(DiffusionPipeline pipeline) {
    return lookup(pipeline);
  }

  /** The adapter for a transformer instance (transformer-only mode). */
  public BlockAdapter adapterFor(Transformer transformer) {
    return lookup(transformer);
  }

  private BlockAdapter lookup(Object target) {
    if (target == null) {
      throw new IllegalArgumentException("target must not be null");
    }
    Function<Object, BlockAdapter> f = factory(target.getClass());
    if (f == null) {
      throw new UnsupportedModelException(target.getClass().getName() + " has no registered cache adapter; "
          + "describe its block lists with a BlockAdapter and pass that to CacheDit.enableCache "
          + "(registered: " + supportedModels() + ")");
    }
    return f.apply(target);
  }

  private Function<Object, BlockAdapter> factory(Class<?> type) {
    for (Class<?> c = type; c != null; c = c.getSuperclass()) {
      Function<Object, BlockAdapter> f = factories.get(c);
      if (f != null) {
        return f;
      }
    }
    return null;
  }

  /** Collects registrations. */
  public static final class Builder {
    private final Map<Class<?>, Function<Object, BlockAdapter>> factories = new LinkedHashMap<>();

    private Builder() {}

    /** Registers the adapter factory for instances of {@code type}. */
    public <T> Builder register(Class<T> type, Function<? super T, BlockAdapter> factory) {
      factories.put(type, target -> factory.apply(type.cast(target)));
      return this;
    }

    public AdapterRegistry build() {
      return new AdapterRegistry(factories);
    }
  }
}
