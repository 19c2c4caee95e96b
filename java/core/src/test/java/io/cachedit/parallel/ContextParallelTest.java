package io.cachedit.parallel;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.cachedit.kernels.NativeRuntime;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Context parallelism across real processes on 127.0.0.1 (Gloo): every mode of every model with a
 * plan equals the single-process output, caches decide alike on every rank, a lost rank is named.
 */
class ContextParallelTest {
  /** fp32 agreement of a parallel forward with the single-process one (different summation orders). */
  static final double FP32_TOLERANCE = 1e-5;
  /** FP8 e4m3 keeps 3 mantissa bits: relative rounding error up to 2^-4 per value. */
  static final double E4M3_RELATIVE = 1.0 / 16;

  @BeforeAll
  static void warm() {
    NativeRuntime.initialize();  // the javacpp cache is extracted once, before the ranks start together
  }

  private static void assertModes(LocalRanks.Run run, int world, String suite) {
    assertArrayEquals(new int[world], run.exitCodes(), run::describe);
    List<String> failures = new ArrayList<>();
    int expected = CpWorker.configs(suite).size() * CpWorker.MODELS.length;
    for (int r = 0; r < world; r++) {
      List<Map<String, Object>> lines = run.lines().get(r);
      assertEquals(expected, lines.size(), "rank " + r + " scenarios\n" + run.describe());
      for (Map<String, Object> l : lines) {
        String config = (String) l.get("config");
        boolean fp8 = config.contains("float8");
        // FP8: one forward (later steps feed the error back into the latents)
        double diff = ((Number) l.get(fp8 ? "firstDiff" : "maxDiff")).doubleValue();
        double abs = ((Number) l.get(fp8 ? "firstAbs" : "maxAbs")).doubleValue();
        boolean ok = fp8 ? diff <= E4M3_RELATIVE * abs && diff > 0 : diff <= FP32_TOLERANCE;
        if (!ok || !Boolean.TRUE.equals(l.get("restored"))) {
          failures.add("rank " + r + " " + l.get("model") + " " + config + ": max |diff| " + diff + " (max |out| "
              + abs + ")" + (Boolean.TRUE.equals(l.get("restored")) ? "" : ", single-rank output not restored"));
        }
      }
    }
    assertTrue(failures.isEmpty(), String.join("\n", failures));
  }

  @Test
  void twoRanks_everyModeOfEveryModelEqualsTheSingleProcessOutput(@TempDir Path dir) {
    LocalRanks.Run run = LocalRanks.run(2, "modes-2", Duration.ofMinutes(4), Map.of(), dir);
    assertModes(run, 2, "modes-2");
  }

  /** 2 heads on 3 ranks (one rank holds only padding heads), sequences 3 does not divide. */
  @Test
  void threeRanks_headsAndLengthsThreeDoesNotDivide(@TempDir Path dir) {
    LocalRanks.Run run = LocalRanks.run(3, "modes-3", Duration.ofMinutes(4), Map.of(), dir);
    assertModes(run, 3, "modes-3");
  }

  @Test
  void fourRanks_uspTwoByTwoAndUlyssesFour(@TempDir Path dir) {
    LocalRanks.Run run = LocalRanks.run(4, "modes-4", Duration.ofMinutes(5), Map.of(), dir);
    assertModes(run, 4, "modes-4");
  }

  /**
   * Caching enabled with a parallelism section (the facade joins the group from the environment):
   * every rank caches the same steps, the same as one process, with the same diffs.
   */
  @Test
  void caching_decidesAlikeOnEveryRankAndAsOneProcess(@TempDir Path dir) {
    LocalRanks.Run run = LocalRanks.run(3, "cache", Duration.ofMinutes(4), Map.of(), dir);
    assertArrayEquals(new int[3], run.exitCodes(), run::describe);
    for (int r = 0; r < 3; r++) {
      List<Map<String, Object>> lines = run.lines().get(r);
      assertEquals(2, lines.size(), run.describe());
      for (Map<String, Object> l : lines) {
        List<?> single = (List<?>) l.get("singleCached");
        assertTrue(single.size() >= 3 && single.size() <= 8, l.get("model") + " caches some steps: " + l);
        assertEquals(single, l.get("parallelCached"), "rank " + r + " " + l.get("model") + " decisions");
        List<?> a = (List<?>) l.get("singleDiffs");
        List<?> b = (List<?>) l.get("parallelDiffs");
        assertEquals(a.size(), b.size());
        for (int i = 0; i < a.size(); i++) {
          assertEquals(((Number) a.get(i)).doubleValue(), ((Number) b.get(i)).doubleValue(), 1e-5,
              "rank " + r + " diff " + i);
        }
        assertTrue(((Number) l.get("maxDiff")).doubleValue() <= FP32_TOLERANCE, l.toString());
      }
      assertEquals(run.lines().get(0).get(0).get("parallelDiffs"), run.lines().get(r).get(0).get("parallelDiffs"),
          "rank " + r + " saw the all-reduced diffs of rank 0, bit for bit");
    }
  }

