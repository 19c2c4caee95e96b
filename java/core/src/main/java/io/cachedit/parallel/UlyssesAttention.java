package io.cachedit.parallel;

import io.cachedit.kernels.Kernels;
import io.cachedit.kernels.Wire;
import io.cachedit.models.common.AttentionBackend;
import org.bytedeco.pytorch.MemoryFormatOptional;
import org.bytedeco.pytorch.ScalarTypeOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import java.util.function.Supplier;

/**
 * Ulysses attention (docs/parallelism.md): each rank holds its part of the sequence with all heads;
 * one all-to-all gives every rank the whole sequence for its group of heads, attention runs there
 * (through the model's own backend, or ring attention for USP), and a second all-to-all brings each
 * rank's tokens back with all heads.
 *
 * <p>Packing and unpacking are cachedit's fused kernels: a head count the group does not divide is
 * padded with zero heads ({@code ceil(H / P)} per rank; e.g. 4 heads on 3 ranks: 2, 2 and 0 real
 * ones), uneven sequence parts travel with per-rank split sizes, and with {@code float8} queries,
 * values and outputs travel as float8 e4m3 rows with a scale each (keys in 16 bits). The three
 * exchanges of a call are in flight together. Cross-attention to a context every rank holds whole is
 * computed locally.
 */
final class UlyssesAttention implements AttentionBackend {
  private final CommGroup group;
  private final SequenceSplitter splitter;
  private final AttentionBackend inner;
  private final Kernels kernels;
  private final boolean float8;
  private final boolean async;
  private final WireBytes wireBytes;

  /**
   * @param group the ranks that exchange heads (the Ulysses group), in sequence order
   * @param splitter the sequence split of the whole context-parallel group
   * @param inner attention over the whole sequence for this rank's heads
   */
  UlyssesAttention(CommGroup group, SequenceSplitter splitter, AttentionBackend inner, Kernels kernels,
      boolean float8, boolean async, WireBytes wireBytes) {
    this.group = group;
    this.wireBytes = wireBytes;
    this.splitter = splitter;
    this.inner = inner;
    this.kernels = kernels;
    this.float8 = float8;
    this.async = async;
  }

  @Override
  public Tensor attend(Tensor q, Tensor k, Tensor v, Tensor mask) {
    return start(() -> v, () -> q, () -> k, mask).get();
  }

  /**
   * With {@code ulysses_async} each projection's exchange starts before the next projection is
   * computed, and the output's exchange is left in flight for the caller; without it the three
   * projections are computed first (their exchanges still travel together).
   */
  @Override
  public Result attendDeferred(Supplier<Tensor> v, Supplier<Tensor> q, Supplier<Tensor> k, Tensor mask) {
    if (async) {
      return start(v, q, k, mask);
    }
    Tensor vv = v.get();
    Tensor qq = q.get();
    Tensor kk = k.get();
    Tensor o = start(() -> vv, () -> qq, () -> kk, mask).get();
    return () -> o;
  }

  private Result start(Supplier<Tensor> vs, Supplier<Tensor> qs, Supplier<Tensor> ks, Tensor mask) {
    Tensor v = vs.get();
    long local = v.size(2);
    long[] lengths = memberLengths(local);
    Exchange vx = new Exchange(v, lengths, float8 ? Wire.FP8_F32_SCALE : Wire.RAW, false, WireBytes.Kind.V);
    Tensor q = qs.get();
    Exchange qx = new Exchange(q, lengths, float8 ? Wire.FP8_F32_SCALE : Wire.RAW, false, WireBytes.Kind.Q);
    Tensor k = ks.get();
    long heads = q.size(1);
    if (q.size(2) != local || k.size(2) != local) {
      throw new IllegalArgumentException("Ulysses attention expects queries, keys and values over this rank's "
          + local + " tokens, got " + q.size(2) + " and " + k.size(2) + "; cross-attention goes through attendCross");
    }
    if (k.size(1) != heads || v.size(1) != heads) {
      throw new IllegalArgumentException("Ulysses attention needs as many key and value heads as query heads, got "
          + k.size(1) + ", " + v.size(1) + " and " + heads);
    }
    Exchange kx = new Exchange(k, lengths, Wire.RAW, float8, WireBytes.Kind.K);
    Tensor vAll = vx.result();
    Tensor qAll = qx.result();
    Tensor kAll = kx.result();
    long keep = qx.keep;
    Tensor m = mask == null ? null : gatherMask(mask, lengths, heads, qx.headsPerRank, keep, local);
    Tensor o = keep == 0 ? torch.empty(new long[] {q.size(0), 0, qAll.size(2), q.size(3)}, q.options(),
        new MemoryFormatOptional()) : inner.attend(qAll, kAll, vAll, m);
    return back(o, lengths, heads, qx.headsPerRank, local, q.scalar_type().intern());
  }

  @Override
  public Tensor attendCross(Tensor q, Tensor k, Tensor v, Tensor mask) {
    return inner.attendCross(q, k, v, mask);
  }

  /** The members' lengths: this group's entries of the context-parallel group's lengths. */
  private long[] memberLengths(long local) {
    long[] all = splitter.lengths(local);
    if (splitter.group() == group) {
      return all;
    }
    long[] mine = new long[group.size()];
    for (int i = 0; i < mine.length; i++) {
      mine[i] = all[splitter.group().ranks().indexOf(group.globalRank(i))];
    }
    return mine;
  }

