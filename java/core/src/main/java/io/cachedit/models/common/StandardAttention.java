package io.cachedit.models.common;

import io.cachedit.io.WeightScope;
import org.bytedeco.pytorch.Tensor;

/**
 * diffusers' {@code Attention} with the default processor: {@code to_q}, {@code to_k}, {@code to_v}
 * (from the context for cross-attention), SDPA, {@code to_out.0}.
 */
public final class StandardAttention {
  private final long heads;
  private final Linear toQ;
  private final Linear toK;
  private final Linear toV;
  private final Linear toOut;

  public StandardAttention(WeightScope w, long queryDim, long contextDim, long heads, long headDim, boolean bias) {
    long inner = heads * headDim;
    this.heads = heads;
    this.toQ = new Linear(w.pp("to_q"), queryDim, inner, bias);
    this.toK = new Linear(w.pp("to_k"), contextDim, inner, bias);
    this.toV = new Linear(w.pp("to_v"), contextDim, inner, bias);
    this.toOut = new Linear(w.pp("to_out").pp(0), inner, queryDim, true);
  }

  /** Self-attention ({@code context} null) or cross-attention; mask additive or boolean, or null. */
  public Tensor forward(Tensor x, Tensor context, Tensor mask, AttentionBackend backend) {
    Tensor c = context == null ? x : context;
    Tensor q = Attention.heads(toQ.forward(x), heads);
    Tensor k = Attention.heads(toK.forward(c), heads);
    Tensor v = Attention.heads(toV.forward(c), heads);
    return toOut.forward(Attention.merge(backend.attend(q, k, v, mask)).to(q.scalar_type()));
  }
}
