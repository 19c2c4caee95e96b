package io.cachedit.parallel;

/** How ring attention moves keys and values between ranks. */
public enum RingRotateMethod {
  /** Each step sends the current block to the next rank and receives the previous rank's (overlapping the compute). */
  P2P,
  /** All blocks are gathered once, then attended one by one (fewer messages, more memory). */
  ALLGATHER
}
