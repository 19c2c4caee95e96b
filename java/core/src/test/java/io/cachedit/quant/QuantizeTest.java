package io.cachedit.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.cachedit.CacheDit;
import io.cachedit.CacheHandle;
import io.cachedit.cache.CacheOptions;
import io.cachedit.cache.DBCacheConfig;
import io.cachedit.error.ConfigException;
import io.cachedit.error.WeightLoadException;
import io.cachedit.io.SafetensorsFile;
import io.cachedit.io.SafetensorsWriter;
import io.cachedit.kernels.Kernels;
import io.cachedit.kernels.QuantActivation;
import io.cachedit.kernels.QuantFormat;
import io.cachedit.models.ModelSpec;
import io.cachedit.models.ModelSpecs;
import io.cachedit.models.TinyConfigs;
import io.cachedit.models.common.DiffusersTransformer;
import io.cachedit.models.common.Linear;
import io.cachedit.pipeline.ModelRegistry;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Quantisation: the fused kernels against libtorch's fp32 linear, every model family quantised and
 * compared with its dense forward, reports, checkpoints written and read back, and bad input.
 */
class QuantizeTest {
  private PointerScope scope;

  @BeforeEach
  void open() {
    scope = new PointerScope();
  }

  @AfterEach
  void close() {
    scope.close();
  }

  static double nmse(Tensor want, Tensor got) {
    Tensor w = want.to(ScalarType.Double);
    Tensor d = got.to(ScalarType.Double).sub(w);
    return d.mul(d).sum().item_double() / Math.max(1e-300, w.mul(w).sum().item_double());
  }

  /** Bounds on the error against fp32 for Gaussian inputs, per type (docs/quantization.md). */
  static double bound(QuantType t) {
    return switch (t) {
      case FLOAT8_PER_ROW, FLOAT8_PER_TENSOR -> 2e-3;
      case FLOAT8_WEIGHT_ONLY -> 1e-3;
      case INT8_PER_ROW -> 1.5e-4;
      case INT8_PER_TENSOR -> 3e-4;
      case INT8_WEIGHT_ONLY -> 8e-5;
      case INT4_WEIGHT_ONLY -> 1e-2;
    };
  }

  @ParameterizedTest
  @EnumSource(QuantType.class)
  void kernelMatchesTheFp32LinearWithinItsBound(QuantType type) {
    Kernels k = Kernels.withThreads(2);
    long[][] shapes = {{3, 64, 5}, {2, 37, 96, 40}, {129, 256, 17}, {1, 1024, 128}};
    for (long[] s : shapes) {
      long in = s[s.length - 2];
      long out = s[s.length - 1];
      long[] xs = java.util.Arrays.copyOf(s, s.length - 1);
      torch.manual_seed(in * 31 + out);
      Tensor x = torch.randn(xs);
      Tensor w = torch.randn(out, in).mul(new Scalar(0.05));
      Tensor b = torch.randn(out);
      Tensor want = torch.linear(x, w, b);
      int group = 32;
      Tensor[] q = k.quantizeWeight(w, type.format(), group, type.perTensorWeights());
      Tensor packed = k.packWeight(type.format(), q[0], out, in);
      Tensor got = k.quantLinear(x, type.activation(), type.format(), packed, q[1], out, in, group,
          type.perTensorWeights(), b);
      assertArrayEquals(want.sizes().vec().get(), got.sizes().vec().get());
      double e = nmse(want, got);
      assertTrue(e < bound(type) * (out * xs[0] < 100 ? 4 : 1), type + " " + java.util.Arrays.toString(s) + ": nmse "
          + e);
      // bf16 activations in, bf16 out: the same within bf16's rounding
      Tensor gotBf16 = k.quantLinear(x.to(ScalarType.BFloat16), type.activation(), type.format(), packed, q[1], out, in,
          group, type.perTensorWeights(), b);
      assertEquals(ScalarType.BFloat16, gotBf16.scalar_type().intern());
      assertTrue(nmse(got, gotBf16) < 1e-4 + bound(type), type + " bf16 " + nmse(got, gotBf16));
      // canonical -> packed -> canonical is exact
      assertTrue(torch.equal(q[0].view(ScalarType.Byte), k.unpackWeight(type.format(), packed, out, in)
          .view(ScalarType.Byte)));
    }
  }

