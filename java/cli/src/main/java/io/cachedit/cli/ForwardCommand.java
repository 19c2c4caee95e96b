package io.cachedit.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.cachedit.io.SafetensorsFile;
import io.cachedit.io.SafetensorsWriter;
import io.cachedit.models.common.DiffusersTransformer;
import io.cachedit.models.common.ForwardInputs;
import io.cachedit.pipeline.ModelRegistry;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code cachedit forward}: one model call on saved inputs, for checking numbers. */
@Command(name = "forward", mixinStandardHelpOptions = true,
    description = {"Runs one model call on inputs saved as safetensors and writes its outputs under the reference "
        + "names: a transformer's forward (sample, or sample.0, sample.1, ...), a text encoder's forward "
        + "(last_hidden_state, pooler_output, text_embeds, hidden_states.<i>), a VAE's decode (sample) or encode "
        + "(latent_dist.mean, latent_dist.logvar, latent_dist.std)."})
final class ForwardCommand implements Callable<Integer> {
  @Option(names = "--model", required = true, description = "a component folder (config.json + safetensors), a "
      + "folder holding one (transformer/, text_encoder/, vae/, ...), or a .safetensors file")
  Path model;

  @Option(names = "--component", description = "which component folder of --model to run when it holds several "
      + "(text_encoder, text_encoder_2, vae, ...)")
  String component;

  @Option(names = "--call", defaultValue = "forward", description = "forward (transformers, text encoders), decode or "
      + "encode (VAEs) (default ${DEFAULT-VALUE})")
  String call;

  @Option(names = "--inputs", required = true,
      description = "safetensors with tensors named as the call's arguments (hidden_states, timestep, ...; input_ids, "
          + "attention_mask; z for decode, x for encode)")
  Path inputs;

  @Option(names = "--args", description = "JSON object of non-tensor forward arguments")
  Path args;

  @Option(names = "--out", required = true, description = "output safetensors (tensor 'sample')")
  Path out;

  @Option(names = "--dtype", defaultValue = "fp32", description = "fp32, bf16 or fp16 (default ${DEFAULT-VALUE})")
  String dtype;

  @Option(names = "--attention", defaultValue = "auto",
      description = "SDPA backend: auto, math, flash, efficient, cudnn (default ${DEFAULT-VALUE})")
  String attention;

  @Option(names = "--parallel", paramLabel = "<modes>", description = "parallelism across the processes of "
      + "cachedit launch: ulysses=N, ring=N, tp=N and anything, float8, async, allgather (docs/parallelism.md); "
      + "rank 0 writes --out")
  String parallel;

  @Option(names = "--quantize", paramLabel = "TYPE", description = QuantizeOption.DESCRIPTION)
  String quantize;

  @Override
  public Integer call() throws Exception {
    io.cachedit.models.common.Sdpa backend = parseBackend(attention);
    io.cachedit.image.Images.checkWritable(out);  // before loading anything
    io.cachedit.quant.QuantizeConfig quantization = QuantizeOption.parse(quantize);
    io.cachedit.parallel.ParallelismConfig parallelism = ParallelRun.config(parallel, null);
    Map<String, Object> values = new LinkedHashMap<>();
    if (args != null) {
      Object parsed = new ObjectMapper().readValue(Files.readString(args), Object.class);
      if (!(parsed instanceof Map<?, ?> m)) {
        throw io.cachedit.error.ConfigException.forField("--args", args + " must hold a JSON object");
      }
      m.forEach((k, v) -> values.put(String.valueOf(k), v));
    }
    Path target = resolve(model, component, call);
    if (!isTransformer(target)) {
      if (parallelism != null || quantization != null) {
        throw io.cachedit.error.ConfigException.forField(parallelism != null ? "--parallel" : "--quantize",
            "--parallel and --quantize apply to transformers; " + target + " is another component");
      }
      return callComponent(target, values);
    }
    if (!call.equals("forward")) {
      throw io.cachedit.error.ConfigException.forField("--call", "--call " + call + ": a transformer runs forward");
    }
    long start = System.nanoTime();
    ParallelRun pr = ParallelRun.join(parallelism, target);
    try (pr; DiffusersTransformer m = ModelRegistry.defaults().loadTransformer(target, Dtypes.parse(dtype),
             pr.weights());
         SafetensorsFile in = SafetensorsFile.open(inputs);
         PointerScope scope = new PointerScope();
         NoGradGuard noGrad = new NoGradGuard()) {
      m.setAttention(backend);  // the backend each rank's parallel attention runs locally
      QuantizeOption.apply(m, quantization, pr.root() ? System.err : null);
      Map<String, Tensor> tensors = new LinkedHashMap<>();
      for (String k : in.keys()) {
        tensors.put(k, in.tensor(k));
      }
      long loaded = System.nanoTime();
      // diffusers' output names: sample, or sample.0, sample.1, ... where the forward returns a list
      Map<String, Tensor> outputs;
      pr.install(java.util.List.of(m));
      outputs = m.outputs(new ForwardInputs(tensors, values), null);
      long done = System.nanoTime();
      if (!pr.root()) {
        return 0;
      }
      SafetensorsWriter.write(out, outputs, pr.active() ? Map.of("model", m.className(), "dtype", dtype, "parallel",
          pr.config().strify()) : Map.of("model", m.className(), "dtype", dtype));
      Tensor first = outputs.values().iterator().next();
      System.out.printf("%s: %s %s %s, load %.2f s, forward %.3f s -> %s%n", m.className(),
          outputs.size() == 1 ? outputs.keySet().iterator().next() : outputs.size() + " outputs, first",
          java.util.Arrays.toString(first.sizes().vec().get()), first.scalar_type(), (loaded - start) / 1e9,
          (done - loaded) / 1e9, out);
    }
    return 0;
  }

