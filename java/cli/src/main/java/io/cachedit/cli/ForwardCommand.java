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

/** {@code cachedit forward}: one transformer forward on saved inputs, for checking numbers. */
@Command(name = "forward", mixinStandardHelpOptions = true,
    description = "Runs one transformer forward on inputs saved as safetensors and writes its outputs under diffusers' names (sample, or sample.0, sample.1, ... for list outputs).")
final class ForwardCommand implements Callable<Integer> {
  @Option(names = "--model", required = true, description = "diffusers folder (pipeline or transformer) or .safetensors")
  Path model;

  @Option(names = "--inputs", required = true,
      description = "safetensors with tensors named as the diffusers forward arguments (hidden_states, timestep, ...)")
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
    long start = System.nanoTime();
    ParallelRun pr = ParallelRun.join(parallelism, model);
    try (pr; DiffusersTransformer m = ModelRegistry.defaults().loadTransformer(model, Dtypes.parse(dtype),
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

  static io.cachedit.models.common.Sdpa parseBackend(String name) {
    try {
      return io.cachedit.models.common.Sdpa.parse(name);
    } catch (io.cachedit.error.ConfigException e) {
      throw io.cachedit.error.ConfigException.forField("--attention", "--attention " + name
          + " is not one of auto, math, flash, efficient, cudnn");
    }
  }
}
