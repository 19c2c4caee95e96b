package io.cachedit.pipeline;

import io.cachedit.io.DiffusersFolder;
import io.cachedit.io.JsonConfig;
import io.cachedit.io.SafetensorsSource;
import io.cachedit.io.WeightLoadException;
import io.cachedit.io.WeightScope;
import io.cachedit.kernels.NativeRuntime;
import io.cachedit.models.common.DiffusersModel;
import io.cachedit.models.dit.DiTTransformer2DModel;
import io.cachedit.models.flux.FluxTransformer2DModel;
import io.cachedit.models.flux.FluxTransformer2DModelConfig;
import io.cachedit.models.pixart.PixArtTransformer2DModel;
import io.cachedit.models.qwenimage.QwenImageTransformer2DModel;
import io.cachedit.models.sd3.SD3Transformer2DModel;
import io.cachedit.models.wan.WanTransformer3DModel;
import io.cachedit.models.zimage.ZImageTransformer2DModel;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.function.BiFunction;
import org.bytedeco.pytorch.global.torch.ScalarType;

/** Builds a transformer from a diffusers folder by its config's {@code _class_name}. */
public final class ModelLoader {
  private ModelLoader() {}

  private static final Map<String, BiFunction<JsonConfig, WeightScope, DiffusersModel>> MODELS = Map.of(
      "FluxTransformer2DModel", (c, w) -> new FluxTransformer2DModel(FluxTransformer2DModelConfig.fromJson(c), w),
      "WanTransformer3DModel", (c, w) -> new WanTransformer3DModel(WanTransformer3DModel.Config.fromJson(c), w),
      "QwenImageTransformer2DModel", (c, w) -> new QwenImageTransformer2DModel(
          QwenImageTransformer2DModel.Config.fromJson(c), w),
      "SD3Transformer2DModel", (c, w) -> new SD3Transformer2DModel(SD3Transformer2DModel.Config.fromJson(c), w),
      "ZImageTransformer2DModel", (c, w) -> new ZImageTransformer2DModel(ZImageTransformer2DModel.Config.fromJson(c), w),
      "DiTTransformer2DModel", (c, w) -> new DiTTransformer2DModel(DiTTransformer2DModel.Config.fromJson(c), w),
      "PixArtTransformer2DModel", (c, w) -> new PixArtTransformer2DModel(
          PixArtTransformer2DModel.Config.fromJson(c), w));

  /** Class names this version can load. */
  public static List<String> supported() {
    return MODELS.keySet().stream().sorted().toList();
  }

  /** Loads the transformer at {@code path} (pipeline folder, transformer folder or safetensors file) in {@code dtype}. */
  public static DiffusersModel load(Path path, ScalarType dtype) {
    NativeRuntime.initialize();
    DiffusersFolder folder = DiffusersFolder.resolve(path);
    JsonConfig config = folder.config();
    String cls = config.className();
    BiFunction<JsonConfig, WeightScope, DiffusersModel> factory = cls == null ? null : MODELS.get(cls);
    if (factory == null) {
      throw new WeightLoadException(folder.configFile() + ": _class_name " + (cls == null ? "is missing" : "\"" + cls
          + "\" is not supported") + "; supported: " + supported());
    }
    try (SafetensorsSource weights = folder.openWeights()) {
      return factory.apply(config, WeightScope.load(weights, dtype));
    } catch (IllegalArgumentException e) {
      throw new WeightLoadException(folder.configFile() + ": " + e.getMessage(), e);
    }
  }

  /** A model with generated weights from a config (tests, training from scratch). */
  public static DiffusersModel random(String configJson, long seed, ScalarType dtype) {
    NativeRuntime.initialize();
    JsonConfig config = JsonConfig.parse(configJson, "config");
    BiFunction<JsonConfig, WeightScope, DiffusersModel> factory = MODELS.get(config.className());
    if (factory == null) {
      throw new IllegalArgumentException("_class_name " + config.className() + " is not supported; supported: "
          + supported());
    }
    return factory.apply(config, WeightScope.random(seed, dtype));
  }

  /** Saves a model as a diffusers folder (one file up to 5 GB per shard, as diffusers does). */
  public static void save(DiffusersModel model, Path dir) {
    DiffusersFolder.save(dir, model.configJson(), model.parameters(), 5L << 30);
  }
}