  @Test
  void resultsDoNotDependOnTheThreadCount() {
    torch.manual_seed(5);
    Tensor x = torch.randn(300, 520);
    Tensor w = torch.randn(70, 520);
    for (QuantType type : QuantType.values()) {
      int group = type.format() == QuantFormat.INT4 ? 8 : 0;
      Tensor[] q = Kernels.withThreads(1).quantizeWeight(w, type.format(), group, type.perTensorWeights());
      Tensor p = Kernels.withThreads(1).packWeight(type.format(), q[0], 70, 520);
      Tensor one = Kernels.withThreads(1).quantLinear(x, type.activation(), type.format(), p, q[1], 70, 520, group,
          type.perTensorWeights(), null);
      Tensor two = Kernels.withThreads(2).quantLinear(x, type.activation(), type.format(), p, q[1], 70, 520, group,
          type.perTensorWeights(), null);
      assertTrue(torch.equal(one, two), type + ": 1 and 2 threads differ");
    }
  }

  /**
   * The kernel computes each row as that row alone would, whatever the batch and thread count (what
   * CFG-parallel and sequence-parallel ranks rely on). A whole model is only as batch-invariant as its
   * dense ops: activation quantisation can turn their last-bit differences into one quantisation step.
   */
  @ParameterizedTest
  @EnumSource(QuantType.class)
  void kernelRowsDoNotDependOnTheBatch(QuantType type) {
    torch.manual_seed(9);
    Tensor x = torch.randn(203, 96);
    Tensor w = torch.randn(40, 96);
    Kernels two = Kernels.withThreads(2);
    Tensor[] q = two.quantizeWeight(w, type.format(), 32, type.perTensorWeights());
    Tensor p = two.packWeight(type.format(), q[0], 40, 96);
    Tensor all = two.quantLinear(x, type.activation(), type.format(), p, q[1], 40, 96, 32, type.perTensorWeights(),
        null);
    if (type.activation() == QuantActivation.INT8_PER_TENSOR || type.activation() == QuantActivation.FP8_PER_TENSOR) {
      return;  // one activation scale for the whole batch: rows depend on it by definition
    }
    for (long[] range : new long[][] {{0, 1}, {5, 7}, {100, 103}, {197, 6}}) {
      Tensor part = Kernels.withThreads(1).quantLinear(x.narrow(0, range[0], range[1]).contiguous(), type.activation(),
          type.format(), p, q[1], 40, 96, 32, type.perTensorWeights(), null);
      assertTrue(torch.equal(all.narrow(0, range[0], range[1]), part), type + " rows " + range[0] + "+" + range[1]);
    }
  }

