package io.cachedit.adapter;

import io.cachedit.models.common.Transformer;

/**
 * Turns a transformer whose block lists fit no {@link io.cachedit.models.common.ForwardPattern} into
 * one whose lists do (SPEC 8.7), e.g. by fusing per-iteration logic of the transformer's loop into
 * the blocks, or fusing two lists into one. Applied when caching is enabled, reverted when disabled.
 */
public interface PatchFunctor {
  void apply(Transformer transformer);

  void revert(Transformer transformer);
}
