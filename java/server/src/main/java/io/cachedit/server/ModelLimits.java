package io.cachedit.server;

import java.util.List;

/**
 * What the served model accepts, for request validation before anything is queued.
 *
 * @param prompts the prompts it knows (the bundled model: its ten class names)
 * @param defaultSide the image side it was trained at, in pixels (the default width and height)
 * @param pixelsPerToken the side of one token in pixels: width and height must be multiples of it
 */
record ModelLimits(List<String> prompts, int defaultSide, int pixelsPerToken) {
  /** Smallest accepted side: two tokens. */
  int minSide() {
    return 2 * pixelsPerToken;
  }

  /** Largest accepted side: four times the trained side (16x its tokens: attention memory grows with their square). */
  int maxSide() {
    return 4 * defaultSide;
  }
}
