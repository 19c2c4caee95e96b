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

  /**
   * Cross-attention of this rank's queries to a context every rank holds whole (e.g. Wan's text):
   * nothing to exchange under context parallelism, so the default is {@link #attend}, and a
   * parallel backend computes it locally.
   */
  default Tensor attendCross(Tensor q, Tensor k, Tensor v, Tensor mask) {
    return attend(q, k, v, mask);
  }

  /**
   * {@link #attend} from projections computed on demand, in the order values, queries, keys, with a
   * result that may still be on its way: a parallel backend starts each projection's exchange before
   * the next projection is computed, and the output's exchange before {@link Result#get} is called, so
   * a model that computes something else in between (a single-stream block's MLP) overlaps it with
   * communication. The default computes all three and attends at once.
   */
  default Result attendDeferred(java.util.function.Supplier<Tensor> v, java.util.function.Supplier<Tensor> q,
      java.util.function.Supplier<Tensor> k, Tensor mask) {
    Tensor vv = v.get();
    Tensor qq = q.get();
    Tensor o = attend(qq, k.get(), vv, mask);
    return () -> o;
  }

  /** An attention output that may still be in flight. */
  @FunctionalInterface
  interface Result {
    /** Blocks until the output [B, H, Sq, D] is here. */
    Tensor get();
  }
}
