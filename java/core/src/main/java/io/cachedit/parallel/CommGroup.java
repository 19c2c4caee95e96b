package io.cachedit.parallel;

import io.cachedit.error.DistributedException;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Backend;
import org.bytedeco.pytorch.LongVector;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.Work;
import org.bytedeco.pytorch.global.torch;

/**
 * A communicator over a set of ranks (the world, the host-side group, or a subgroup of a mesh):
 * collectives on c10d's Gloo backend for CPU tensors and NCCL for CUDA tensors. Blocking calls
 * return when done; {@code start*} calls return a {@link Pending} to wait on, so communication
 * overlaps compute. A failure is a {@link DistributedException} that names the operation, the group
 * and, where the heartbeats tell, the lost rank.
 *
 * <p>Every member must issue the same collectives in the same order. Counts the bytes this rank sends
 * to others, for the wire benchmarks.
 */
public final class CommGroup {
  private final ProcessGroups owner;
  private final String name;
  private final List<Integer> ranks;
  private final int rank;  // in this group
  private final Backend gloo;
  private volatile Backend nccl;
  private final AtomicLong bytesSent = new AtomicLong();
  private final AtomicLong calls = new AtomicLong();
  private final AtomicLong waitNanos = new AtomicLong();
  private final List<org.bytedeco.javacpp.Pointer> stores = new java.util.ArrayList<>();  // released after gloo

  CommGroup(ProcessGroups owner, String name, List<Integer> ranks, int globalRank) {
    this.owner = owner;
    this.name = name;
    this.ranks = List.copyOf(ranks);
    this.rank = this.ranks.indexOf(globalRank);
    this.gloo = owner.gloo(name, rank, ranks.size(), stores);
  }

  public String name() {
    return name;
  }

  /** This process's index in the group. */
  public int rank() {
    return rank;
  }

  public int size() {
    return ranks.size();
  }

  /** The members' global ranks, ascending. */
  public List<Integer> ranks() {
    return ranks;
  }

  /** The global rank of member {@code index}. */
  public int globalRank(int index) {
    return ranks.get(index);
  }

  /** Bytes this rank has sent to other members so far. */
  public long bytesSent() {
    return bytesSent.get();
  }

  /**
   * Nanoseconds this rank spent blocked waiting for operations of this group to complete: the
   * communication that computation did not hide.
   */
  public long waitNanos() {
    return waitNanos.get();
  }

  /** Collectives and point-to-point operations issued so far. */
  public long calls() {
    return calls.get();
  }

  private Backend backend(Tensor t) {
    if (!t.is_cuda()) {
      return gloo;
    }
    Backend b = nccl;
    if (b == null) {
      synchronized (this) {
        if (nccl == null) {
          nccl = owner.nccl(name, rank, size());
        }
        b = nccl;
      }
    }
    return b;
  }

  /** Sums {@code t} over the group, in place. */
  public void allReduceSum(Tensor t) {
    calls.incrementAndGet();
    bytesSent.addAndGet(t.nbytes() * (size() - 1) / Math.max(1, size()));
    run("all-reduce", () -> backend(t).allreduce(new TensorVector(t))).waitFor();  // c10d's default op: SUM
  }

  /**
   * Every member's {@code t} (equal shapes) stacked along a new first dimension: [size, ...t's shape].
   */
  public Tensor allGather(Tensor t) {
    Tensor in = (t.dim() == 0 ? t.reshape(1) : t).contiguous();
    long[] shape = in.sizes().vec().get();
    long[] flat = shape.clone();
    flat[0] *= size();  // c10d gathers into one tensor of the members' inputs concatenated along dim 0
    long[] stacked = new long[shape.length + 1];
    stacked[0] = size();
    System.arraycopy(shape, 0, stacked, 1, shape.length);
    Tensor result = torch.empty(flat, in.options(), new org.bytedeco.pytorch.MemoryFormatOptional());
    calls.incrementAndGet();
    bytesSent.addAndGet(in.nbytes() * (size() - 1));
    run("all-gather", () -> backend(in)._allgather_base(result, in)).waitFor();
    return result.view(stacked);
  }

  /** Every member's {@code value}, in member order: a small host-side exchange. */
  public long[] allGatherLongs(long value) {
    try (PointerScope scope = new PointerScope()) {
      Tensor t = torch.tensor(new long[] {value});
      Tensor all = allGather(t);
      long[] out = new long[size()];
      for (int i = 0; i < out.length; i++) {
        out[i] = all.get(i).get(0).item_long();
      }
      return out;
    }
  }

