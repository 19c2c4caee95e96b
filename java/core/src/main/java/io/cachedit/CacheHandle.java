package io.cachedit;

import io.cachedit.adapter.BlockAdapter;
import io.cachedit.adapter.PatchFunctor;
import io.cachedit.cache.CacheStats;
import io.cachedit.cache.engine.CachedBlockRunner;
import io.cachedit.models.common.BlockList;
import io.cachedit.models.common.BlockRunner;
import io.cachedit.models.common.Transformer;
import java.util.ArrayList;
import java.util.List;

/**
 * Caching enabled on one pipeline or transformer instance. {@link #close()} restores the original
 * block runners (outputs are bit-identical to never having enabled), reverts what the patch functor
 * changed and frees all cache buffers; context parallelism the options asked for (and the process
 * groups joined for it) ends with it. Idempotent.
 */
public final class CacheHandle implements AutoCloseable {
  record Installed(Transformer transformer, BlockList<?> list, CachedBlockRunner runner) {}

  private final BlockAdapter adapter;
  private final List<Installed> installed;
  private final List<Transformer> patched;
  private final List<AutoCloseable> parallel;
  private boolean closed;

  CacheHandle(BlockAdapter adapter, List<Installed> installed, List<Transformer> patched,
      List<AutoCloseable> parallel) {
    this.adapter = adapter;
    this.installed = List.copyOf(installed);
    this.patched = List.copyOf(patched);
    this.parallel = List.copyOf(parallel);
    for (Installed i : this.installed) {
      i.runner().setOwner(this);
    }
  }

  /** The adapter this handle was enabled with. */
  public BlockAdapter adapter() {
    return adapter;
  }

  /** One runner per cached block list, in context order (the engine is internal: not public API). */
  List<CachedBlockRunner> runners() {
    List<CachedBlockRunner> r = new ArrayList<>();
    for (Installed i : installed) {
      r.add(i.runner());
    }
    return r;
  }

  /** The effective cache config of each cached block list (after ParamsModifiers), in context order. */
  public List<io.cachedit.cache.BasicCacheConfig> configs() {
    List<io.cachedit.cache.BasicCacheConfig> c = new ArrayList<>();
    for (Installed i : installed) {
      c.add(i.runner().config());
    }
    return c;
  }

  /** Statistics per cached block list. */
  public List<CacheStats> stats() {
    List<CacheStats> s = new ArrayList<>();
    for (Installed i : installed) {
      s.add(i.runner().stats());
    }
    return s;
  }

  public synchronized boolean isClosed() {
    return closed;
  }

  @Override
  public synchronized void close() {
    if (closed) {
      return;
    }
    closed = true;
    for (Installed i : installed) {
      i.list().swapRunner(i.runner(), BlockRunner.SEQUENTIAL);
      i.runner().close();
    }
    PatchFunctor functor = adapter.patchFunctor();
    if (functor != null) {
      for (Transformer t : patched) {
        functor.revert(t);
      }
    }
    CacheDit.closeAll(parallel);  // context parallelism this handle set up, then its process groups
  }
}
