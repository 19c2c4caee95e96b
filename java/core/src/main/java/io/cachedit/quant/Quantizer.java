package io.cachedit.quant;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.cachedit.error.ConfigException;
import io.cachedit.error.WeightLoadException;
import io.cachedit.io.DiffusersFolder;
import io.cachedit.io.SafetensorsDType;
import io.cachedit.io.SafetensorsSource;
import io.cachedit.kernels.QuantActivation;
import io.cachedit.kernels.QuantFormat;
import io.cachedit.models.common.BlockList;
import io.cachedit.models.common.DiffusersModel;
import io.cachedit.models.common.DiffusionPipeline;
import io.cachedit.models.common.Linear;
import io.cachedit.models.common.LinearKernel;
import io.cachedit.models.common.Transformer;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Quantises a model's linear layers as a {@link QuantizeConfig} says, and writes and reads quantised
 * checkpoints (docs/quantization.md). Quantisation is a policy applied to a loaded model: each chosen
 * {@link Linear} gets a {@link LinearKernel} in place of its dense weight, which is freed. Under tensor
 * parallelism each rank quantises its own shards (quantise after loading for the group).
 */
public final class Quantizer {
  private static final Logger LOG = LoggerFactory.getLogger(Quantizer.class);
  private static final ObjectMapper JSON = new ObjectMapper();
  /** The {@code quant_method} of cachedit's checkpoints. */
  public static final String QUANT_METHOD = "cachedit";

  private Quantizer() {}

  /**
   * Quantises {@code model} in place. Every layer's plan is made and every weight quantised before
   * any layer is replaced, so an error leaves the model as it was.
   *
   * @throws IllegalStateException if the model is already quantised
   * @throws ConfigException for a layer the type cannot take (without per-tensor fallback), or a
   *     repeated block list the model does not have
   */
  public static QuantizeReport quantize(DiffusersModel model, QuantizeConfig config) {
    return quantize(model, model.className(), config, config.quantType(), config.excludeLayers());
  }

  /**
   * Quantises the pipeline's transformers ({@code transformer}, {@code transformer_2}, ...), or the
   * components {@code components_to_quantize} names, each with its overrides.
   */
  public static List<QuantizeReport> quantize(DiffusionPipeline pipeline, QuantizeConfig config) {
    Map<String, DiffusersModel> components = components(pipeline);
    Map<String, QuantizeConfig.Component> chosen = config.componentsToQuantize();
    if (chosen == null) {
      chosen = new LinkedHashMap<>();
      for (String name : components.keySet()) {
        chosen.put(name, new QuantizeConfig.Component(null, null));
      }
    }
    for (String name : chosen.keySet()) {
      if (!components.containsKey(name)) {
        throw ConfigException.forField("components_to_quantize", "the pipeline has no component \"" + name
            + "\"; its components: " + components.keySet());
      }
    }
    for (String name : chosen.keySet()) {
      requireNotQuantized(components.get(name), name);
    }
    List<QuantizeReport> reports = new ArrayList<>();
    for (Map.Entry<String, QuantizeConfig.Component> e : chosen.entrySet()) {
      QuantizeConfig.Component c = e.getValue();
      reports.add(quantize(components.get(e.getKey()), e.getKey(), config,
          c.quantType() == null ? config.quantType() : c.quantType(),
          c.excludeLayers() == null ? config.excludeLayers() : c.excludeLayers()));
    }
    return reports;
  }

  /** The pipeline's models by component name: {@code transformer}, {@code transformer_2}, ... */
  static Map<String, DiffusersModel> components(DiffusionPipeline pipeline) {
    Map<String, DiffusersModel> out = new LinkedHashMap<>();
    List<? extends Transformer> ts = pipeline.transformers();
    for (int i = 0; i < ts.size(); i++) {
      if (ts.get(i) instanceof DiffusersModel m) {
        out.put(i == 0 ? "transformer" : "transformer_" + (i + 1), m);
      }
    }
    return out;
  }

  /** Whether any linear layer of {@code model} is quantised. */
  public static boolean isQuantized(DiffusersModel model) {
    for (Linear l : model.linearLayers().values()) {
      if (l.kernel() != null) {
        return true;
      }
    }
    return false;
  }

  private static void requireNotQuantized(DiffusersModel model, String name) {
    int n = 0;
    String type = null;
    for (Linear l : model.linearLayers().values()) {
      if (l.kernel() != null) {
        n++;
        type = l.kernel().describe();
      }
    }
    if (n > 0) {
      throw new IllegalStateException(name + " is already quantised (" + n + " layers, e.g. " + type + "); "
          + "quantising twice would compound the error: load the unquantised weights to quantise again");
    }
  }

