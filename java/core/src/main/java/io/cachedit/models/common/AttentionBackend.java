package io.cachedit.models.common;

import org.bytedeco.pytorch.Tensor;

/**
 * How a model instance computes attention from projected queries, keys and values: a strategy object
 * each model holds ({@link DiffusersTransformer#setAttention}), never global state. The default is
 * {@link Sdpa} (libtorch's scaled dot-product attention); context parallelism replaces it on one
 * instance by an implementation that exchanges heads or keys between ranks and calls a local one.
 *
 * <p>Implementations must be thread-safe if the model is shared between threads.
 */
@FunctionalInterface
public interface AttentionBackend {
  /**
   * {@code softmax(q k^T / sqrt(D) + mask) v}.
   *
   * @param q queries [B, H, Sq, D]
   * @param k keys [B, H, Sk, D]
   * @param v values [B, H, Sk, D]
   * @param mask broadcastable to [B, H, Sq, Sk], boolean (true = attend) or additive; null for none
   * @return [B, H, Sq, D] in q's dtype
   */
  Tensor attend(Tensor q, Tensor k, Tensor v, Tensor mask);
}