  /**
   * Rank 1 dies after two steps of a four-step generation, without closing anything; ranks 0 and 2
   * fail in the next step's first exchange naming it, well within the timeout.
   */
  @Test
  void aLostRankIsNamedByTheOthersWithinTheTimeout(@TempDir Path dir) {
    LocalRanks.Run run = LocalRanks.run(3, "fault", Duration.ofMinutes(3),
        Map.of(ProcessGroups.TIMEOUT_VARIABLE, "30"), dir);
    assertEquals(17, run.exitCodes()[1], run.describe());
    for (int r : new int[] {0, 2}) {
      assertEquals(0, run.exitCodes()[r], run.describe());
      List<Map<String, Object>> lines = run.lines().get(r);
      assertEquals(2, lines.size(), run.describe());
      Map<String, Object> failed = lines.get(1);
      assertEquals("failed", failed.get("phase"), run.describe());
      String message = (String) failed.get("message");
      assertTrue(message.contains("rank 1 is lost"), message);
      assertEquals(1, ((Number) failed.get("lostRank")).intValue(), message);
      assertTrue(((Number) failed.get("ms")).longValue() < 30_000, "failed within the timeout: " + failed);
    }
  }

  /**
   * Rank 0 (the store's host) leaves while rank 1 waits in an all-to-all with it: rank 1 fails naming
   * rank 0, quickly, and both processes end normally.
   */
  @Test
  void aRankThatLeavesMidCollectiveIsNamedAndNothingCrashes(@TempDir Path dir) {
    LocalRanks.Run run = LocalRanks.run(2, "close-early", Duration.ofMinutes(2),
        Map.of(ProcessGroups.TIMEOUT_VARIABLE, "30"), dir);
    assertArrayEquals(new int[2], run.exitCodes(), run::describe);
    Map<String, Object> failed = run.lines().get(1).get(0);
    assertEquals("failed", failed.get("phase"), run.describe());
    assertTrue(((String) failed.get("message")).contains("rank 0 is lost"), failed.toString());
    assertTrue(run.millis() < 25_000, "ended in " + run.millis() + " ms, well within the 30 s timeout");
  }