  static Stream<ModelSpec> models() {
    return ModelSpecs.all().stream();
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("models")
  void everyModelFamilyQuantisesAndStaysCloseToItsDenseForward(ModelSpec spec) {
    for (QuantType type : List.of(QuantType.INT8_PER_ROW, QuantType.FLOAT8_PER_ROW, QuantType.INT4_WEIGHT_ONLY)) {
      try (PointerScope s = new PointerScope();
           DiffusersTransformer dense = ModelRegistry.defaults().randomTransformer(spec.configJson(), 7, ScalarType.Float);
           DiffusersTransformer quant = ModelRegistry.defaults().randomTransformer(spec.configJson(), 7, ScalarType.Float)) {
        Map<String, Tensor> inputs = spec.inputs().apply(3);
        List<Tensor> want = ModelSpecs.loop(dense, spec, inputs, 2);
        QuantizeReport r = CacheDit.quantize(quant, QuantizeConfig.of(type).withGroupSize(8));
        assertFalse(r.quantized().isEmpty(), spec.name() + " " + type + ": nothing quantised: " + r.skipped());
        for (QuantizeReport.Layer l : r.quantized()) {
          assertTrue(quant.blockLists().stream().anyMatch(b -> l.name().startsWith(b.name() + ".")), l.name()
              + " is outside the repeated blocks");
          assertFalse(l.name().contains("embed") || l.name().contains("mod"), l.name() + " should be excluded");
          assertTrue(quant.linearLayers().get(l.name()).kernel() != null);
          assertFalse(quant.parameters().containsKey(l.name() + ".weight"), "dense weight of " + l.name() + " kept");
        }
        assertTrue(r.bytesAfter() < r.bytesBefore());
        List<Tensor> got = ModelSpecs.loop(quant, spec, inputs, 2);
        for (int i = 0; i < want.size(); i++) {
          double e = nmse(want.get(i), got.get(i));
          assertTrue(e < 20 * bound(type), spec.name() + " " + type + " step " + i + ": nmse " + e);
        }
      }
    }
  }

  @Test
  void reportNamesWhatWasSkippedAndWhyAndCountsBytes() {
    try (DiffusersTransformer m = tinyFlux()) {
      QuantizeReport r = CacheDit.quantize(m, QuantizeConfig.of(QuantType.INT8_PER_ROW)
          .withExcludeLayers(List.of("embed", "ff_context", "no_such_layer")));
      assertEquals(List.of("no_such_layer"), r.unmatchedExcludes());
      assertTrue(r.skipped().stream().anyMatch(s -> s.name().contains("ff_context")
          && s.reason().contains("excluded by \"ff_context\"")), r.skipped().toString());
      assertTrue(r.skipped().stream().anyMatch(s -> s.name().equals("proj_out")
          && s.reason().contains("regional_quantize")), r.skipped().toString());
      for (QuantizeReport.Layer l : r.quantized()) {
        assertEquals(l.inFeatures() * l.outFeatures() * 4, l.bytesBefore());
        assertEquals(l.inFeatures() * l.outFeatures() + l.outFeatures() * 4, l.bytesAfter());
      }
      assertTrue(r.quantizedRatio() < 0.25 + 4.0 / 16, r.summary());  // tiny layers: scales weigh in
      assertTrue(r.summary().contains("no_such_layer"), r.summary());
    }
  }

  @Test
  void int4GroupsThatDoNotDivideFallBackOrFailNamingTheLayer() {
    String json = TinyConfigs.flux(false);
    try (DiffusersTransformer m = ModelRegistry.defaults().randomTransformer(json, 1, ScalarType.Float)) {
      QuantizeConfig strict = QuantizeConfig.of(QuantType.INT4_WEIGHT_ONLY).withGroupSize(512).withPerTensorFallback(
          false);
      ConfigException e = assertThrows(ConfigException.class, () -> CacheDit.quantize(m, strict));
      assertTrue(e.getMessage().contains("transformer_blocks.0.") && e.getMessage().contains("group_size 512"),
          e.getMessage());
      assertFalse(Quantizer.isQuantized(m), "a failed quantisation must leave the model dense");
      QuantizeReport r = CacheDit.quantize(m, strict.withPerTensorFallback(true));
      assertTrue(r.quantized().stream().allMatch(l -> l.type().contains("->int8_weight_only(per_tensor)")),
          r.quantized().toString());
    }
  }

  @Test
  void badConfigsAndSecondQuantisationAreClearErrors() {
    ConfigException unknown = assertThrows(ConfigException.class,
        () -> QuantizeConfig.fromMap(Map.of("quant_type", "int3")));
    assertTrue(unknown.getMessage().contains("int3") && unknown.getMessage().contains("int8_per_row"));
    assertTrue(assertThrows(ConfigException.class, () -> QuantizeConfig.fromMap(Map.of("quant_type", "nvfp4")))
        .getMessage().contains("not available"));
    assertTrue(assertThrows(ConfigException.class, () -> QuantizeConfig.fromMap(Map.of("quant_typo", "x")))
        .getMessage().contains("quant_typo"));
    assertTrue(assertThrows(ConfigException.class, () -> QuantizeConfig.fromMap(Map.of("group_size", 48)))
        .getMessage().contains("group_size"));
    QuantizeConfig c = QuantizeConfig.fromMap(Map.of("quant_type", "int4_weight_only", "group_size", 128,
        "precision_plan", Map.of("attn", "int8_weight_only"), "components_to_quantize", List.of("transformer")));
    assertEquals(QuantType.INT4_WEIGHT_ONLY, c.quantType());
    assertEquals(128, c.groupSize());
    assertEquals(QuantType.INT8_WEIGHT_ONLY, c.precisionPlan().get("attn"));
    assertEquals(QuantizeConfig.DEFAULT_EXCLUDE_LAYERS, c.excludeLayers());
    try (DiffusersTransformer m = tinyFlux()) {
      CacheDit.quantize(m, QuantizeConfig.defaults());
      IllegalStateException twice = assertThrows(IllegalStateException.class,
          () -> CacheDit.quantize(m, QuantizeConfig.defaults()));
      assertTrue(twice.getMessage().contains("already quantised"), twice.getMessage());
    }
    try (DiffusersTransformer m = tinyFlux()) {
      assertTrue(assertThrows(ConfigException.class, () -> CacheDit.quantize(m,
          QuantizeConfig.fromMap(Map.of("repeated_blocks", List.of("blocks"))))).getMessage()
          .contains("transformer_blocks"));
    }
  }

  @Test
  void nonFiniteWeightsAreRejectedNamingTheLayerAndNothingIsReplaced() {
    try (DiffusersTransformer m = tinyFlux()) {
      Linear l = m.linearLayers().get("transformer_blocks.0.attn.to_k");
      l.weight().select(0, 1).select(0, 2).fill_(new Scalar(Double.NaN));
      ConfigException e = assertThrows(ConfigException.class,
          () -> CacheDit.quantize(m, QuantizeConfig.of(QuantType.INT8_PER_ROW)));
      assertTrue(e.getMessage().contains("transformer_blocks.0.attn.to_k") && e.getMessage().contains("NaN"),
          e.getMessage());
      assertFalse(Quantizer.isQuantized(m));
    }
  }

  @Test
  void precisionPlanMixesTypesPerLayer() {
    try (DiffusersTransformer m = tinyFlux()) {
      QuantizeReport r = CacheDit.quantize(m, QuantizeConfig.of(QuantType.INT8_PER_ROW)
          .withPrecisionPlan(Map.of("attn.to_", QuantType.FLOAT8_WEIGHT_ONLY)));
      for (QuantizeReport.Layer l : r.quantized()) {
        assertEquals(l.name().contains("attn.to_") ? "float8_weight_only" : "int8_per_row", l.type(), l.name());
      }
    }
  }

  @ParameterizedTest
  @EnumSource(value = QuantType.class, names = {"INT8_PER_ROW", "FLOAT8_PER_TENSOR", "INT4_WEIGHT_ONLY"})
  void aSavedQuantisedModelLoadsBackBitIdentical(QuantType type, @TempDir Path dir) {
    ModelSpec spec = ModelSpecs.all().get(0);
    Map<String, Tensor> inputs = spec.inputs().apply(2);
    try (DiffusersTransformer m = tinyFlux()) {
      QuantizeReport r = CacheDit.quantize(m, QuantizeConfig.of(type).withGroupSize(16).withSerializeTo(dir));
      Tensor want = ModelSpecs.loop(m, spec, inputs, 1).get(0);
      String config = Files.readString(dir.resolve("config.json"));
      assertTrue(config.contains("\"quantization_config\"") && config.contains("\"quant_method\" : \"cachedit\""));
      try (DiffusersTransformer back = ModelRegistry.defaults().loadTransformer(dir, ScalarType.Float)) {
        assertEquals(r.quantized().size(), back.linearLayers().values().stream().filter(l -> l.kernel() != null).count());
        assertTrue(torch.equal(want, ModelSpecs.loop(back, spec, inputs, 1).get(0)), "reloaded output differs");
      }
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  @Test
  void aCheckpointWhoseScalesDoNotMatchItsWeightsIsRejectedNamingFileAndTensor(@TempDir Path dir) throws Exception {
    try (DiffusersTransformer m = tinyFlux()) {
      CacheDit.quantize(m, QuantizeConfig.of(QuantType.INT8_PER_ROW).withSerializeTo(dir));
    }
    Path file = dir.resolve("diffusion_pytorch_model.safetensors");
    Map<String, Tensor> tensors = new LinkedHashMap<>();
    try (SafetensorsFile f = SafetensorsFile.open(file)) {
      for (String k : f.keys()) {
        tensors.put(k, f.tensor(k).clone());
      }
    }
    tensors.put("transformer_blocks.0.attn.to_q.weight_scale", torch.ones(3));
    SafetensorsWriter.write(file, tensors, Map.of());
    WeightLoadException e = assertThrows(WeightLoadException.class,
        () -> ModelRegistry.defaults().loadTransformer(dir, ScalarType.Float));
    assertTrue(e.getMessage().contains("transformer_blocks.0.attn.to_q.weight_scale")
        && e.getMessage().contains("do not match"), e.getMessage());
    assertTrue(e.getMessage().contains(file.getFileName().toString()), e.getMessage());
  }

  @Test
  void quantiseConfigInCacheOptionsQuantisesBeforeCaching() {
    ModelSpec spec = ModelSpecs.all().get(0);
    CacheOptions opts = CacheOptions.fromMap(Map.of("cache_config", Map.of("Fn_compute_blocks", 1,
        "Bn_compute_blocks", 0, "residual_diff_threshold", 0.2, "max_warmup_steps", 1),
        "quantize_config", Map.of("quant_type", "int8_per_row")));
    assertEquals(QuantType.INT8_PER_ROW, opts.quantizeConfig().quantType());
    try (DiffusersTransformer m = tinyFlux(); CacheHandle h = CacheDit.enableCache(m, opts)) {
      assertTrue(Quantizer.isQuantized(m));
      List<Tensor> outs = ModelSpecs.loop(m, spec, spec.inputs().apply(1), 4);
      assertEquals(4, outs.size());
      assertTrue(torch.isfinite(outs.get(3)).all().item_bool());
    }
    ConfigException bad = assertThrows(ConfigException.class, () -> CacheOptions.fromMap(Map.of("quantize_config",
        Map.of("quant_type", "int2"))));
    assertTrue(bad.getMessage().startsWith("quantize_config"), bad.getMessage());
  }

  @Test
  void closingTheModelFreesTheQuantisedWeights() {
    DiffusersTransformer m = tinyFlux();
    CacheDit.quantize(m, QuantizeConfig.of(QuantType.INT8_PER_ROW));
    Linear l = m.linearLayers().get("transformer_blocks.0.attn.to_q");
    long live = io.cachedit.kernels.NativeScope.liveKeptHandles();
    m.close();
    assertTrue(io.cachedit.kernels.NativeScope.liveKeptHandles() < live);
    assertThrows(IllegalStateException.class, () -> l.forward(torch.randn(1, l.inFeatures())));
  }

  static DiffusersTransformer tinyFlux() {
    return ModelRegistry.defaults().randomTransformer(TinyConfigs.flux(true), 7, ScalarType.Float);
  }
}
