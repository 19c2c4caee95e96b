package io.cachedit.testing;

import io.cachedit.kernels.NativeScope;
import io.cachedit.models.common.Block;
import io.cachedit.models.common.BlockIO;
import io.cachedit.models.common.BlockList;
import io.cachedit.models.common.ForwardPattern;
import io.cachedit.models.common.StepContext;
import io.cachedit.models.common.Transformer;
import java.util.ArrayList;
import java.util.List;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/**
 * A transformer of real libtorch blocks with fixed (seeded) weights, one or more block lists of any
 * pattern, built so that cache decisions are predictable: block 0 of each list adds
 * {@link Args#probe()} to the hidden states, so the Fn=1 probe residual is exactly the probe, and the
 * block at {@link #midBlock} adds {@link Args#mid()} (for calibrator tests). Every other block is a
 * nonlinear map {@code x + tanh(x W) / 2} (plus encoder interaction per pattern).
 */
public class SyntheticTransformer implements Transformer, AutoCloseable {
  public static final int BATCH = 1;
  public static final int TOKENS = 8;
  public static final int TEXT_TOKENS = 4;
  public static final int CHANNELS = 16;

  /** Per-call arguments: the probe added by block 0 and the value added by the mid block (either may be null). */
  public record Args(Tensor probe, Tensor mid) {}

  private final List<BlockList<?>> lists = new ArrayList<>();
  private final NativeScope weights = NativeScope.owner("synthetic transformer weights");
  private final int midBlock;
  private int calls;

  /** One list named {@code transformer_blocks} of {@code blocks} blocks. */
  public SyntheticTransformer(ForwardPattern pattern, int blocks, long seed) {
    this(seed, 1, new Spec("transformer_blocks", pattern, blocks));
  }

  public record Spec(String name, ForwardPattern pattern, int blocks) {}

  public SyntheticTransformer(long seed, int midBlock, Spec... specs) {
    this.midBlock = midBlock;
    torch.manual_seed(seed);
    for (Spec spec : specs) {
      List<Block<Args>> blocks = new ArrayList<>();
      for (int i = 0; i < spec.blocks(); i++) {
        Tensor w = keep(torch.randn(CHANNELS, CHANNELS).mul(new Scalar(0.3)));
        Tensor v = keep(torch.randn(CHANNELS, CHANNELS).mul(new Scalar(0.3)));
        blocks.add(block(spec.pattern(), i, w, v));
      }
      lists.add(new BlockList<>(spec.name(), spec.pattern(), blocks));
    }
  }

  private Tensor keep(Tensor t) {
    return weights.keep(t);
  }

  private Block<Args> block(ForwardPattern pattern, int index, Tensor w, Tensor v) {
    return (hidden, encoder, args) -> {
      Tensor h;
      if (index == 0) {
        h = args.probe() == null ? hidden : hidden.add(args.probe());
      } else {
        Tensor x = hidden;
        if (pattern == ForwardPattern.PATTERN_2 && encoder != null) {
          x = hidden.add(encoder.mean(new long[] {1}, true, new org.bytedeco.pytorch.ScalarTypeOptional()));
        }
        h = hidden.add(torch.tanh(x.matmul(w)).mul(new Scalar(0.5)));
        if (index == midBlock && args.mid() != null) {
          h = h.add(args.mid());
        }
      }
      Tensor e = null;
      switch (pattern) {
        case PATTERN_0, PATTERN_1 -> e = encoder.add(torch.tanh(encoder.matmul(v)).mul(new Scalar(0.5)));
        case PATTERN_4, PATTERN_5 -> e = torch.tanh(hidden.narrow(1, 0, TEXT_TOKENS).matmul(v));
        default -> { }
      }
      return new BlockIO(h, e);
    };
  }

  @Override
  public List<BlockList<?>> blockLists() {
    return lists;
  }

  /** Runs every list in order, as a model's forward would. */
  @SuppressWarnings("unchecked")
  public BlockIO forward(Tensor hidden, Tensor encoder, Args args, StepContext step) {
    calls++;
    BlockIO io = new BlockIO(hidden, encoder);
    for (BlockList<?> list : lists) {
      BlockList<Args> l = (BlockList<Args>) list;
      Tensor e = l.pattern().feedsEncoder() ? io.encoder() : null;
      BlockIO out = l.forward(io.hidden(), e, args, step);
      io = new BlockIO(out.hidden(), out.encoder() != null ? out.encoder() : io.encoder());
    }
    return io;
  }

  public int calls() {
    return calls;
  }

  public static Tensor hiddenInput(long seed) {
    torch.manual_seed(seed);
    return torch.randn(BATCH, TOKENS, CHANNELS);
  }

  public static Tensor encoderInput(long seed) {
    torch.manual_seed(seed + 1000);
    return torch.randn(BATCH, TEXT_TOKENS, CHANNELS);
  }

  /** A probe tensor {@code value * ones} shaped like the hidden states. */
  public static Tensor constant(double value) {
    return torch.full(new long[] {BATCH, TOKENS, CHANNELS}, new Scalar(value));
  }

  @Override
  public void close() {
    weights.close();
  }
}