  /**
   * Starts an all-to-all of the rows (dimension 0) of {@code in} into {@code out}: member {@code j}
   * receives {@code inSplits[j]} rows and this rank receives {@code outSplits[i]} rows from member
   * {@code i}, in member order. Null splits mean equal parts. Both tensors must be contiguous and
   * stay alive until the returned operation is waited on.
   */
  public Pending startAllToAll(Tensor out, Tensor in, long[] outSplits, long[] inSplits) {
    calls.incrementAndGet();
    long rowBytes = in.numel() == 0 ? 0 : in.nbytes() / Math.max(1, in.size(0));
    long own = inSplits == null ? in.size(0) / size() : inSplits[rank];
    bytesSent.addAndGet(in.nbytes() - own * rowBytes);
    return run("all-to-all", () -> backend(in).alltoall_base(out, in, splits(outSplits), splits(inSplits)));
  }

  /** Starts sending {@code t} to member {@code peer}. */
  public Pending startSend(Tensor t, int peer, int tag) {
    calls.incrementAndGet();
    bytesSent.addAndGet(t.nbytes());
    return run("send to rank " + globalRank(peer), () -> backend(t).send(new TensorVector(t), peer, tag));
  }

  /** Starts receiving into {@code t} from member {@code peer}. */
  public Pending startReceive(Tensor t, int peer, int tag) {
    calls.incrementAndGet();
    return run("receive from rank " + globalRank(peer), () -> backend(t).recv(new TensorVector(t), peer, tag));
  }

  /** Waits until every member got here. */
  public void barrier() {
    calls.incrementAndGet();
    run("barrier", gloo::barrier).waitFor();
  }

  private static LongVector splits(long[] s) {
    return s == null ? new LongVector() : new LongVector(s);
  }

  private interface Call {
    Work start();
  }

  private Pending run(String op, Call call) {
    long t0 = System.nanoTime();
    try {
      return new Pending(this, op, call.start(), t0);
    } catch (RuntimeException e) {
      throw failure(op, e, t0);
    }
  }

  DistributedException failure(String op, Throwable e, long startNanos) {
    long ms = (System.nanoTime() - startNanos) / 1_000_000;
    List<Integer> lost = owner.lostRanks(ranks);
    String who = lost.isEmpty() ? "no rank's heartbeat stopped (a peer may be stuck; the timeout is "
        + owner.timeout().toSeconds() + " s)" : (lost.size() == 1 ? "rank " + lost.get(0) + " is lost"
        : "ranks " + lost + " are lost") + " (heartbeat stopped)";
    return new DistributedException(lost.isEmpty() ? -1 : lost.get(0), op + " on group " + name + " " + ranks
        + " failed on rank " + globalRank(rank) + " after " + ms + " ms: " + who + "; " + oneLine(e), e);
  }

  /** The first line of a native error, without its source location and backtrace. */
  static String oneLine(Throwable e) {
    String m = e.getMessage() == null ? e.toString() : e.getMessage();
    String first = m.lines().filter(l -> !l.isBlank()).findFirst().orElse(m).trim();
    return first.replaceAll("^\\[[^\\]]*\\.(cc|cpp|h):\\d+\\]\\s*", "");
  }

  void close() {
    gloo.releaseReference();  // created owned by ProcessGroups
    if (nccl != null) {
      nccl.releaseReference();
    }
    stores.forEach(org.bytedeco.javacpp.Pointer::releaseReference);
  }

  @Override
  public String toString() {
    return "CommGroup[" + name + " " + ranks + ", rank " + rank + "]";
  }

  /** An operation in flight. */
  public static final class Pending {
    private final CommGroup group;
    private final String op;
    private final Work work;
    private final long start;
    private boolean done;

    Pending(CommGroup group, String op, Work work, long start) {
      this.group = group;
      this.op = op;
      this.work = work;
      this.start = start;
    }

    /** Blocks until the operation completed; a failure is a {@link DistributedException}. Idempotent. */
    public void waitFor() {
      if (done) {
        return;
      }
      long t0 = System.nanoTime();
      try {
        work._wait();
        done = true;
      } catch (RuntimeException e) {
        throw group.failure(op, e, start);
      } finally {
        group.waitNanos.addAndGet(System.nanoTime() - t0);
        if (done) {
          work.close();
        }
      }
    }

    @Override
    public String toString() {
      return op + " on " + group.name + (done ? " (done)" : " (in flight)");
    }
  }
}