  /** One tensor's heads-to-ranks exchange, started on construction. */
  private final class Exchange {
    final long headsPerRank;
    final long keep;
    final Tensor received;
    final Wire wire;
    final ScalarType dtype;
    final ScalarType wireDtype;
    final CommGroup.Pending pending;

    Exchange(Tensor x, long[] lengths, Wire wire, boolean sixteenBit, WireBytes.Kind kind) {
      int p = group.size();
      long b = x.size(0);
      long h = x.size(1);
      long s = x.size(2);
      this.dtype = x.scalar_type().intern();
      Tensor send = sixteenBit && dtype == ScalarType.Float ? x.to(ScalarType.BFloat16) : x;
      this.wireDtype = send.scalar_type().intern();
      this.wire = wire;
      this.headsPerRank = (h + p - 1) / p;
      this.keep = Math.max(0, Math.min(headsPerRank, h - group.rank() * headsPerRank));
      Tensor packed = kernels.packHeads(send.transpose(1, 2), p, wire);  // [P, S, B, Hl, row]
      long row = packed.size(4);
      long total = 0;
      for (long l : lengths) {
        total += l;
      }
      this.received = torch.empty(new long[] {total, b, headsPerRank, row}, packed.options(),
          new MemoryFormatOptional());
      long[] inSplits = new long[p];
      java.util.Arrays.fill(inSplits, s);
      long before = group.bytesSent();
      this.pending = group.startAllToAll(received, packed.view(p * s, b, headsPerRank, row), lengths, inSplits);
      wireBytes.add(kind, group.bytesSent() - before);
    }

    /** [B, keep, S_all, D] in the input's dtype. */
    Tensor result() {
      pending.waitFor();
      Tensor t = kernels.unpackSeq(received, wire, wireDtype, keep).transpose(1, 2);
      return wireDtype == dtype ? t : t.to(dtype);
    }
  }

  /** The output back: each rank's tokens with all heads, [B, H, S_local, D], once the exchange is done. */
  private Result back(Tensor o, long[] lengths, long heads, long headsPerRank, long local, ScalarType dtype) {
    int p = group.size();
    long b = o.size(0);
    long d = o.size(3);
    Wire wire = float8 ? Wire.FP8_BF16_SCALE : Wire.RAW;
    Tensor packed;
    if (o.size(1) == 0) {  // only padded heads here: zero rows in the wire format
      long row = wire == Wire.RAW ? d : wire.rowBytes(d, 0);
      packed = torch.zeros(new long[] {o.size(2), b, headsPerRank, row},
          o.options().dtype(new ScalarTypeOptional(wire == Wire.RAW ? dtype : ScalarType.Byte)));
    } else {
      packed = kernels.packSeq(o.transpose(1, 2), headsPerRank, wire);  // [S_all, B, Hl, row]
    }
    long row = packed.size(3);
    Tensor received = torch.empty(new long[] {p * local, b, headsPerRank, row}, packed.options(),
        new MemoryFormatOptional());
    long[] outSplits = new long[p];
    java.util.Arrays.fill(outSplits, local);
    long before = group.bytesSent();
    CommGroup.Pending pending = group.startAllToAll(received, packed, outSplits, lengths);
    wireBytes.add(WireBytes.Kind.O, group.bytesSent() - before);
    return new Result() {
      private Tensor out;

      @Override
      public Tensor get() {
        if (out == null) {
          pending.waitFor();
          out = kernels.unpackHeads(received.view(p, local, b, headsPerRank, row), wire, dtype, heads)
              .transpose(1, 2);
        }
        return out;
      }
    };
  }

  /**
   * A mask for the gathered sequence: key (and query, where not broadcast) dimensions gathered in rank
   * order, heads narrowed to this rank's group.
   */
  private Tensor gatherMask(Tensor mask, long[] lengths, long heads, long headsPerRank, long keep, long local) {
    if (mask.dim() != 4) {
      throw new IllegalArgumentException("Ulysses attention takes a 4-dimensional mask [B, H or 1, Sq or 1, Sk], got "
          + java.util.Arrays.toString(mask.sizes().vec().get()));
    }
    boolean bool = mask.scalar_type().intern() == ScalarType.Bool;
    Tensor m = bool ? mask.to(ScalarType.Byte) : mask;  // Gloo moves bytes, not booleans
    if (m.size(3) == local) {
      m = SequenceSplitter.gather(group, m.contiguous(), 3, lengths);
    }
    if (m.size(2) == local && local != 1) {
      m = SequenceSplitter.gather(group, m.contiguous(), 2, lengths);
    }
    if (bool) {
      m = m.to(ScalarType.Bool);
    }
    if (m.size(1) == heads && heads > 1) {
      m = keep == 0 ? m.narrow(1, 0, 0) : m.narrow(1, group.rank() * headsPerRank, keep);
    }
    return m;
  }

  @Override
  public String toString() {
    return "ulysses(" + group.size() + (float8 ? ", float8" : "") + (async ? ", async" : "") + ", inner " + inner
        + ")";
  }
}
