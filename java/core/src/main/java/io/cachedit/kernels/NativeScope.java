package io.cachedit.kernels;

import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Function;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;

/**
 * The owner of native tensors. Every libtorch tensor cachedit holds beyond the statement that made it
 * has one: a generation's latents belong to the generation's scope, a cache buffer to its slot, a
 * model's weights to the model. Closing the owner frees what it holds; closing twice does nothing;
 * using it after close is an {@link IllegalStateException} that names it.
 *
 * <p>Two kinds, both {@link AutoCloseable}:
 * <ul>
 *   <li>{@link #open(String)}: a lexical scope. It also wraps a JavaCPP {@link PointerScope}, so the
 *       temporaries created on this thread while it is the innermost scope are freed when it closes.
 *       Use it in try-with-resources; it is confined to the thread that opened it.
 *   <li>{@link #owner(String)}: holds only what is {@link #keep kept} into it, for lifetimes that are
 *       not lexical (a model, a cache context). It can be passed between threads.
 * </ul>
 *
 * <pre>{@code
 * Tensor image = NativeScope.compute("generate", gen -> {       // freed on any exception
 *   Tensor latents = gen.keep(noise());
 *   for (int i = 0; i < steps; i++) {
 *     try (NativeScope step = NativeScope.open("step " + i)) {  // this step's temporaries
 *       latents = gen.replace(latents, denoise(latents, i));
 *     }
 *   }
 *   return decode(latents);                                       // survives the scope
 * });
 * }</pre>
 */
public final class NativeScope implements AutoCloseable {
  /**
   * Handles kept by all scopes of the process: a diagnostic of native ownership (a leak shows as a
   * count that does not come back), process-wide by nature like the native heap it describes.
   */
  private static final AtomicLong LIVE = new AtomicLong();

  private final String name;
  private final PointerScope pointerScope;  // null for owners
  private final Set<Tensor> kept = Collections.newSetFromMap(new IdentityHashMap<>());
  private boolean closed;

  private NativeScope(String name, boolean lexical) {
    this.name = name == null || name.isBlank() ? "native scope" : name;
    this.pointerScope = lexical ? new PointerScope() : null;
  }

  /** A lexical scope: frees what it keeps and this thread's temporaries made while it is innermost. */
  public static NativeScope open(String name) {
    return new NativeScope(name, true);
  }

  /** An owner of kept tensors only (no temporaries), for lifetimes that are not lexical. */
  public static NativeScope owner(String name) {
    return new NativeScope(name, false);
  }

  /**
   * Runs {@code body} in a lexical scope and returns its result as a tensor that outlives the scope:
   * attached to the caller's innermost {@link PointerScope}, or left to the garbage collector when
   * there is none. Everything else the body made or kept is freed, also when it throws.
   */
  public static Tensor compute(String name, Function<NativeScope, Tensor> body) {
    Tensor carried;
    try (NativeScope scope = open(name)) {
      Tensor result = body.apply(scope);
      carried = result == null ? null : retain(result);
    }
    if (carried == null) {
      return null;
    }
    Tensor out = new Tensor(carried);  // a fresh handle: made outside the scope, owned by the caller's
    carried.releaseReference();
    return out;
  }

  /** The tensors kept by every scope of this process now (a diagnostic; see the class comment). */
  public static long liveKeptHandles() {
    return LIVE.get();
  }

  public String name() {
    return name;
  }

  public synchronized boolean isClosed() {
    return closed;
  }

  /** Throws {@link IllegalStateException} naming this scope if it is closed. */
  public synchronized void ensureOpen() {
    if (closed) {
      throw new IllegalStateException(name + " is closed; it cannot be used any more");
    }
  }

  /**
   * A handle on {@code t}'s storage owned by this scope: it survives the closing of any inner scope
   * and is freed when this one closes (or by {@link #release}). Null is passed through.
   */
  public synchronized Tensor keep(Tensor t) {
    ensureOpen();
    if (t == null) {
      return null;
    }
    Tensor owned = retain(t);
    kept.add(owned);
    LIVE.incrementAndGet();
    return owned;
  }

  /** Frees a handle kept here before the scope closes (null and foreign handles are ignored). */
  public synchronized void release(Tensor handle) {
    if (handle != null && kept.remove(handle)) {
      free(handle);
    }
  }

  /** {@link #keep}s {@code next} and {@link #release}s {@code previous}: the step of a loop. */
  public synchronized Tensor replace(Tensor previous, Tensor next) {
    Tensor owned = keep(next);
    release(previous);
    return owned;
  }

  /** Number of handles kept here now. */
  public synchronized int size() {
    return kept.size();
  }

  @Override
  public synchronized void close() {
    if (closed) {
      return;
    }
    closed = true;
    try {
      for (Tensor t : kept) {
        free(t);
      }
      kept.clear();
    } finally {
      if (pointerScope != null) {
        pointerScope.close();
      }
    }
  }

  private static Tensor retain(Tensor t) {
    Tensor owned = new Tensor(t);
    owned.retainReference();  // +1 for us; an enclosing PointerScope's close only drops its own reference
    return owned;
  }

  private static void free(Tensor handle) {
    if (!handle.isNull()) {
      handle.releaseReference();
    }
    LIVE.decrementAndGet();
  }

  @Override
  public String toString() {
    return name + (closed ? " (closed)" : " (" + size() + " kept)");
  }
}
