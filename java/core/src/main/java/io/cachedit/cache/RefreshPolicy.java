package io.cachedit.cache;

/** Whether {@code forceRefreshStepHint} refreshes the context once or every time (docs/algorithms.md section 8.2). */
public enum RefreshPolicy {
  ONCE,
  REPEAT
}
