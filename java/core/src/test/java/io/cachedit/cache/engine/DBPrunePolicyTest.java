package io.cachedit.cache.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import io.cachedit.cache.BufferPrecision;
import io.cachedit.cache.DBPruneConfig;
import io.cachedit.cache.DecisionListener;
import io.cachedit.cache.DiffReducer;
import io.cachedit.models.common.ForwardPattern;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** DBPrune's dynamic threshold, evaluated on a branch state directly. */
class DBPrunePolicyTest {
  @Test
  void dynamicThreshold_relaxesFromTheStepsFirstDiffs() {
    DBPruneConfig config = DBPruneConfig.builder().residualDiffThreshold(0.04).enableDynamicPruneThreshold(true)
        .build();
    BranchState st = new BranchState(0, "test");
    java.util.function.ToDoubleFunction<DBPruneConfig> at = c -> threshold(c, st);
    assertEquals(0.04, at.applyAsDouble(config));  // no diffs yet this step
    st.pruneDiffs.put(3, new ArrayList<>(List.of(0.05, -2.0, 0.06)));
    assertEquals(0.055 * 1.25, at.applyAsDouble(config), 1e-12);
    st.pruneDiffs.put(3, new ArrayList<>(List.of(0.07, 0.09)));  // relaxed 0.1 >= cap 0.08: back to base
    assertEquals(0.04, at.applyAsDouble(config));
    st.pruneDiffs.put(3, new ArrayList<>(List.of(0.01, 0.01, 0.01, 0.01, 0.01, 0.5)));  // only the first 5 count
    assertEquals(0.04, at.applyAsDouble(config), "max(base, relaxed)");
    DBPruneConfig capped = config.toBuilder().maxDynamicPruneThreshold(0.2).build();
    st.pruneDiffs.put(3, new ArrayList<>(List.of(0.07, 0.09)));
    assertEquals(0.1, at.applyAsDouble(capped), 1e-12);
    assertFalse(DBPruneConfig.builder().build().enableDynamicPruneThreshold());
    st.close();
  }

  private static double threshold(DBPruneConfig config, BranchState st) {
    return new DBPrunePolicy(config, null, new CachePolicy.Engine("test", ForwardPattern.PATTERN_3,
        io.cachedit.kernels.Kernels.create(), DiffReducer.LOCAL, DecisionListener.NONE, BufferPrecision.FULL))
        .threshold(st, 3);
  }
}
