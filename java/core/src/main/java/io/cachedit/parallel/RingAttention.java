package io.cachedit.parallel;

import io.cachedit.error.ConfigException;
import io.cachedit.models.common.AttentionBackend;
import java.util.Arrays;
import org.bytedeco.pytorch.Dispatcher;
import org.bytedeco.pytorch.IValue;
import org.bytedeco.pytorch.IValueVector;
import org.bytedeco.pytorch.OperatorHandle;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * Ring attention (docs/parallelism.md): queries stay; the keys and values of every rank's block come
 * by in turn, each attended as it arrives and merged into the running result by its log-sum-exp
 * (in fp32 unless configured otherwise): {@code lse = log(e^lse1 + e^lse2)},
 * {@code out = out1 e^(lse1 - lse) + out2 e^(lse2 - lse)}. With the {@code p2p} rotation the next block is in flight
 * (sent to the next rank, received from the previous) while the current one is attended; with
 * {@code allgather} all blocks are gathered first. Blocks must be of equal length.
 */
final class RingAttention implements AttentionBackend {
  private final CommGroup ring;
  private final SequenceSplitter splitter;
  private final AttentionBackend local;
  private final RingRotateMethod rotate;
  private final boolean fp32;

  /**
   * @param ring the ranks that rotate blocks, in sequence order
   * @param splitter the sequence split (to refuse uneven blocks)
   * @param local attention for calls that are not over the split sequence (cross-attention)
   */
  RingAttention(CommGroup ring, SequenceSplitter splitter, AttentionBackend local, RingRotateMethod rotate,
      boolean fp32) {
    this.ring = ring;
    this.splitter = splitter;
    this.local = local;
    this.rotate = rotate;
    this.fp32 = fp32;
  }

  @Override
  public Tensor attend(Tensor q, Tensor k, Tensor v, Tensor mask) {
    int p = ring.size();
    int r = ring.rank();
    long block = k.size(2);
    long[] lengths = splitter.lengths(q.size(2));
    if (Arrays.stream(lengths).distinct().count() > 1) {
      throw new ConfigException("ring_size", p, "ring attention rotates blocks of equal length, but this sequence "
          + "splits into " + Arrays.toString(lengths) + " tokens per rank; use a length the group divides, or "
          + "ulysses_size with ulysses_anything");
    }
    ScalarType out = q.scalar_type().intern();
    Tensor maskAll = mask == null ? null : ringMask(mask, block);
    Tensor kv = torch.stack(new TensorVector(k, v), 0).contiguous();
    Tensor gathered = rotate == RingRotateMethod.ALLGATHER ? ring.allGather(kv) : null;
    Tensor current = kv;
    Tensor acc = null;
    Tensor lse = null;
    for (int step = 0; step < p; step++) {
      int src = Math.floorMod(r - step, p);
      if (gathered != null) {
        current = gathered.select(0, src);
      }
      CommGroup.Pending send = null;
      CommGroup.Pending recv = null;
      Tensor next = null;
      if (gathered == null && step < p - 1) {
        next = torch.empty_like(current);
        send = ring.startSend(current, Math.floorMod(r + 1, p), step);
        recv = ring.startReceive(next, Math.floorMod(r - 1, p), step);
      }
      Tensor m = maskAll == null ? null : maskAll.narrow(3, src * block, block);
      Tensor[] part = attendWithLse(q, current.select(0, 0), current.select(0, 1), m, fp32);
      if (acc == null) {
        acc = part[0];
        lse = part[1];
      } else {
        // lse = log(e^lse' + e^lse''), out = out' e^(lse' - lse) + out'' e^(lse'' - lse): the reference's
        // sigmoid form, written so that a block whose keys are all masked (lse = -inf) weighs nothing
        Tensor merged = torch.logaddexp(lse, part[1]);
        Tensor wAcc = finite(torch.exp(lse.sub(merged))).unsqueeze(-1);
        Tensor wPart = finite(torch.exp(part[1].sub(merged))).unsqueeze(-1);
        acc = acc.mul(wAcc).add(part[0].to(acc.scalar_type()).mul(wPart));
        lse = merged;
      }
      if (recv != null) {
        send.waitFor();
        recv.waitFor();
        current = next;
      }
    }
    return acc.to(out);
  }

  /** NaN (both weights of a fully masked query) to 0. */
  private static Tensor finite(Tensor t) {
    return torch.nan_to_num(t, new org.bytedeco.pytorch.DoubleOptional(0.0), new org.bytedeco.pytorch.DoubleOptional(),
        new org.bytedeco.pytorch.DoubleOptional());
  }

  @Override
  public Tensor attendCross(Tensor q, Tensor k, Tensor v, Tensor mask) {
    return local.attendCross(q, k, v, mask);
  }

