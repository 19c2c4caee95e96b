package io.cachedit.cache;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.cachedit.CacheDit;
import java.util.stream.Stream;
import io.cachedit.error.ConfigException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** Step masks bit-exact against the table of docs/algorithms.md section 7 (computed by executing the reference). */
class StepMaskTest {
  static Stream<Arguments> specTable() {
    String[][] rows = {
        {"4", "1101", "1101", "1101", "1101"},
        {"6", "111001", "111001", "111001", "111001"},
        {"8", "11111011", "11110101", "11101001", "11001001"},
        {"9", "111110111", "111110101", "111101001", "111001001"},
        {"10", "1111011111", "1111011011", "1110100101", "1101001001"},
        {"12", "111101101111", "111101101001", "111010010011", "110100100011"},
        {"15", "111101101101101", "111101101001001", "111010010010001", "110100100010001"},
        {"16", "1111111101110011", "1111110110001001", "1111100000000001", "1100000000000001"},
        {"20", "11111111011100111001", "11111101100011000101", "11111101000000000001", "11110000000000000001"},
        {"25", "1111111101110011100110011", "1111110110001100011000111", "1111110100010000100000101",
            "1111001000001000000100001"},
        {"28", "1111111101110011100110010001", "1111110110001100011000110001", "1111110100010000100000100001",
            "1111001000001000000100000001"},
        {"30", "111111111111011100111001100101", "111111111011000110001100011001",
            "111111111010001000010000010001", "111111001000001000000100000001"},
        {"50", "11111111111111111111110011111000111110001110001101",
            "11111111111111110011100000111000001110000011100001",
            "11111111111001100000110000000110000000001100000001",
            "11111110001100000000011000000000001100000000000001"}};
    String[] policies = {"slow", "medium", "fast", "ultra"};
    Stream.Builder<Arguments> args = Stream.builder();
    for (String[] row : rows) {
      for (int p = 0; p < 4; p++) {
        args.add(Arguments.of(policies[p], Integer.parseInt(row[0]), row[p + 1]));
      }
    }
    return args.build();
  }

  @ParameterizedTest(name = "{0} x {1}")
  @MethodSource("specTable")
  void policyMask_matchesSpecTable(String policy, int steps, String expected) {
    assertEquals(expected, digits(CacheDit.stepsMask(policy, steps)));
    assertEquals(expected, digits(StepMask.policy(policy).resolve(steps)));
  }

  @Test
  void bins_specExample() {
    int[] mask = CacheDit.stepsMask(new int[] {6, 1, 1, 1, 1}, new int[] {1, 2, 5, 5, 5}, 28);
    assertEquals("1111110100100000100000100000", digits(mask));  // explicit bins do not force the last step
    assertEquals(28, CacheDit.stepsMask(new int[] {6, 1, 1, 1, 1}, new int[] {1, 2, 5, 5, 5}, 0).length);
  }

  @Test
  void invalidMasksAreRejectedWithClearMessages() {
    // config errors of the key steps_computation_mask, so a YAML loader can add the file
    ConfigException e = assertThrows(ConfigException.class, () -> CacheDit.stepsMask("turbo", 28));
    assertTrue(e.getMessage().contains("turbo") && e.getMessage().contains("slow"), e.getMessage());
    assertEquals("steps_computation_mask", e.field());
    assertThrows(ConfigException.class, () -> CacheDit.stepsMask("fast", 5));
    assertThrows(ConfigException.class, () -> CacheDit.stepsMask(new int[] {1}, new int[] {1}, 5));
    assertThrows(ConfigException.class, () -> StepMask.of(1, 2, 0));
    assertThrows(ConfigException.class, () -> StepMask.parse("11a0"));
    e = assertThrows(ConfigException.class, () -> StepMask.of(1, 1, 0).resolve(4));
    assertTrue(e.getMessage().contains("3 steps") && e.getMessage().contains("4 steps"), e.getMessage());
  }

  @Test
  void parseAcceptsDigitsAndPolicies() {
    assertEquals("1101", StepMask.parse("1101").toString());
    assertTrue(StepMask.parse("Fast").isPolicy());
  }

  @Test
  void quadraticMaskComputesExactlyNStepsAtQuadraticPositions() {
    // round(T (k/N)^2): 50 x 8 -> 0, 0.78, 3.13, 7.03, 12.5, 19.5, 28.1, 38.3
    assertEquals(positions(50, 0, 1, 3, 7, 13, 20, 28, 38), digits(StepMask.policy("quadratic:8").resolve(50)));
    assertEquals(positions(28, 0, 1, 2, 5, 9, 14, 21), digits(StepMask.parse("Quadratic:7").resolve(28)));
    assertEquals("1110", digits(StepMask.quadraticMask(3, 4)));  // 0, 0.44 -> bumped to 1, 1.78 -> 2
    for (int t = 1; t <= 60; t++) {
      for (int n = 1; n <= t; n++) {
        int[] mask = StepMask.quadraticMask(n, t);
        assertEquals(n, java.util.Arrays.stream(mask).sum(), n + " of " + t);
        assertEquals(1, mask[0], "step 0 always computes");
      }
    }
    assertEquals("quadratic:8", StepMask.parse("quadratic:8").toString());
  }

  @Test
  void quadraticMaskRejectsBadCounts() {
    for (String bad : new String[] {"quadratic:0", "quadratic:x", "quadratic:", "quadratic:-2"}) {
      ConfigException e = assertThrows(ConfigException.class, () -> StepMask.parse(bad));
      assertTrue(e.getMessage().contains("quadratic:N"), e.getMessage());
    }
    ConfigException e = assertThrows(ConfigException.class, () -> StepMask.policy("quadratic:9").resolve(8));
    assertTrue(e.getMessage().contains("1..8"), e.getMessage());
  }

  static String positions(int total, int... computed) {
    int[] mask = new int[total];
    for (int i : computed) {
      mask[i] = 1;
    }
    return digits(mask);
  }

  static String digits(int[] mask) {
    StringBuilder sb = new StringBuilder();
    for (int b : mask) {
      sb.append(b);
    }
    return sb.toString();
  }
}