  @Test
  void nativeMemoryDoesNotGrowOverFiftyParallelGenerations(@TempDir Path dir) {
    LocalRanks.Run run = LocalRanks.run(2, "memory", Duration.ofMinutes(4), Map.of(), dir);
    assertArrayEquals(new int[2], run.exitCodes(), run::describe);
    for (int r = 0; r < 2; r++) {
      Map<String, Object> m = run.lines().get(r).get(0);
      long grown = ((Number) m.get("after50")).longValue() - ((Number) m.get("after10")).longValue();
      System.out.printf("rank %d: native memory %.1f MB after 10 parallel generations, %.1f MB after 50%n", r,
          ((Number) m.get("after10")).doubleValue() / (1 << 20), ((Number) m.get("after50")).doubleValue() / (1 << 20));
      assertTrue(grown < 24L << 20, "rank " + r + " native memory grew by " + (grown >> 10) + " KiB over 40 "
          + "generations: " + m);
      assertEquals(m.get("kept10"), m.get("kept50"), "kept tensors leak: " + m);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Tensor parallelism

  private static void assertTensorParallel(LocalRanks.Run run, int world, String suite) {
    assertArrayEquals(new int[world], run.exitCodes(), run::describe);
    List<String> failures = new ArrayList<>();
    int expected = CpWorker.tensorConfigs(suite).size() * CpWorker.MODELS.length;
    for (int r = 0; r < world; r++) {
      List<Map<String, Object>> lines = run.lines().get(r);
      assertEquals(expected, lines.size(), "rank " + r + " scenarios\n" + run.describe());
      for (Map<String, Object> l : lines) {
        double diff = ((Number) l.get("maxDiff")).doubleValue();
        int tp = Integer.parseInt(((String) l.get("config")).replaceAll(".*tp=(\\d+).*", "$1"));
        double weights = ((Number) l.get("weightBytes")).doubleValue() / ((Number) l.get("wholeBytes")).doubleValue();
        System.out.printf("rank %d %s %s: max |diff| %.2e, weight bytes %.3f of one process, %d bytes sent%n", r,
            l.get("model"), l.get("config"), diff, weights, ((Number) l.get("tpBytes")).longValue());
        if (!(diff <= FP32_TOLERANCE)) {
          failures.add("rank " + r + " " + l.get("model") + " " + l.get("config") + ": max |diff| " + diff);
        }
        // each rank holds its 1/tp share of every split tensor and nothing else twice
        if (((Number) l.get("weightBytes")).longValue() != ((Number) l.get("expectedBytes")).longValue()
            || !(weights < 1.0 / tp + 0.3)) {
          failures.add("rank " + r + " " + l.get("model") + " " + l.get("config") + ": holds " + l.get("weightBytes")
              + " bytes of weights, expected " + l.get("expectedBytes") + " (" + weights + " of the whole)");
        }
      }
    }
    assertTrue(failures.isEmpty(), String.join("\n", failures));
  }

  @Test
  void tensorParallelTwo_everyModelEqualsTheSingleProcessOutput(@TempDir Path dir) {
    assertTensorParallel(LocalRanks.run(2, "tp-2", Duration.ofMinutes(4), Map.of(), dir), 2, "tp-2");
  }

  @Test
  void tensorParallelThree_everyModelEqualsTheSingleProcessOutput(@TempDir Path dir) {
    assertTensorParallel(LocalRanks.run(3, "tp-3", Duration.ofMinutes(4), Map.of(), dir), 3, "tp-3");
  }

  @Test
  void hybridContextTimesTensor_onFourRanksEqualsTheSingleProcessOutput(@TempDir Path dir) {
    assertTensorParallel(LocalRanks.run(4, "hybrid-4", Duration.ofMinutes(5), Map.of(), dir), 4, "hybrid-4");
  }

  /** Caching on tensor-parallel models: every rank caches the steps one process caches. */
  @Test
  void tensorParallelCaching_decidesAsOneProcess(@TempDir Path dir) {
    LocalRanks.Run run = LocalRanks.run(2, "tp-cache", Duration.ofMinutes(4), Map.of(), dir);
    assertArrayEquals(new int[2], run.exitCodes(), run::describe);
    for (int r = 0; r < 2; r++) {
      for (Map<String, Object> l : run.lines().get(r)) {
        assertEquals(l.get("singleCached"), l.get("parallelCached"), "rank " + r + " " + l);
        assertTrue(!((List<?>) l.get("parallelCached")).isEmpty(), "the scenario caches steps: " + l);
        assertTrue(((Number) l.get("maxDiff")).doubleValue() <= FP32_TOLERANCE, "rank " + r + " " + l);
      }
      assertEquals(run.lines().get(0).get(0).get("parallelDiffs"), run.lines().get(r).get(0).get("parallelDiffs"),
          "the ranks' diffs are the same bits");
    }
  }

  /**
   * CFG parallelism: a true-CFG FLUX generation with its cond and uncond branches on two ranks draws
   * the one-process latents; cached, each rank's branch caches the steps that branch caches in one
   * process (each branch keeps its own cache state).
   */
  @Test
  void cfgParallel_sameLatentsAndEachBranchCachesAsInOneProcess(@TempDir Path dir) {
    LocalRanks.Run run = LocalRanks.run(2, "cfg", Duration.ofMinutes(4), Map.of(), dir);
    assertArrayEquals(new int[2], run.exitCodes(), run::describe);
    for (int r = 0; r < 2; r++) {
      Map<String, Object> l = run.lines().get(r).get(0);
      System.out.println("rank " + r + " " + l);
      assertTrue(((Number) l.get("plainDiff")).doubleValue() <= FP32_TOLERANCE, l::toString);
      assertTrue(((Number) l.get("cachedDiff")).doubleValue() <= FP32_TOLERANCE, l::toString);
      String branch = r == 0 ? "Cond" : "Uncond";
      assertEquals(l.get("single" + branch), l.get("parallel" + branch), "rank " + r + " caches its branch: " + l);
      assertTrue(!((List<?>) l.get("parallel" + branch)).isEmpty(), "the scenario caches steps: " + l);
      assertEquals(24L, ((Number) l.get("gathers")).longValue(), "one all-gather per step of two generations: " + l);
      assertEquals(Boolean.TRUE, run.lines().get(r).get(1).get("restored"), "one rank again after close");
    }
  }
}