  private static QuantizeReport quantize(DiffusersModel model, String name, QuantizeConfig config, QuantType type,
      List<String> excludes) {
    requireNotQuantized(model, name);
    Map<String, Linear> layers = model.linearLayers();
    List<String> regions = regions(model, config);
    Set<String> unmatched = new LinkedHashSet<>(excludes);
    Map<String, LayerPlan> plans = new LinkedHashMap<>();
    List<QuantizeReport.Skipped> skipped = new ArrayList<>();
    List<String> errors = new ArrayList<>();
    long before = 0;
    for (Map.Entry<String, Linear> e : layers.entrySet()) {
      String layer = e.getKey();
      Linear l = e.getValue();
      before += denseBytes(l);
      String exclude = null;
      for (String x : excludes) {
        if (layer.contains(x)) {
          unmatched.remove(x);
          exclude = exclude == null ? x : exclude;
        }
      }
      if (exclude != null) {
        skipped.add(new QuantizeReport.Skipped(layer, "excluded by \"" + exclude + "\" (exclude_layers)"));
        continue;
      }
      if (config.regionalQuantize() && regions.stream().noneMatch(r -> layer.startsWith(r + "."))) {
        skipped.add(new QuantizeReport.Skipped(layer, "outside the repeated blocks " + regions
            + " (regional_quantize)"));
        continue;
      }
      QuantType t = type;
      for (Map.Entry<String, QuantType> p : config.precisionPlan().entrySet()) {
        if (layer.contains(p.getKey())) {
          t = p.getValue();
          break;
        }
      }
      LayerPlan plan = LayerPlan.of(t, config.groupSize());
      if (plan.format() == QuantFormat.INT4 && l.inFeatures() % plan.group() != 0) {
        String why = "group_size " + plan.group() + " does not divide its " + l.inFeatures() + " inputs";
        if (!config.perTensorFallback()) {
          errors.add(layer + ": " + why);
          continue;
        }
        plan = LayerPlan.int4Fallback(t, why);
      }
      plans.put(layer, plan);
    }
    if (!errors.isEmpty()) {
      throw ConfigException.forField("group_size", name + ": " + errors.size() + " layer(s) cannot be " + type
          + "-quantised: " + String.join("; ", errors.subList(0, Math.min(5, errors.size())))
          + (errors.size() > 5 ? "; ..." : "") + ". Choose a group_size that divides them, or set "
          + "per_tensor_fallback: true");
    }
    // Quantise everything first; install only when every layer succeeded.
    Map<String, QuantizedLinear> made = new LinkedHashMap<>();
    try (PointerScope scope = new PointerScope()) {
      for (Map.Entry<String, LayerPlan> e : plans.entrySet()) {
        Linear l = layers.get(e.getKey());
        try {
          made.put(e.getKey(), QuantizedLinear.quantize(e.getKey(), l.weight(), e.getValue()));
        } catch (IllegalArgumentException ex) {
          throw new ConfigException(name + ": layer " + e.getKey() + " cannot be quantised: " + ex.getMessage());
        }
      }
    } catch (RuntimeException ex) {
      made.values().forEach(QuantizedLinear::close);
      throw ex;
    }
    List<QuantizeReport.Layer> done = new ArrayList<>();
    long after = before;
    for (Map.Entry<String, QuantizedLinear> e : made.entrySet()) {
      Linear l = layers.get(e.getKey());
      long dense = denseBytes(l);
      l.install(e.getValue());
      long q = e.getValue().weightBytes();
      after += q - dense;
      done.add(new QuantizeReport.Layer(e.getKey(), e.getValue().describe(), l.inFeatures(), l.outFeatures(), dense,
          q));
      if (config.verbose()) {
        LOG.info("{}: {} -> {} ({} -> {} bytes)", name, e.getKey(), e.getValue().describe(), dense, q);
      }
    }
    if (excludes.equals(QuantizeConfig.DEFAULT_EXCLUDE_LAYERS)) {
      unmatched.clear();  // the reference's defaults name layers many models do not have
    } else if (!unmatched.isEmpty()) {
      LOG.warn("{}: exclude_layers patterns that matched no layer: {}", name, unmatched);
    }
    QuantizeReport report = new QuantizeReport(name, done, skipped, before, after, new ArrayList<>(unmatched));
    LOG.info("{}", report.summary());
    if (config.serializeTo() != null) {
      save(model, config.serializeTo());
    }
    return report;
  }

  private static long denseBytes(Linear l) {
    return l.inFeatures() * l.outFeatures() * (l.dtype() == ScalarType.Float ? 4 : 2);
  }