  /** The mask's key dimension gathered over the ring (queries stay local). */
  private Tensor ringMask(Tensor mask, long block) {
    if (mask.dim() != 4 || mask.size(3) != block) {
      throw new IllegalArgumentException("ring attention takes a [B, H or 1, Sq or 1, Sk] mask over this rank's "
          + block + " keys, got " + Arrays.toString(mask.sizes().vec().get()));
    }
    boolean bool = mask.scalar_type().intern() == ScalarType.Bool;
    long[] lengths = new long[ring.size()];
    Arrays.fill(lengths, block);
    Tensor m = SequenceSplitter.gather(ring, (bool ? mask.to(ScalarType.Byte) : mask).contiguous(), 3, lengths);
    return bool ? m.to(ScalarType.Bool) : m;
  }

  /**
   * Attention of {@code q} over one block of keys, and the log-sum-exp of its scores per query:
   * {out [B, H, Sq, D], lse [B, H, Sq]}, the output in fp32 when {@code fp32} (else the input dtype),
   * the lse in fp32. On the CPU this is libtorch's fused flash-attention kernel (the one SDPA runs,
   * called through the dispatcher for its second output); elsewhere the composite below. Queries
   * whose keys are all masked get output 0 and lse minus infinity, which the merge weighs as nothing.
   */
  Tensor[] attendWithLse(Tensor q, Tensor k, Tensor v, Tensor mask, boolean fp32) {
    OperatorHandle flash = q.is_cuda() ? null : flashForCpu();  // a lookup per call: the handle lives in its scope
    if (flash == null) {
      return attendWithLseComposite(q, k, v, mask, fp32);
    }
    Tensor additive = mask == null ? null : mask.scalar_type().intern() == ScalarType.Bool
        ? torch.zeros_like(mask, new org.bytedeco.pytorch.TensorOptions(q.scalar_type()),
            new org.bytedeco.pytorch.MemoryFormatOptional()).masked_fill(mask.logical_not(),
            new Scalar(Double.NEGATIVE_INFINITY))
        : mask.to(q.scalar_type());
    IValueVector stack = new IValueVector(new IValue(q), new IValue(k), new IValue(v), new IValue(0.0),
        new IValue(false), additive == null ? new IValue() : new IValue(additive), new IValue());
    flash.callBoxed(stack);
    Tensor out = stack.get(0).toTensor();
    Tensor lse = stack.get(1).toTensor().to(ScalarType.Float);
    if (mask != null) {
      // the kernel gives a query that sees no key of this block output 0 and lse 0; its lse is -inf
      Tensor seesAKey = (mask.scalar_type().intern() == ScalarType.Bool ? mask
          : mask.gt(new Scalar(Double.NEGATIVE_INFINITY))).any(-1).expand(lse.sizes().vec().get());
      lse = lse.masked_fill(seesAKey.logical_not(), new Scalar(Double.NEGATIVE_INFINITY));
      out = finite(out);
    }
    return new Tensor[] {fp32 ? out.to(ScalarType.Float) : out, lse};
  }

  /** libtorch's CPU flash attention with log-sum-exp, or null if this build lacks it. */
  private static OperatorHandle flashForCpu() {
    try {
      return Dispatcher.singleton().findSchemaOrThrow("aten::_scaled_dot_product_flash_attention_for_cpu", "");
    } catch (RuntimeException e) {
      return null;
    }
  }

  /** {@link #attendWithLse} from matmuls: the reference the fused path is tested against. */
  static Tensor[] attendWithLseComposite(Tensor q, Tensor k, Tensor v, Tensor mask, boolean fp32) {
    ScalarType t = fp32 ? ScalarType.Float : q.scalar_type().intern();
    Tensor qf = q.to(t);
    Tensor scores = qf.matmul(k.to(t).transpose(-2, -1)).mul(new Scalar(1.0 / Math.sqrt(q.size(-1))));
    if (mask != null) {
      scores = mask.scalar_type().intern() == ScalarType.Bool
          ? scores.masked_fill(mask.logical_not(), new Scalar(Double.NEGATIVE_INFINITY))
          : scores.add(mask.to(t));
    }
    Tensor lse = scores.logsumexp(new long[] {-1}, true);
    Tensor probs = torch.exp(scores.sub(lse));
    Tensor out = finite(probs.matmul(v.to(t)));
    return new Tensor[] {out, lse.squeeze(-1).to(ScalarType.Float)};
  }

  @Override
  public String toString() {
    return "ring(" + ring.size() + ", " + rotate.name().toLowerCase(java.util.Locale.ROOT) + (fp32 ? ", fp32" : "")
        + ")";
  }
}
