package io.cachedit.cache;

/** Whether {@code forceRefreshStepHint} refreshes the context once or every time (SPEC 8.4). */
public enum RefreshPolicy {
  ONCE,
  REPEAT
}