  /**
   * The model folder (or file) {@code --model} and {@code --component} name: the folder itself when it
   * holds a config.json, else its component folder; of several, the one {@code --call} runs (a VAE for
   * decode/encode, else the transformer, then text_encoder, text_encoder_2, text_encoder_3).
   */
  static Path resolve(Path model, String component, String call) {
    if (component != null) {
      Path sub = model.resolve(component);
      if (!Files.isRegularFile(sub.resolve("config.json"))) {
        throw io.cachedit.error.ConfigException.forField("--component", "--component " + component + ": " + sub
            + " has no config.json");
      }
      return sub;
    }
    if (Files.isRegularFile(model) || Files.isRegularFile(model.resolve("config.json"))
        || Files.isRegularFile(model.resolve("transformer/config.json")) || !Files.isDirectory(model)) {
      return model;
    }
    java.util.List<String> found = new java.util.ArrayList<>();
    try (java.util.stream.Stream<Path> subs = Files.list(model)) {
      subs.filter(p -> Files.isRegularFile(p.resolve("config.json"))).map(p -> p.getFileName().toString()).sorted()
          .forEach(found::add);
    } catch (java.io.IOException e) {
      throw new io.cachedit.error.WeightLoadException("cannot list " + model + ": " + e.getMessage(), e);
    }
    boolean vaeCall = call.equals("decode") || call.equals("encode");
    java.util.List<String> fitting = new java.util.ArrayList<>();
    for (String f : found) {
      String cls = io.cachedit.io.JsonConfig.read(model.resolve(f).resolve("config.json")).className();
      if ((cls != null && cls.startsWith("Autoencoder")) == vaeCall) {
        fitting.add(f);
      }
    }
    if (fitting.size() == 1) {
      return model.resolve(fitting.get(0));
    }
    for (String preferred : java.util.List.of("transformer", "text_encoder", "text_encoder_2", "text_encoder_3", "vae")) {
      if (fitting.contains(preferred)) {
        return model.resolve(preferred);
      }
    }
    if (found.size() == 1) {
      return model.resolve(found.get(0));
    }
    throw io.cachedit.error.ConfigException.forField("--model", found.isEmpty()
        ? model + " holds no config.json and no component folder with one"
        : model + " holds several components " + found + "; choose one with --component");
  }

  private static boolean isTransformer(Path target) {
    io.cachedit.io.DiffusersFolder f = io.cachedit.io.DiffusersFolder.resolve(target);
    String cls = f.config().className();
    return cls == null || !java.util.Set.of("CLIPTextModel", "CLIPTextModelWithProjection", "T5EncoderModel",
        "UMT5EncoderModel", "AutoencoderKL").contains(cls);
  }

  private int callComponent(Path target, Map<String, Object> values) throws Exception {
    long start = System.nanoTime();
    try (io.cachedit.models.common.DiffusersModel m = ModelRegistry.defaults().load(target, Dtypes.parse(dtype));
         SafetensorsFile in = SafetensorsFile.open(inputs);
         PointerScope scope = new PointerScope();
         NoGradGuard noGrad = new NoGradGuard()) {
      if (!(m instanceof io.cachedit.models.common.ComponentModel c)) {
        throw new io.cachedit.error.UnsupportedModelException(target + ": " + m.className() + " has no call to run");
      }
      if (!c.calls().contains(call)) {
        throw io.cachedit.error.ConfigException.forField("--call", "--call " + call + ": " + m.className() + " runs "
            + String.join(" or ", c.calls()));
      }
      Map<String, Tensor> tensors = new LinkedHashMap<>();
      for (String k : in.keys()) {
        tensors.put(k, in.tensor(k));
      }
      long loaded = System.nanoTime();
      Map<String, Tensor> outputs = c.call(call, new ForwardInputs(tensors, values));
      long done = System.nanoTime();
      Map<String, Tensor> contiguous = new LinkedHashMap<>();
      outputs.forEach((k, v) -> contiguous.put(k, v.contiguous()));
      SafetensorsWriter.write(out, contiguous, Map.of("model", m.className(), "dtype", dtype, "call", call));
      System.out.printf("%s.%s: %s, load %.2f s, call %.3f s -> %s%n", m.className(), call, outputs.keySet(),
          (loaded - start) / 1e9, (done - loaded) / 1e9, out);
    }
    return 0;
  }

  static io.cachedit.models.common.Sdpa parseBackend(String name) {
    try {
      return io.cachedit.models.common.Sdpa.parse(name);
    } catch (io.cachedit.error.ConfigException e) {
      throw io.cachedit.error.ConfigException.forField("--attention", "--attention " + name
          + " is not one of auto, math, flash, efficient, cudnn");
    }
  }
}
