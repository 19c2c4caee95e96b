package io.cachedit.parallel;

import io.cachedit.models.common.SequenceParallel;
import java.util.Arrays;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

/**
 * The {@link SequenceParallel} of one context-parallel group: splits as {@code torch.tensor_split}
 * (contiguous parts, the first {@code S mod P} one longer), gathers by all-gather.
 *
 * <p>Every rank splits the same replicated tensors, so every rank knows whether a split was even
 * without asking: the splitter remembers it until the forward's gather, and the attention asks
 * {@link #lengths} for every rank's sequence length, which exchanges lengths on the host-side group
 * only when a split since the last gather was uneven, or always with {@code ulysses_anything}
 * (never cached across calls: a stale length would desynchronise the collectives).
 */
final class SequenceSplitter implements SequenceParallel {
  private final CommGroup group;
  private final CommGroup host;
  private final boolean anything;
  private volatile boolean unevenSinceGather;

  /**
   * @param group the ranks that share the sequence, in sequence order
   * @param host a host-side group over the same ranks, for length exchanges
   */
  SequenceSplitter(CommGroup group, CommGroup host, boolean anything) {
    this.group = group;
    this.host = host;
    this.anything = anything;
  }

  CommGroup group() {
    return group;
  }

  @Override
  public boolean active() {
    return true;
  }

  @Override
  public int parts() {
    return group.size();
  }

  @Override
  public int index() {
    return group.rank();
  }

  @Override
  public Tensor split(Tensor full, int dim) {
    long length = full.size(dim);
    if (length % parts() != 0) {
      unevenSinceGather = true;
    }
    return full.narrow(dim, SequenceParallel.partStart(length, parts(), index()),
        SequenceParallel.partLength(length, parts(), index()));
  }

  @Override
  public Tensor gather(Tensor part, int dim, long fullLength) {
    long[] lengths = new long[parts()];
    for (int i = 0; i < lengths.length; i++) {
      lengths[i] = SequenceParallel.partLength(fullLength, parts(), i);
    }
    if (part.size(dim) != lengths[index()]) {
      throw new IllegalStateException("rank " + group.globalRank(index()) + " holds " + part.size(dim)
          + " tokens to gather, but a sequence of " + fullLength + " split over " + parts() + " gives it "
          + lengths[index()]);
    }
    Tensor whole = gather(group, part, dim, lengths);
    unevenSinceGather = false;
    return whole;
  }

  @Override
  public void allReduceSum(Tensor t) {
    group.allReduceSum(t);
  }

  /**
   * Every rank's length of the sequence an attention call sees ({@code local} is this rank's): equal
   * when every split since the last gather was even (no exchange), else exchanged.
   */
  long[] lengths(long local) {
    if (anything || unevenSinceGather) {
      return host.allGatherLongs(local);
    }
    long[] all = new long[parts()];
    Arrays.fill(all, local);
    return all;
  }

  /** Parts of {@code lengths[i]} along {@code dim} from every member, concatenated in member order. */
  static Tensor gather(CommGroup group, Tensor part, int dim, long[] lengths) {
    long max = Arrays.stream(lengths).max().orElse(0);
    Tensor padded = part;
    if (part.size(dim) < max) {
      long[] shape = part.sizes().vec().get();
      shape[dim] = max - part.size(dim);
      padded = torch.cat(new TensorVector(part, torch.zeros(shape, part.options())), dim);
    }
    Tensor all = group.allGather(padded.contiguous());  // [P, ..., max, ...]
    TensorVector pieces = new TensorVector();
    for (int i = 0; i < lengths.length; i++) {
      Tensor p = all.select(0, i);
      pieces.push_back(lengths[i] == max ? p : p.narrow(dim, 0, lengths[i]));
    }
    return torch.cat(pieces, dim);
  }

  @Override
  public String toString() {
    return "SequenceSplitter[" + group + (anything ? ", uneven always" : "") + "]";
  }
}
