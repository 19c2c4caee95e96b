package io.cachedit.cache;

/**
 * Sees every cache decision as it is made (for live dashboards, logs, or a server's progress stream).
 * Called on the thread running the transformer, inside the forward: keep it quick and do not call back
 * into the model. An exception it throws fails the forward.
 */
@FunctionalInterface
public interface DecisionListener {
  void onDecision(CacheDecision decision);

  /** Listens to nothing. */
  DecisionListener NONE = d -> { };
}
