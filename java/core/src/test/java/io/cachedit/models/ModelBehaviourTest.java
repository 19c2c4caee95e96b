package io.cachedit.models;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.cachedit.models.common.DiffusersTransformer;
import io.cachedit.models.common.ForwardInputs;
import io.cachedit.models.zimage.ZImageTransformer2DModel;
import io.cachedit.pipeline.ModelRegistry;
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

/**
 * Model-specific semantics the generic contract cannot see: masks and padding really isolate what
 * they should, conditioning really conditions, bad inputs are named.
 */
class ModelBehaviourTest {
  private PointerScope scope;

  @BeforeEach
  void open() {
    scope = new PointerScope();
  }

  @AfterEach
  void close() {
    scope.close();
  }

  private static double maxAbs(Tensor a, Tensor b) {
    return a.sub(b).abs().max().item_double();
  }

  private static Tensor run(DiffusersTransformer m, Map<String, Tensor> in) {
    return m.forward(ForwardInputs.of(in), null);
  }

  @Test
  void zImageSampleDoesNotDependOnItsBatchNeighbour() {
    try (DiffusersTransformer m = ModelRegistry.defaults().randomTransformer(TinyConfigs.zImage(), 5, ScalarType.Float)) {
      ZImageTransformer2DModel z = (ZImageTransformer2DModel) m;
      torch.manual_seed(1);
      Tensor x0 = torch.randn(4, 1, 8, 12);
      Tensor x1 = torch.randn(4, 1, 8, 12);
      Tensor c0 = torch.randn(5, 10);
      Tensor c1 = torch.randn(40, 10);  // pads to 64 tokens: sample 0 sees batch padding
      Tensor t = torch.full(new long[] {2}, new Scalar(0.3));
      List<Tensor> both = z.forward(List.of(x0, x1), t, List.of(c0, c1), 2, 1, null);
      List<Tensor> alone = z.forward(List.of(x0), t.narrow(0, 0, 1), List.of(c0), 2, 1, null);
      assertTrue(maxAbs(both.get(0), alone.get(0)) < 1e-5, "batch padding leaked into sample 0");
      assertTrue(maxAbs(both.get(0), both.get(1)) > 1e-3, "different inputs gave the same output");
      // A longer caption shifts the image's RoPE frame index and changes the result.
      List<Tensor> longer = z.forward(List.of(x0), t.narrow(0, 0, 1), List.of(torch.cat(
          new org.bytedeco.pytorch.TensorVector(c0, torch.randn(30, 10)), 0)), 2, 1, null);
      assertTrue(maxAbs(longer.get(0), alone.get(0)) > 1e-4);
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> z.forward(List.of(x0), t.narrow(0, 0, 1), List.of(c0), 4, 1, null));
      assertTrue(e.getMessage().contains("all_patch_size"), e.getMessage());
      e = assertThrows(IllegalArgumentException.class,
          () -> z.forward(List.of(torch.randn(4, 1, 7, 12)), t.narrow(0, 0, 1), List.of(c0), 2, 1, null));
      assertTrue(e.getMessage().contains("x[0]"), e.getMessage());
    }
  }

  @Test
  void pixartMaskedCaptionTokensHaveNoEffect() {
    try (DiffusersTransformer m = ModelRegistry.defaults().randomTransformer(TinyConfigs.pixart(false), 6, ScalarType.Float)) {
      Map<String, Tensor> in = new LinkedHashMap<>(ModelSpecs.pixartInputs(2));
      Tensor base = run(m, in);
      Tensor enc = in.get("encoder_hidden_states").clone();
      enc.select(0, 1).narrow(0, 4, 2).normal_();  // masked tokens of prompt 1
      in.put("encoder_hidden_states", enc);
      Tensor perturbed = run(m, in);
      assertTrue(maxAbs(base, perturbed) < 1e-6, "masked caption tokens changed the output");
      enc.select(0, 1).narrow(0, 0, 1).normal_();  // a kept token
      assertTrue(maxAbs(base, run(m, in)) > 1e-4, "kept caption tokens had no effect");
      in.put("encoder_attention_mask", torch.ones(2, 1, 6));
      assertThrows(IllegalArgumentException.class, () -> run(m, in));
    }
  }

  @Test
  void pixartAdditionalConditionsAreRequiredAndUsed() {
    try (DiffusersTransformer m = ModelRegistry.defaults().randomTransformer(TinyConfigs.pixart(true), 7, ScalarType.Float)) {
      Map<String, Tensor> in = new LinkedHashMap<>(ModelSpecs.pixartConditionedInputs(2));
      Tensor a = run(m, in);
      in.put("added_cond_kwargs.aspect_ratio", torch.tensor(new float[] {0.5f, 0.5f}).view(2, 1));
      assertTrue(maxAbs(a, run(m, in)) > 1e-4, "aspect ratio had no effect");
      in.remove("added_cond_kwargs.resolution");
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> run(m, in));
      assertTrue(e.getMessage().contains("added_cond_kwargs.resolution"), e.getMessage());
    }
  }

  @Test
  void ditClassLabelsCondition() {
    try (DiffusersTransformer m = ModelRegistry.defaults().randomTransformer(TinyConfigs.dit(), 8, ScalarType.Float)) {
      Map<String, Tensor> in = new LinkedHashMap<>(ModelSpecs.ditInputs(3));
      Tensor a = run(m, in);
      assertEquals(8, a.size(1));  // learned sigma: 2 x in_channels
      in.put("class_labels", torch.tensor(new long[] {4, 10}));
      Tensor b = run(m, in);
      assertTrue(maxAbs(a.select(0, 0), b.select(0, 0)) > 1e-4, "class label had no effect");
      assertTrue(maxAbs(a.select(0, 1), b.select(0, 1)) < 1e-6, "sample 1 changed with sample 0's label");
      in.put("class_labels", torch.tensor(new long[] {4, 11}));
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> run(m, in));
      assertTrue(e.getMessage().contains("class_labels"), e.getMessage());
    }
  }

  @Test
  void qwenImageMaskedTextTokensHaveNoEffect() {
    String config = TinyConfigs.qwenImage();
    try (DiffusersTransformer m = ModelRegistry.defaults().randomTransformer(config, 9, ScalarType.Float)) {
      Map<String, Tensor> in = new LinkedHashMap<>(ModelSpecs.qwenInputs(4));
      Map<String, Object> values = Map.of("img_shapes", List.of(List.of(List.of(1, 4, 4))));
      Tensor base = m.forward(new ForwardInputs(in, values), null);
      Tensor enc = in.get("encoder_hidden_states").clone();
      enc.select(0, 1).narrow(0, 3, 2).normal_();
      in.put("encoder_hidden_states", enc);
      assertTrue(maxAbs(base, m.forward(new ForwardInputs(in, values), null)) < 1e-5,
          "masked text tokens changed the output");
    }
  }
}
