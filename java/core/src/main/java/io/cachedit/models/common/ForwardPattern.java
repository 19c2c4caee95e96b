package io.cachedit.models.common;

/**
 * The input/output contract of the blocks of one block list (docs/algorithms.md section 1.2). Cache-dit names six
 * patterns; with typed {@link BlockIO} the return order only matters for documentation, but the
 * other two properties decide how the engine runs and caches a list:
 *
 * <table>
 *   <caption>patterns</caption>
 *   <tr><th>pattern</th><th>block input</th><th>block output</th></tr>
 *   <tr><td>0</td><td>hidden, encoder</td><td>(hidden, encoder)</td></tr>
 *   <tr><td>1</td><td>hidden, encoder</td><td>(encoder, hidden)</td></tr>
 *   <tr><td>2</td><td>hidden, encoder</td><td>hidden only (encoder unchanged)</td></tr>
 *   <tr><td>3</td><td>hidden</td><td>hidden only</td></tr>
 *   <tr><td>4</td><td>hidden</td><td>(hidden, new encoder)</td></tr>
 *   <tr><td>5</td><td>hidden</td><td>(new encoder, hidden)</td></tr>
 * </table>
 *
 * For patterns 3-5 the encoder states are not fed to the blocks (any text conditioning travels in
 * the block arguments), and the "new encoder" a block of pattern 4/5 returns is not fed to the next
 * block: the list's output carries the last one.
 */
public enum ForwardPattern {
  PATTERN_0(true, false, false),
  PATTERN_1(false, false, false),
  PATTERN_2(false, true, false),
  PATTERN_3(false, true, true),
  PATTERN_4(true, false, true),
  PATTERN_5(false, false, true);

  private final boolean returnsHiddenFirst;
  private final boolean returnsHiddenOnly;
  private final boolean forwardsHiddenOnly;

  ForwardPattern(boolean returnsHiddenFirst, boolean returnsHiddenOnly, boolean forwardsHiddenOnly) {
    this.returnsHiddenFirst = returnsHiddenFirst;
    this.returnsHiddenOnly = returnsHiddenOnly;
    this.forwardsHiddenOnly = forwardsHiddenOnly;
  }

  /** Pattern by its number 0-5. */
  public static ForwardPattern of(int number) {
    if (number < 0 || number > 5) {
      throw new IllegalArgumentException("forward pattern must be 0..5, got " + number);
    }
    return values()[number];
  }

  public int number() {
    return ordinal();
  }

  /** Cache-dit's {@code Return_H_First}: the block's tuple starts with the hidden states. */
  public boolean returnsHiddenFirst() {
    return returnsHiddenFirst;
  }

  /** Cache-dit's {@code Return_H_Only}: blocks return only the hidden states (patterns 2, 3). */
  public boolean returnsHiddenOnly() {
    return returnsHiddenOnly;
  }

  /** Cache-dit's {@code Forward_H_only}: blocks do not receive the encoder states (patterns 3-5). */
  public boolean forwardsHiddenOnly() {
    return forwardsHiddenOnly;
  }

  /** Whether blocks take the encoder states as input and pass them along (patterns 0-2). */
  public boolean feedsEncoder() {
    return !forwardsHiddenOnly;
  }

  /** Whether blocks return encoder states (patterns 0, 1, 4, 5). */
  public boolean returnsEncoder() {
    return !returnsHiddenOnly;
  }
}