  /** Block-list names whose layers regional quantisation takes. */
  private static List<String> regions(DiffusersModel model, QuantizeConfig config) {
    List<String> lists = new ArrayList<>();
    if (model instanceof Transformer t) {
      for (BlockList<?> b : t.blockLists()) {
        lists.add(b.name());
      }
    }
    if (config.repeatedBlocks().isEmpty()) {
      return lists;
    }
    for (String r : config.repeatedBlocks()) {
      if (!lists.contains(r)) {
        throw ConfigException.forField("repeated_blocks", model.className() + " has no block list \"" + r
            + "\"; its block lists: " + lists);
      }
    }
    return config.repeatedBlocks();
  }

  // ---- checkpoints ------------------------------------------------------------------------------

  /**
   * What a checkpoint of {@code model} holds: its config.json (with a {@code quantization_config}
   * when layers are quantised) and every tensor, quantised layers as {@code weight} (canonical
   * layout) and {@code weight_scale}.
   *
   * @param configJson the config.json text
   * @param tensors by checkpoint key
   */
  public record Checkpoint(String configJson, Map<String, Tensor> tensors) {}

  /** The checkpoint of {@code model} (dense models: their config and parameters unchanged). */
  public static Checkpoint checkpoint(DiffusersModel model) {
    Map<String, Tensor> tensors = new LinkedHashMap<>(model.parameters());
    ObjectNode layers = JSON.createObjectNode();
    String firstType = null;
    for (Map.Entry<String, Linear> e : model.linearLayers().entrySet()) {
      LinearKernel k = e.getValue().kernel();
      if (!(k instanceof QuantizedLinear q)) {
        if (k != null) {  // another kernel (batch-invariant fp32): its dense weight, as a plain checkpoint holds it
          k.checkpointTensors().forEach((key, t) -> tensors.put(e.getKey() + "." + key, t));
        }
        continue;
      }
      for (Map.Entry<String, Tensor> t : q.checkpointTensors().entrySet()) {
        tensors.put(e.getKey() + "." + t.getKey(), t.getValue());
      }
      layers.set(e.getKey(), q.spec(JSON));
      firstType = firstType == null ? q.describe() : firstType;
    }
    if (layers.isEmpty()) {
      return new Checkpoint(model.configJson(), tensors);
    }
    try {
      ObjectNode config = (ObjectNode) JSON.readTree(model.configJson());
      ObjectNode qc = JSON.createObjectNode();
      qc.put("quant_method", QUANT_METHOD);
      qc.put("quant_type", firstType);
      qc.set("layers", layers);
      config.set("quantization_config", qc);
      return new Checkpoint(JSON.writerWithDefaultPrettyPrinter().writeValueAsString(config), tensors);
    } catch (IOException e) {
      throw new IllegalStateException("config of " + model.className() + " is not JSON: " + e.getMessage(), e);
    }
  }

  /** Saves {@code model} (quantised or not) as a diffusers folder that {@code ModelRegistry} loads back. */
  public static void save(DiffusersModel model, Path dir) {
    try (PointerScope scope = new PointerScope()) {
      Checkpoint c = checkpoint(model);
      DiffusersFolder.save(dir, c.configJson(), c.tensors(), 5L << 30);
    }
  }

  /**
   * The layer specs of a {@code quantization_config} object (config.json), validated.
   *
   * @param origin the config file, for errors
   */
  public static Map<String, LayerSpec> readSpec(String quantizationConfigJson, String origin) {
    JsonNode qc;
    try {
      qc = JSON.readTree(quantizationConfigJson);
    } catch (IOException e) {
      throw new WeightLoadException(origin + ": quantization_config is not JSON: " + e.getMessage(), e);
    }
    String method = qc.path("quant_method").asText("");
    if (!QUANT_METHOD.equals(method)) {
      throw new WeightLoadException(origin + ": quantization_config.quant_method is \"" + method + "\"; cachedit "
          + "reads its own quantised checkpoints (quant_method \"" + QUANT_METHOD + "\") only. Load the unquantised "
          + "weights and quantise with cachedit");
    }
    JsonNode layers = qc.path("layers");
    if (!layers.isObject() || layers.isEmpty()) {
      throw new WeightLoadException(origin + ": quantization_config.layers must name the quantised layers");
    }
    Map<String, LayerSpec> out = new LinkedHashMap<>();
    for (Iterator<Map.Entry<String, JsonNode>> it = layers.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      out.put(e.getKey(), LayerSpec.parse(e.getKey(), e.getValue(), origin));
    }
    return out;
  }

  /** Keys that a quantised checkpoint stores quantised: each layer's {@code weight}. */
  public static Set<String> quantizedKeys(Map<String, LayerSpec> spec) {
    Set<String> keys = new LinkedHashSet<>();
    for (String layer : spec.keySet()) {
      keys.add(layer + ".weight");
    }
    return keys;
  }

