package io.cachedit.pipeline;

import java.util.concurrent.atomic.AtomicReference;

/**
 * One generation at a time per pipeline. A pipeline's transformers and cache contexts hold the state
 * of the generation in progress; a second thread generating on the same instance would interleave its
 * steps with the first one's and both would get wrong images, so it is refused with an error that
 * says what to do instead (one instance per thread; {@code cachedit serve} keeps one per worker).
 */
final class GenerationGuard {
  private final AtomicReference<Thread> owner = new AtomicReference<>();

  /** The held guard: closing it ends the generation. */
  interface Held extends AutoCloseable {
    @Override
    void close();
  }

  /**
   * Starts a generation on the calling thread.
   *
   * @throws IllegalStateException if another thread is generating on the pipeline (or this thread
   *     already is, from inside a step)
   */
  Held enter(String pipeline) {
    Thread me = Thread.currentThread();
    if (!owner.compareAndSet(null, me)) {
      Thread other = owner.get();
      throw new IllegalStateException(pipeline + " is already generating on thread \""
          + (other == null ? "?" : other.getName()) + "\"; a pipeline runs one generation at a time: give each thread"
          + " its own pipeline (load the model once per thread) or queue the requests");
    }
    return () -> owner.compareAndSet(me, null);
  }

  /**
   * {@link #enter(String)}, then checks that the weight files of {@code models} have not changed on
   * disk since they were loaded (released again if they have).
   */
  Held enter(String pipeline, java.util.List<?> models) {
    Held held = enter(pipeline);
    try {
      for (Object m : models) {
        if (m instanceof io.cachedit.models.common.DiffusersModel d) {
          d.checkWeightsUnchanged();
        }
      }
    } catch (RuntimeException e) {
      held.close();
      throw e;
    }
    return held;
  }

  /** Whether a generation is running. */
  boolean busy() {
    return owner.get() != null;
  }
}
