package io.cachedit.cli;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every command runs under the one-compute-pool defaults (docs/runtime.md): the wait policy and
 * OpenBLAS's thread count are set before anything loads libtorch. {@code bench} creates libtorch
 * objects before it reaches the library, which once left OpenBLAS's own threads and libgomp's spin on.
 * A fresh process with none of the variables set, so that a late set-up shows as the runtime's warning.
 */
class RuntimeSetupTest {
  @Test
  void benchSetsUpTheComputePoolBeforeLibtorchLoads(@TempDir Path dir) throws Exception {
    // an empty data folder: the command stops with an error after loading the model and the classifier
    List<String> cmd = ChildJvm.cachedit("bench", "--model", "../../models/fashion-flux", "--classifier",
        "../../models/fashion-classifier", "--data", dir.toString(), "--out", dir.resolve("out").toString(),
        "--steps", "2", "--prompts", "bag");
    ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(dir.resolve("log").toFile());
    for (String v : List.of("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OPENBLAS_NUM_THREADS", "CACHEDIT_BLAS_THREADS",
        "CACHEDIT_OMP_SPINCOUNT", "CACHEDIT_THREADS")) {
      pb.environment().remove(v);
    }
    Process p = pb.start();
    boolean exited = p.waitFor(120, TimeUnit.SECONDS);
    if (!exited) {
      p.destroyForcibly().waitFor(30, TimeUnit.SECONDS);
    }
    String out = Files.readString(dir.resolve("log"));
    assertTrue(exited, "bench did not stop; output:\n" + out);
    assertTrue(out.contains("Fashion-MNIST"), "expected the missing-data error; output:\n" + out);
    assertFalse(out.contains("was loaded before cachedit"), "runtime set up too late:\n" + out);
  }
}
