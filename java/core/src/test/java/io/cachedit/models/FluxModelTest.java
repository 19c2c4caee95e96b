package io.cachedit.models;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.cachedit.CacheDit;
import io.cachedit.CacheHandle;
import io.cachedit.adapter.FluxAdapters;
import io.cachedit.cache.CacheOptions;
import io.cachedit.cache.CacheStats;
import io.cachedit.cache.DBCacheConfig;
import io.cachedit.error.WeightLoadException;
import io.cachedit.models.common.DiffusersTransformer;
import io.cachedit.models.common.ForwardInputs;
import io.cachedit.models.common.StepContext;
import io.cachedit.models.flux.FluxTransformer2DModel;
import io.cachedit.pipeline.ModelRegistry;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class FluxModelTest {
  private PointerScope scope;

  @BeforeEach
  void open() {
    scope = new PointerScope();
  }

  @AfterEach
  void close() {
    scope.close();
  }

  static Map<String, Tensor> inputs(long seed, double sigma) {
    return FluxModelTestSupport.inputs(seed, sigma);
  }

  @Test
  void forward_shapesAndFusedEqualsSeparate() {
    try (DiffusersTransformer model = ModelRegistry.defaults().randomTransformer(TinyConfigs.flux(true), 1, ScalarType.Float)) {
      Tensor out = model.forward(ForwardInputs.of(inputs(3, 0.7)), null);
      assertArrayEquals(new long[] {2, 16, 8}, out.sizes().vec().get());
      assertTrue(out.isfinite().all().item_bool());
      FluxTransformer2DModel flux = (FluxTransformer2DModel) model;
      flux.useFusedBlocks(true);
      Tensor fused = model.forward(ForwardInputs.of(inputs(3, 0.7)), null);
      flux.useFusedBlocks(false);
      assertTrue(torch.allclose(out, fused, 1e-5, 1e-6, false), "fused list computes the same function");
      assertEquals(1, flux.blockLists().size() == 2 ? 1 : 0);
      // the timestep and the guidance both condition the output
      assertFalse(torch.allclose(out, model.forward(ForwardInputs.of(inputs(3, 0.2)), null)));
      Map<String, Tensor> g = inputs(3, 0.7);
      g.put("guidance", torch.full(new long[] {2}, new Scalar(1.0)));
      assertFalse(torch.allclose(out, model.forward(ForwardInputs.of(g), null)));
    }
  }

  @Test
  void precomputedConditioningOfAllStepsEqualsThePerStepForward() {
    try (DiffusersTransformer model = ModelRegistry.defaults().randomTransformer(TinyConfigs.flux(true), 4, ScalarType.Float)) {
      FluxTransformer2DModel flux = (FluxTransformer2DModel) model;
      Map<String, Tensor> in = inputs(5, 1.0);
      double[] sigmas = {1.0, 0.75, 0.4, 0.1};
      Tensor timesteps = torch.tensor(new float[] {1.0f, 0.75f, 0.4f, 0.1f}).view(4, 1).expand(4, 2).contiguous();
      FluxTransformer2DModel.Conditioning cond = flux.condition(in.get("encoder_hidden_states"),
          in.get("pooled_projections"), timesteps, in.get("guidance"));
      assertEquals(4, cond.steps());
      var rope = flux.rotaryEmbedding(in.get("img_ids"), in.get("txt_ids"));
      for (int i = 0; i < sigmas.length; i++) {
        in.put("timestep", torch.full(new long[] {2}, new Scalar(sigmas[i])));
        Tensor perStep = model.forward(ForwardInputs.of(in), null);
        Tensor batched = flux.forward(in.get("hidden_states"), cond, i, rope, null);
        // one GEMM over 4 timesteps vs one per step: OpenBLAS may pick other kernels (another summation
        // order) for the two shapes, so allow fp32 rounding, as the other model tests do (1e-5 abs)
        assertTrue(torch.allclose(perStep, batched, 1e-5, 1e-5, false), "step " + i + ": "
            + perStep.sub(batched).abs().max().item_double());
        // over the memory budget the blocks compute their modulations each step: same function
        var perStepModulation = new FluxTransformer2DModel.Conditioning(cond.encoder(), cond.temb(), cond.outScale1p(),
            cond.outShift(), null);
        // (the same GEMM-shape caveat: OpenBLAS's Haswell kernels differed by 1.7e-6 here, its SkylakeX ones not)
        Tensor perStepMod = flux.forward(in.get("hidden_states"), perStepModulation, i, rope, null);
        assertTrue(torch.allclose(batched, perStepMod, 1e-5, 1e-5, false), "step " + i
            + " without precomputed modulations: " + batched.sub(perStepMod).abs().max().item_double());
      }
      assertEquals(2 * flux.config().numLayers() + flux.config().numSingleLayers(), cond.blockModulations().size());
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> flux.condition(
          in.get("encoder_hidden_states"), in.get("pooled_projections"), torch.zeros(4, 3), in.get("guidance")));
      assertTrue(e.getMessage().contains("[steps, B] with B = 2"), e.getMessage());
    }
  }

  @Test
  void saveLoadRoundTripIsExact(@TempDir Path dir) {
    try (DiffusersTransformer model = ModelRegistry.defaults().randomTransformer(TinyConfigs.flux(false), 2, ScalarType.Float)) {
      Map<String, Tensor> in = inputs(4, 0.5);
      in.remove("guidance");
      Tensor out = model.forward(ForwardInputs.of(in), null);
      ModelRegistry.save(model, dir);
      try (DiffusersTransformer loaded = ModelRegistry.defaults().loadTransformer(dir, ScalarType.Float)) {
        assertEquals(model.parameters().keySet(), loaded.parameters().keySet());
        for (String k : model.parameters().keySet()) {
          assertTrue(torch.equal(model.parameters().get(k), loaded.parameters().get(k)), k);
        }
        assertTrue(torch.equal(out, loaded.forward(ForwardInputs.of(in), null)));
        assertEquals(model.configJson(), loaded.configJson());
      }
    }
  }

  @Test
  void bf16AgreesWithFp32WithinBf16Error(@TempDir Path dir) {
    try (DiffusersTransformer f32 = ModelRegistry.defaults().randomTransformer(TinyConfigs.flux(true), 5, ScalarType.Float)) {
      ModelRegistry.save(f32, dir);
      try (DiffusersTransformer bf16 = ModelRegistry.defaults().loadTransformer(dir, ScalarType.BFloat16);
           DiffusersTransformer f16 = ModelRegistry.defaults().loadTransformer(dir, ScalarType.Half)) {
        // sigma 0.5 and guidance 4 are exact in bf16 after the x1000 (diffusers casts the timestep to the
        // model dtype first, so other values legitimately shift the sinusoidal embedding)
        Map<String, Tensor> in = inputs(6, 0.5);
        in.put("guidance", torch.full(new long[] {2}, new Scalar(4.0)));
        Tensor a = f32.forward(ForwardInputs.of(in), null);
        Tensor b = bf16.forward(ForwardInputs.of(in), null).to(ScalarType.Float);
        Tensor h = f16.forward(ForwardInputs.of(in), null).to(ScalarType.Float);
        double scale = a.abs().max().item_double();
        double errB = b.sub(a).abs().max().item_double() / scale;
        double errH = h.sub(a).abs().max().item_double() / scale;
        assertTrue(errB < 0.05, "bf16 relative error " + errB);
        assertTrue(errH < 0.01, "fp16 relative error " + errH);
        assertTrue(errB > 0, "bf16 must actually compute in bf16");
      }
    }
  }

  @Test
  void caching_thresholdZeroEqualsUncached_andCachingRuns() {
    try (DiffusersTransformer model = ModelRegistry.defaults().randomTransformer(TinyConfigs.flux(true), 7, ScalarType.Float)) {
      List<Tensor> plain = run(model, 8);
      for (boolean fusedAdapter : new boolean[] {true, false}) {
        var adapter = fusedAdapter ? FluxAdapters.fused((FluxTransformer2DModel) model)
            : FluxAdapters.separateLists((FluxTransformer2DModel) model);
        try (CacheHandle h = CacheDit.enableCache(adapter, CacheOptions.of(DBCacheConfig.builder().fnComputeBlocks(1)
            .maxWarmupSteps(0).residualDiffThreshold(0.0).build()))) {
          List<Tensor> same = run(model, 8);
          for (int i = 0; i < plain.size(); i++) {
            assertTrue(torch.equal(plain.get(i), same.get(i)), "step " + i + (fusedAdapter ? " fused" : " separate"));
          }
        }
      }
      try (CacheHandle h = CacheDit.enableCache(model, CacheOptions.of(DBCacheConfig.builder().fnComputeBlocks(1)
          .maxWarmupSteps(2).residualDiffThreshold(0.8).build()))) {
        assertTrue(((FluxTransformer2DModel) model).usesFusedBlocks(), "the registered adapter fuses the lists");
        run(model, 8);
        CacheStats s = CacheDit.summary(model).get(0);
        assertFalse(s.cachedSteps().isEmpty(), "some steps cached: " + s.residualDiffs());
        assertEquals(5, s.blocksTotal() / 8);
      }
      assertFalse(((FluxTransformer2DModel) model).usesFusedBlocks(), "disable reverts the patch");
    }
  }

  private static List<Tensor> run(DiffusersTransformer model, int steps) {
    List<Tensor> outs = new ArrayList<>();
    Map<String, Tensor> in = inputs(9, 1.0);
    Tensor x = in.get("hidden_states");
    for (int t = 0; t < steps; t++) {
      double sigma = 1.0 - (double) t / steps;
      in.put("timestep", torch.full(new long[] {2}, new Scalar(sigma)));
      in.put("hidden_states", x);
      Tensor v = model.forward(ForwardInputs.of(in), new StepContext(1, t, steps, StepContext.Branch.SINGLE));
      outs.add(v);
      x = x.sub(v.mul(new Scalar(1.0 / steps)));
    }
    return outs;
  }

  @Test
  void wrongInputsAreRejectedByName() {
    try (DiffusersTransformer model = ModelRegistry.defaults().randomTransformer(TinyConfigs.flux(true), 1, ScalarType.Float)) {
      Map<String, Tensor> in = inputs(1, 0.5);
      in.remove("pooled_projections");
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> model.forward(ForwardInputs.of(in), null));
      assertTrue(e.getMessage().contains("pooled_projections"), e.getMessage());
      Map<String, Tensor> extra = inputs(1, 0.5);
      extra.put("class_labels", torch.zeros(2));
      e = assertThrows(IllegalArgumentException.class, () -> model.forward(ForwardInputs.of(extra), null));
      assertTrue(e.getMessage().contains("class_labels"), e.getMessage());
      Map<String, Tensor> noGuidance = inputs(1, 0.5);
      noGuidance.remove("guidance");
      e = assertThrows(IllegalArgumentException.class, () -> model.forward(ForwardInputs.of(noGuidance), null));
      assertTrue(e.getMessage().contains("guidance"), e.getMessage());
    }
  }

  @Test
  void configMismatchListsEveryProblem(@TempDir Path dir) throws Exception {
    try (DiffusersTransformer model = ModelRegistry.defaults().randomTransformer(TinyConfigs.flux(false), 2, ScalarType.Float)) {
      ModelRegistry.save(model, dir);
    }
    // a config with one more double block and another head dim than the weights
    java.nio.file.Files.writeString(dir.resolve("config.json"), TinyConfigs.flux(true).replace("\"num_layers\": 2",
        "\"num_layers\": 3"));
    WeightLoadException e = assertThrows(WeightLoadException.class, () -> ModelRegistry.defaults().loadTransformer(dir, ScalarType.Float));
    String m = e.getMessage();
    assertTrue(m.contains("missing") && m.contains("transformer_blocks.2.attn.to_q.weight")
        && m.contains("time_text_embed.guidance_embedder.linear_1.weight"), m);
    java.nio.file.Files.writeString(dir.resolve("config.json"), TinyConfigs.flux(false).replace("FluxTransformer2DModel",
        "MysteryModel"));
    var unsupported = assertThrows(io.cachedit.error.UnsupportedModelException.class,
        () -> ModelRegistry.defaults().loadTransformer(dir, ScalarType.Float));
    assertTrue(unsupported.getMessage().contains("MysteryModel")
        && unsupported.getMessage().contains("FluxTransformer2DModel"), unsupported.getMessage());
  }
}