  /**
   * Installs the quantised layers of a checkpoint into {@code model} (built with
   * {@link #quantizedKeys} as placeholders), validating every weight and scale tensor against the
   * layer. On error nothing is installed.
   */
  public static void restore(DiffusersModel model, SafetensorsSource source, Map<String, LayerSpec> spec) {
    Map<String, Linear> layers = model.linearLayers();
    Map<String, QuantizedLinear> made = new LinkedHashMap<>();
    try (PointerScope scope = new PointerScope()) {
      for (Map.Entry<String, LayerSpec> e : spec.entrySet()) {
        String layer = e.getKey();
        Linear l = layers.get(layer);
        if (l == null) {
          throw new WeightLoadException(source.origin(layer + ".weight") + ": quantization_config names layer "
              + layer + ", which " + model.className() + " does not have");
        }
        made.put(layer, e.getValue().load(layer, l, source));
      }
    } catch (RuntimeException ex) {
      made.values().forEach(QuantizedLinear::close);
      throw ex;
    }
    for (Map.Entry<String, QuantizedLinear> e : made.entrySet()) {
      layers.get(e.getKey()).install(e.getValue());
    }
  }

  /**
   * One quantised layer of a checkpoint.
   *
   * @param describe what it computes (as reported)
   * @param format weight format
   * @param activation activation quantisation
   * @param perTensor one weight scale
   * @param group int4 inputs per scale
   */
  public record LayerSpec(String describe, QuantFormat format, QuantActivation activation, boolean perTensor,
      int group) {

    static LayerSpec parse(String layer, JsonNode n, String origin) {
      String where = origin + ": quantization_config.layers." + layer;
      try {
        QuantFormat f = QuantFormat.valueOf(n.path("format").asText("").toUpperCase(Locale.ROOT));
        QuantActivation a = QuantActivation.valueOf(n.path("activation").asText("").toUpperCase(Locale.ROOT));
        boolean perTensor = n.path("per_tensor").asBoolean(false);
        int group = n.path("group_size").asInt(0);
        if (f == QuantFormat.INT4) {
          QuantizeConfig.checkGroupSize(group);
          if (perTensor) {
            throw new IllegalArgumentException("int4 has no per-tensor form");
          }
        }
        return new LayerSpec(n.path("type").asText(f.name().toLowerCase(Locale.ROOT)), f, a, perTensor,
            f == QuantFormat.INT4 ? group : 0);
      } catch (IllegalArgumentException | ConfigException e) {
        throw new WeightLoadException(where + " is not a valid layer spec (format int8|fp8|int4, activation "
            + Arrays.toString(QuantActivation.values()).toLowerCase(Locale.ROOT) + ", per_tensor, group_size): "
            + e.getMessage(), e);
      }
    }

    QuantizedLinear load(String layer, Linear l, SafetensorsSource source) {
      String wKey = layer + ".weight";
      String sKey = layer + ".weight_scale";
      long out = l.outFeatures();
      long in = l.inFeatures();
      if (format == QuantFormat.INT4 && in % group != 0) {
        throw new WeightLoadException(source.origin(wKey) + ": " + layer + " has " + in + " inputs, which group_size "
            + group + " does not divide");
      }
      long[] wantW = format.storedShape(out, in);
      long[] gotW = source.shape(wKey);
      SafetensorsDType wantType = format == QuantFormat.INT8 ? SafetensorsDType.I8
          : format == QuantFormat.FP8 ? SafetensorsDType.F8_E4M3 : SafetensorsDType.U8;
      if (gotW == null || !Arrays.equals(gotW, wantW) || source.dtype(wKey) != wantType) {
        throw new WeightLoadException(source.origin(wKey) + ": " + wKey + " of a " + describe + " layer must be "
            + wantType + " " + Arrays.toString(wantW) + ", found " + (gotW == null ? "nothing"
                : source.dtype(wKey) + " " + Arrays.toString(gotW)));
      }
      long scales = format.scaleCount(out, in, group, perTensor);
      long[] gotS = source.shape(sKey);
      if (gotS == null || gotS.length != 1 || gotS[0] != scales || source.dtype(sKey) != SafetensorsDType.F32) {
        throw new WeightLoadException(source.origin(sKey) + ": " + sKey + " must be F32 [" + scales + "] for the "
            + describe + " weight " + Arrays.toString(wantW) + " (scales do not match the weight), found "
            + (gotS == null ? "nothing" : source.dtype(sKey) + " " + Arrays.toString(gotS)));
      }
      Tensor s = source.load(sKey).to(ScalarType.Float).contiguous();
      if (!torch.isfinite(s).all().item_bool()) {
        throw new WeightLoadException(source.origin(sKey) + ": " + sKey + " holds NaN or infinite scales");
      }
      Tensor q = source.load(wKey);
      return QuantizedLinear.fromCanonical(layer, describe, format, activation, perTensor, group, q.contiguous(),
          s.clone(), out, in);
    }
  }
}
