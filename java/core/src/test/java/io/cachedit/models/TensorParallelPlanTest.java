package io.cachedit.models;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.cachedit.error.ConfigException;
import io.cachedit.error.UnsupportedModelException;
import io.cachedit.io.JsonConfig;
import io.cachedit.io.WeightSharding;
import io.cachedit.models.common.TensorParallelPlan;
import io.cachedit.models.flux.FluxTransformer2DModel;
import io.cachedit.models.wan.WanTransformer3DModel;
import io.cachedit.pipeline.ModelRegistry;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Tensor-parallel plans as data: which layers split how, the shards' offsets, and the size checks. */
class TensorParallelPlanTest {
  private static final TensorParallelPlan FLUX = FluxTransformer2DModel.TENSOR_PARALLEL_PLAN;

  @Test
  void stylesFollowTheModulePaths() {
    assertEquals(TensorParallelPlan.Style.COLWISE, FLUX.style("transformer_blocks.3.attn.add_k_proj"));
    assertEquals(TensorParallelPlan.Style.ROWWISE, FLUX.style("transformer_blocks.0.attn.to_out.0"));
    assertEquals(TensorParallelPlan.Style.ROWWISE, FLUX.style("transformer_blocks.0.ff_context.net.2"));
    assertEquals(TensorParallelPlan.Style.COLWISE_GATHERED, FLUX.style("single_transformer_blocks.7.norm.linear"));
    assertNull(FLUX.style("transformer_blocks.0.attn.norm_q"), "per-head norms stay whole");
    assertNull(FLUX.style("x_embedder"));
    assertNull(FLUX.style("transformer_blocks.0.attn.to_out"), "a pattern matches whole segments only");
    assertEquals(TensorParallelPlan.Style.FEATURES,
        WanTransformer3DModel.TENSOR_PARALLEL_PLAN.style("blocks.2.attn1.norm_q"));
  }

  @Test
  void columnSplitsTakeContiguousOutputRows_rowSplitsInputColumns_biasesFollow() {
    WeightSharding.Slice q = FLUX.slice("transformer_blocks.0.attn.to_q.weight", new long[] {48, 48}, 1, 3);
    assertEquals(0, q.dim());
    assertArrayEquals(new long[] {16}, q.starts());
    assertArrayEquals(new long[] {16}, q.lengths());
    WeightSharding.Slice qBias = FLUX.slice("transformer_blocks.0.attn.to_q.bias", new long[] {48}, 2, 3);
    assertArrayEquals(new long[] {32}, qBias.starts());
    WeightSharding.Slice out = FLUX.slice("transformer_blocks.0.attn.to_out.0.weight", new long[] {48, 48}, 1, 2);
    assertEquals(1, out.dim());
    assertArrayEquals(new long[] {24}, out.starts());
    assertNull(FLUX.slice("transformer_blocks.0.attn.to_out.0.bias", new long[] {48}, 1, 2),
        "a row split's bias is added once, after the sum");
    assertNull(FLUX.slice("transformer_blocks.0.attn.to_q.weight", new long[] {48, 48}, 0, 1));
  }

  /** proj_out reads [attention (dim) | mlp (4 dim)]: each rank keeps its share of both parts. */
  @Test
  void singleBlockProjOut_keepsEachRanksShareOfAttentionAndMlpInputs() {
    WeightSharding.Slice s = FLUX.slice("single_transformer_blocks.0.proj_out.weight", new long[] {48, 240}, 1, 2);
    assertEquals(1, s.dim());
    assertArrayEquals(new long[] {24, 48 + 96}, s.starts());
    assertArrayEquals(new long[] {24, 96}, s.lengths());
    assertEquals(120, s.length());
  }

  @Test
  void sizesThatDoNotSplitTheHeadsAreRefusedListingTheValidOnes() {
    JsonConfig config = JsonConfig.parse(TinyConfigs.flux(false).replace("\"num_attention_heads\": 2",
        "\"num_attention_heads\": 4"), "config.json");
    assertEquals(List.of(1, 2, 4), FLUX.validSizes(config, 8));
    FLUX.check(config, 2);
    ConfigException e = assertThrows(ConfigException.class, () -> FLUX.check(config, 3));
    assertEquals("tp_size", e.field());
    assertTrue(e.getMessage().contains("FluxTransformer2DModel has 4 attention heads (num_attention_heads)")
        && e.getMessage().contains("valid tp sizes: 1, 2, 4"), e.getMessage());
    assertThrows(IllegalArgumentException.class,
        () -> FLUX.slice("transformer_blocks.0.attn.to_q.weight", new long[] {10, 48}, 0, 3));
  }

  @Test
  void modelsWithoutAPlanAreRefusedNamingThoseWithOne() {
    ModelRegistry registry = ModelRegistry.defaults();
    assertEquals(List.of("FluxTransformer2DModel", "QwenImageTransformer2DModel", "SD3Transformer2DModel",
        "WanTransformer3DModel", "ZImageTransformer2DModel"), registry.tensorParallelModels());
    io.cachedit.models.common.TensorParallel.Factory two = new io.cachedit.models.common.TensorParallel.Factory() {
      @Override
      public int size() {
        return 2;
      }

      @Override
      public io.cachedit.models.common.TensorParallel forPlan(TensorParallelPlan plan) {
        throw new AssertionError("no plan to bind");
      }
    };
    UnsupportedModelException e = assertThrows(UnsupportedModelException.class,
        () -> registry.randomTransformer(TinyConfigs.dit(), 1, org.bytedeco.pytorch.global.torch.ScalarType.Float, two));
    assertTrue(e.getMessage().contains("DiTTransformer2DModel has no tensor-parallel plan"), e.getMessage());
  }
}
