package io.cachedit.models.common;

import org.bytedeco.pytorch.Tensor;

/**
 * One transformer block of a {@link BlockList}.
 *
 * @param <A> the model's per-forward block arguments (timestep embedding, rotary embedding, masks,
 *     conditioning for patterns 3-5, ...); the engine passes them through untouched
 */
@FunctionalInterface
public interface Block<A> {
  /**
   * Runs the block. {@code encoder} is null for patterns 3-5. The result's encoder is the updated
   * encoder (patterns 0, 1), null (patterns 2, 3: unchanged / none) or the block's new encoder
   * output (patterns 4, 5).
   */
  BlockIO forward(Tensor hidden, Tensor encoder, A args);
}
