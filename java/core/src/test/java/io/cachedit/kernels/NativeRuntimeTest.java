package io.cachedit.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.cachedit.error.ConfigException;
import org.junit.jupiter.api.Test;

/** The one compute pool: what the runtime set, sized on request, reported as it applies. */
class NativeRuntimeTest {
  @Test
  void openBlasRunsInsideLibtorchsPoolAndTheReportSaysWhatApplied() {
    NativeRuntime.initialize();
    String report = NativeRuntime.describe();
    String given = System.getenv("OPENBLAS_NUM_THREADS");
    if (given == null) {
      // the report is the truth either way: cachedit set it before OpenBLAS loaded, or OpenBLAS (another test
      // touching libtorch first, in this shared JVM) was loaded before and the setting could not apply
      if (NativeEnvironment.getenv("OPENBLAS_NUM_THREADS") != null) {
        assertEquals("1", NativeEnvironment.getenv("OPENBLAS_NUM_THREADS"));
        assertTrue(report.contains("OpenBLAS threads: 1 (inside libtorch's pool"), report);
      } else {
        assertTrue(report.contains("unknown: OpenBLAS was loaded before cachedit"), report);
      }
    } else {
      assertTrue(report.contains("OPENBLAS_NUM_THREADS from the environment"), report);
    }
    assertTrue(report.contains("OMP_WAIT_POLICY"), report);
    // surefire sets OMP_WAIT_POLICY before the JVM starts: libgomp saw it whenever it loaded
    if (System.getenv("OMP_WAIT_POLICY") != null) {
      assertTrue(NativeRuntime.waitPolicyApplied(), report);
      assertTrue(!report.contains("not applied"), report);
    }
  }

  @Test
  void thePoolIsSizedOnRequestAndBadSizesAreRefused() {
    int before = NativeRuntime.threads();
    try {
      NativeRuntime.setThreads(1);
      assertEquals(1, NativeRuntime.threads());
      assertTrue(NativeRuntime.describe().startsWith("compute pool: 1 threads"), NativeRuntime.describe());
    } finally {
      NativeRuntime.setThreads(before);
    }
    assertThrows(ConfigException.class, () -> NativeRuntime.setThreads(0));
    assertThrows(ConfigException.class, () -> NativeRuntime.parseThreads("two", "CACHEDIT_THREADS"));
    assertEquals(3, NativeRuntime.parseThreads(" 3 ", "CACHEDIT_THREADS"));
    assertEquals(20000, NativeRuntime.parseSpinCount("20000"));
    assertEquals(0, NativeRuntime.parseSpinCount(" 0 "));
    for (String bad : new String[] {"-1", "lots", ""}) {
      ConfigException e = assertThrows(ConfigException.class, () -> NativeRuntime.parseSpinCount(bad));
      assertTrue(e.getMessage().contains("CACHEDIT_OMP_SPINCOUNT"), e.getMessage());
    }
  }
}
