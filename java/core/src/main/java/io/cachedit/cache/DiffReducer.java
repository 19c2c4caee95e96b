package io.cachedit.cache;

import io.cachedit.kernels.RelL1Sums;

/**
 * Combines the residual-diff sums of all ranks before the threshold test, so every rank of a
 * parallel group takes the same cache decision (SPEC 3.5). Single-process runs use {@link #LOCAL}.
 */
@FunctionalInterface
public interface DiffReducer {
  RelL1Sums reduce(RelL1Sums local);

  DiffReducer LOCAL = local -> local;
}
