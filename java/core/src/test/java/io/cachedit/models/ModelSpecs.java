package io.cachedit.models;

import io.cachedit.models.common.DiffusersTransformer;
import io.cachedit.models.common.ForwardInputs;
import io.cachedit.models.common.StepContext;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/** Every model's tiny test spec. */
public final class ModelSpecs {
  private ModelSpecs() {}

  public static List<ModelSpec> all() {
    return List.of(
        new ModelSpec("FLUX.1", TinyConfigs.flux(true), seed -> FluxModelTestSupport.inputs(seed, 0.5), "timestep", 1.0,
            List.of("transformer_blocks")),
        new ModelSpec("Wan2.1-T2V", TinyConfigs.wan(false), ModelSpecs::wanInputs, "timestep", 1000.0,
            List.of("blocks")),
        new ModelSpec("Wan2.1-I2V", TinyConfigs.wan(true), ModelSpecs::wanI2vInputs, "timestep", 1000.0,
            List.of("blocks")),
        new ModelSpec("Qwen-Image", TinyConfigs.qwenImage(), ModelSpecs::qwenInputs, "timestep", 1.0,
            List.of("transformer_blocks"), Map.of("img_shapes", List.of(List.of(List.of(1, 4, 4))))),
        new ModelSpec("SD3", TinyConfigs.sd3(false), ModelSpecs::sd3Inputs, "timestep", 1000.0,
            List.of("transformer_blocks")),
        new ModelSpec("SD3.5", TinyConfigs.sd3(true), ModelSpecs::sd3Inputs, "timestep", 1000.0,
            List.of("transformer_blocks")),
        new ModelSpec("Z-Image", TinyConfigs.zImage(), ModelSpecs::zImageInputs, "t", 1.0, List.of("layers"),
            Map.of(), "x"),
        new ModelSpec("DiT", TinyConfigs.dit(), ModelSpecs::ditInputs, "timestep", 1000.0,
            List.of("transformer_blocks")),
        new ModelSpec("PixArt-alpha", TinyConfigs.pixart(false), ModelSpecs::pixartInputs, "timestep", 1000.0,
            List.of("transformer_blocks")),
        new ModelSpec("PixArt-1024", TinyConfigs.pixart(true), ModelSpecs::pixartConditionedInputs, "timestep",
            1000.0, List.of("transformer_blocks")));
  }

  /** {@code steps} forwards of a toy denoising loop: the timestep falls, the latents move by the prediction. */
  public static List<Tensor> loop(DiffusersTransformer model, ModelSpec spec, Map<String, Tensor> inputs, int steps) {
    List<Tensor> outs = new ArrayList<>();
    Map<String, Tensor> in = new LinkedHashMap<>(inputs);
    Tensor x = in.get(spec.hiddenKey());
    for (int t = 0; t < steps; t++) {
      double sigma = 1.0 - (double) t / steps;
      Tensor ts = in.get(spec.timestepKey());
      in.put(spec.timestepKey(), torch.full(ts.sizes().vec().get(), new Scalar(sigma * spec.timestepScale()))
          .to(ts.scalar_type()));
      in.put(spec.hiddenKey(), x);
      Tensor v = model.forward(new ForwardInputs(in, spec.values()), new StepContext(1, t, steps, StepContext.Branch.SINGLE));
      outs.add(v);
      if (java.util.Arrays.equals(v.sizes().vec().get(), x.sizes().vec().get())) {
        x = x.sub(v.to(x.scalar_type()).mul(new Scalar(1.0 / steps)));
      }
    }
    return outs;
  }

  static Map<String, Tensor> qwenInputs(long seed) {
    torch.manual_seed(seed);
    Map<String, Tensor> m = new LinkedHashMap<>();
    m.put("hidden_states", torch.randn(2, 16, 16));
    m.put("encoder_hidden_states", torch.randn(2, 5, 12));
    Tensor mask = torch.ones(2, 5);
    mask.select(0, 1).narrow(0, 3, 2).zero_();  // the second prompt is 3 tokens long
    m.put("encoder_hidden_states_mask", mask);
    m.put("timestep", torch.full(new long[] {2}, new Scalar(0.5)));
    return m;
  }

  static Map<String, Tensor> sd3Inputs(long seed) {
    torch.manual_seed(seed);
    Map<String, Tensor> m = new LinkedHashMap<>();
    m.put("hidden_states", torch.randn(2, 4, 8, 8));
    m.put("encoder_hidden_states", torch.randn(2, 5, 12));
    m.put("pooled_projections", torch.randn(2, 6));
    m.put("timestep", torch.full(new long[] {2}, new Scalar(500.0)));
    return m;
  }

  static Map<String, Tensor> wanInputs(long seed) {
    torch.manual_seed(seed);
    Map<String, Tensor> m = new LinkedHashMap<>();
    m.put("hidden_states", torch.randn(1, 4, 3, 8, 8));
    m.put("timestep", torch.full(new long[] {1}, new Scalar(500.0)));
    m.put("encoder_hidden_states", torch.randn(1, 6, 10));
    return m;
  }

  static Map<String, Tensor> wanI2vInputs(long seed) {
    Map<String, Tensor> m = wanInputs(seed);
    m.put("encoder_hidden_states", torch.randn(1, 512, 10));
    m.put("encoder_hidden_states_image", torch.randn(1, 4, 8));
    return m;
  }

  /** Two prompts of 5 and 37 tokens: caption padding to 32 differs per sample. */
  static Map<String, Tensor> zImageInputs(long seed) {
    torch.manual_seed(seed);
    Map<String, Tensor> m = new LinkedHashMap<>();
    m.put("x", torch.randn(2, 4, 1, 8, 12));
    m.put("t", torch.full(new long[] {2}, new Scalar(0.5)));
    m.put("cap_feats.0", torch.randn(5, 10));
    m.put("cap_feats.1", torch.randn(37, 10));
    return m;
  }

  static Map<String, Tensor> ditInputs(long seed) {
    torch.manual_seed(seed);
    Map<String, Tensor> m = new LinkedHashMap<>();
    m.put("hidden_states", torch.randn(2, 4, 8, 8));
    m.put("timestep", torch.full(new long[] {2}, new Scalar(500.0)));
    m.put("class_labels", torch.tensor(new long[] {3, 10}));  // 10 = the unconditional class
    return m;
  }

  static Map<String, Tensor> pixartInputs(long seed) {
    torch.manual_seed(seed);
    Map<String, Tensor> m = new LinkedHashMap<>();
    m.put("hidden_states", torch.randn(2, 4, 8, 8));
    m.put("encoder_hidden_states", torch.randn(2, 6, 10));
    m.put("timestep", torch.full(new long[] {2}, new Scalar(500.0)));
    Tensor mask = torch.ones(2, 6);
    mask.select(0, 1).narrow(0, 4, 2).zero_();
    m.put("encoder_attention_mask", mask);
    return m;
  }

  static Map<String, Tensor> pixartConditionedInputs(long seed) {
    Map<String, Tensor> m = pixartInputs(seed);
    m.put("added_cond_kwargs.resolution", torch.tensor(new float[] {64f, 64f, 64f, 64f}).view(2, 2));
    m.put("added_cond_kwargs.aspect_ratio", torch.tensor(new float[] {1f, 1f}).view(2, 1));
    return m;
  }
}
