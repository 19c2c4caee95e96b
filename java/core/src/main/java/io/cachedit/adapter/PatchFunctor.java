package io.cachedit.adapter;

import io.cachedit.models.common.Transformer;

/**
 * Turns a transformer whose block lists fit no {@link io.cachedit.models.common.ForwardPattern} into
 * one whose lists do (docs/algorithms.md section 8.1), e.g. by fusing per-iteration logic of the
 * transformer's loop into the blocks, or fusing two lists into one. Applied when caching is enabled,
 * reverted when it is disabled, on the instance only.
 */
public interface PatchFunctor {
  /**
   * Patches {@code transformer}.
   *
   * @return whether it changed anything (false if the transformer already had the form): only a
   *     transformer this call changed is {@link #revert reverted} later
   */
  boolean apply(Transformer transformer);

  /** Undoes what {@link #apply} changed. */
  void revert(Transformer transformer);
}
