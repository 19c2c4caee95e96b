package io.cachedit.parallel;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.cachedit.CacheDit;
import io.cachedit.CacheHandle;
import io.cachedit.cache.CacheOptions;
import io.cachedit.cache.CacheStats;
import io.cachedit.cache.DBCacheConfig;
import io.cachedit.kernels.NativeRuntime;
import io.cachedit.kernels.NativeScope;
import io.cachedit.models.FluxModelTestSupport;
import io.cachedit.models.ModelSpec;
import io.cachedit.models.ModelSpecs;
import io.cachedit.models.common.DiffusersTransformer;
import io.cachedit.parallel.Parallelism;
import io.cachedit.pipeline.ModelRegistry;
import java.io.IOException;
import java.io.Writer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * One rank of a multi-process test ({@link ContextParallelTest} starts it with torchrun's variables):
 * runs a suite of scenarios, each first on this process alone (the single-process reference) and then
 * context-parallel, and writes one JSON line per scenario to {@code <dir>/rank<r>.jsonl}.
 *
 * <p>Arguments: {@code <dir> <suite>}. Suites: {@code modes-2}, {@code modes-3}, {@code modes-4},
 * {@code cache}, {@code fault}, {@code memory}.
 */
public final class CpWorker {
  static final String[] MODELS = {"FLUX.1", "Qwen-Image", "Z-Image", "Wan2.1-T2V", "SD3.5"};
  private static final ObjectMapper JSON = new ObjectMapper();

  private final int rank;
  private final int world;
  private final Writer out;

  private CpWorker(int rank, int world, Writer out) {
    this.rank = rank;
    this.world = world;
    this.out = out;
  }

  public static void main(String[] args) throws Exception {
    NativeRuntime.initialize();
    torch.set_num_threads(1);
    DistributedEnvironment env = DistributedEnvironment.fromEnvironment();
    Path dir = Path.of(args[0]);
    String suite = args[1];
    try (Writer w = Files.newBufferedWriter(dir.resolve("rank" + env.rank() + ".jsonl"), StandardOpenOption.CREATE,
        StandardOpenOption.TRUNCATE_EXISTING)) {
      CpWorker worker = new CpWorker(env.rank(), env.worldSize(), w);
      try {
        switch (suite) {
          case "cache" -> worker.cache();
          case "fault" -> worker.fault(env);
          case "memory" -> worker.memory();
          case "close-early" -> worker.closeEarly(env);
          case "tp-2", "tp-3", "hybrid-4" -> worker.tensorParallel(env, suite);
          case "tp-cache" -> worker.tensorParallelCache(env);
          case "cfg" -> worker.cfgParallel(env);
          default -> worker.modes(env, suite);
        }
      } catch (RuntimeException e) {
        worker.record(Map.of("error", e.getClass().getSimpleName(), "message", String.valueOf(e.getMessage())));
        w.flush();
        e.printStackTrace();
        System.exit(3);
      }
    }
    System.exit(0);  // the JVM's native threads (Gloo, OpenMP) need no orderly shutdown
  }

  private void record(Map<String, Object> line) {
    try {
      Map<String, Object> m = new LinkedHashMap<>(line);
      m.put("rank", rank);
      out.write(JSON.writeValueAsString(m));
      out.write('\n');
      out.flush();
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Every mode against single-process outputs

  /** The parallel configs of a suite: {config spec, inputs ("uneven" or "even")}. */
  static List<String[]> configs(String suite) {
    return switch (suite) {
      case "modes-2" -> List.of(
          new String[] {"ulysses=2", "uneven"},
          new String[] {"ulysses=2,anything", "uneven"},
          new String[] {"ulysses=2,float8", "uneven"},
          new String[] {"ulysses=2,async", "uneven"},
          new String[] {"ulysses=2,anything,float8,async", "uneven"},
          new String[] {"ring=2", "even"},
          new String[] {"ring=2,allgather", "even"});
      case "modes-3" -> List.of(
          new String[] {"ulysses=3", "uneven"},
          new String[] {"ulysses=3,anything,float8", "uneven"},
          new String[] {"ulysses=3,async", "uneven"});
      case "modes-4" -> List.of(
          new String[] {"ulysses=2,ring=2", "even"},
          new String[] {"ulysses=4,anything", "uneven"});
      default -> throw new IllegalArgumentException("unknown suite " + suite);
    };
  }

  private void modes(DistributedEnvironment env, String suite) {
    try (ProcessGroups groups = ProcessGroups.create(env, ProcessGroups.timeoutFromEnvironment())) {
      for (String[] c : configs(suite)) {
        ParallelismConfig config = ParallelismConfig.parse(c[0]);
        for (String name : MODELS) {
          try (PointerScope scope = new PointerScope();
               DiffusersTransformer model = model(name)) {
            Map<String, Tensor> in = inputs(name, c[1].equals("even") ? 4 * 3 : 5, c[1].equals("even"));
            ModelSpec spec = spec(name);
            List<Tensor> reference = loop(model, spec, in, 3);
            long bytesBefore = groups.world().bytesSent();
            List<Tensor> parallel;
            try (ContextParallel cp = ContextParallel.apply(model, config, groups)) {
              parallel = loop(model, spec, in, 3);
            }
            double maxDiff = 0;
            double maxAbs = 0;
            for (int i = 0; i < reference.size(); i++) {
              maxDiff = Math.max(maxDiff, reference.get(i).sub(parallel.get(i)).abs().max().item_double());
              maxAbs = Math.max(maxAbs, reference.get(i).abs().max().item_double());
            }
            List<Tensor> after = loop(model, spec, in, 1);
            record(Map.of("config", c[0], "model", name, "maxDiff", maxDiff, "maxAbs", maxAbs,
                "firstDiff", reference.get(0).sub(parallel.get(0)).abs().max().item_double(),
                "firstAbs", reference.get(0).abs().max().item_double(),
                "restored", torch.equal(after.get(0), reference.get(0)),
                "bytes", groups.world().bytesSent() - bytesBefore));
          }
        }
      }
    }
  }

  static DiffusersTransformer model(String name) {
    return ModelRegistry.defaults().randomTransformer(spec(name).configJson(), 4, ScalarType.Float);
  }

  static ModelSpec spec(String name) {
    return ModelSpecs.all().stream().filter(s -> s.name().equals(name)).findFirst().orElseThrow();
  }

  /**
   * Forward inputs whose text has {@code textLen} tokens; {@code even} picks image sizes every tested
   * group size divides (for ring attention), otherwise sizes 2, 3 and 4 ranks do not all divide.
   */
  static Map<String, Tensor> inputs(String name, int textLen, boolean even) {
    Map<String, Tensor> in = new LinkedHashMap<>(spec(name).inputs().apply(7));
    torch.manual_seed(17);
    switch (name) {
      case "FLUX.1" -> {
        in.put("encoder_hidden_states", torch.randn(2, textLen, 12));
        in.put("txt_ids", torch.zeros(textLen, 3));
        if (!even) {  // 15 image tokens
          in.put("hidden_states", torch.randn(2, 15, 8));
          in.put("img_ids", FluxModelTestSupport.inputs(7, 0.5).get("img_ids").narrow(0, 0, 15));
        }
      }
      case "Qwen-Image" -> {
        in.put("encoder_hidden_states", torch.randn(2, textLen, 12));
        Tensor mask = torch.ones(2, textLen);
        mask.select(0, 1).narrow(0, textLen - 2, 2).zero_();  // the second prompt is shorter
        in.put("encoder_hidden_states_mask", mask);
      }
      case "SD3.5" -> in.put("encoder_hidden_states", torch.randn(2, textLen, 12));
      case "Wan2.1-T2V" -> {
        if (!even) {
          in.put("hidden_states", torch.randn(1, 4, 3, 6, 10));  // 45 patch tokens
        }
      }
      default -> { }  // Z-Image pads every sequence to a multiple of 32
    }
    return in;
  }

  static List<Tensor> loop(DiffusersTransformer model, ModelSpec spec, Map<String, Tensor> inputs, int steps) {
    return ModelSpecs.loop(model, spec, inputs, steps);
  }

  // ---------------------------------------------------------------------------------------------
  // Tensor parallelism (and hybrid CP x TP) against single-process outputs

  /** The configs of a tensor-parallel suite. */
  static List<String> tensorConfigs(String suite) {
    return switch (suite) {
      case "tp-2" -> List.of("tp=2");
      case "tp-3" -> List.of("tp=3");
      case "hybrid-4" -> List.of("ulysses=2,tp=2", "ring=2,tp=2");
      default -> throw new IllegalArgumentException("unknown suite " + suite);
    };
  }

  /** The tiny model with 6 attention heads (so 2 and 3 ranks split them), its other shapes kept. */
  static String sixHeads(String name) {
    String json = spec(name).configJson();
    return switch (name) {
      case "Z-Image" -> json.replace("\"dim\": 24", "\"dim\": 72").replace("\"n_heads\": 2", "\"n_heads\": 6")
          .replace("\"n_kv_heads\": 2", "\"n_kv_heads\": 6");
      case "SD3.5" -> json.replace("\"num_attention_heads\": 2", "\"num_attention_heads\": 6")
          .replace("\"caption_projection_dim\": 16", "\"caption_projection_dim\": 48");
      default -> json.replace("\"num_attention_heads\": 2", "\"num_attention_heads\": 6");
    };
  }

  private void tensorParallel(DistributedEnvironment env, String suite) {
    try (ProcessGroups groups = ProcessGroups.create(env, ProcessGroups.timeoutFromEnvironment())) {
      for (String spec : tensorConfigs(suite)) {
        ParallelismConfig config = ParallelismConfig.parse(spec);
        TensorParallelGroup.Binder tp = TensorParallelGroup.join(groups, config);
        for (String name : MODELS) {
          String json = sixHeads(name);
          try (PointerScope scope = new PointerScope();
               DiffusersTransformer whole = ModelRegistry.defaults().randomTransformer(json, 4, ScalarType.Float);
               DiffusersTransformer shard = ModelRegistry.defaults().randomTransformer(json, 4, ScalarType.Float, tp)) {
            Map<String, Tensor> in = inputs(name, config.contextParallel() ? 4 * 3 : 5, config.contextParallel());
            ModelSpec ms = spec(name);
            List<Tensor> reference = loop(whole, ms, in, 3);
            long weightBytes = 0;
            long wholeBytes = 0;
            for (Tensor t : shard.parameters().values()) {
              weightBytes += t.nbytes();
            }
            long expectedBytes = 0;  // whole tensors where the plan keeps them whole, a 1/tp share where it splits
            var plan = whole.tensorParallelPlan().orElseThrow();
            for (Map.Entry<String, Tensor> e : whole.parameters().entrySet()) {
              long n = e.getValue().nbytes();
              wholeBytes += n;
              boolean split = plan.slice(e.getKey(), e.getValue().sizes().vec().get(), 0, config.tp()) != null;
              expectedBytes += split ? n / config.tp() : n;
            }
            long bytesBefore = tp.group().bytesSent();
            List<Tensor> parallel;
            if (config.contextParallel()) {
              try (ContextParallel cp = ContextParallel.apply(shard, config, groups)) {
                parallel = loop(shard, ms, in, 3);
              }
            } else {
              parallel = loop(shard, ms, in, 3);
            }
            double maxDiff = 0;
            double maxAbs = 0;
            for (int i = 0; i < reference.size(); i++) {
              maxDiff = Math.max(maxDiff, reference.get(i).sub(parallel.get(i)).abs().max().item_double());
              maxAbs = Math.max(maxAbs, reference.get(i).abs().max().item_double());
            }
            record(Map.of("config", spec, "model", name, "maxDiff", maxDiff, "maxAbs", maxAbs,
                "weightBytes", weightBytes, "wholeBytes", wholeBytes, "expectedBytes", expectedBytes,
                "tpBytes", tp.group().bytesSent() - bytesBefore));
          }
        }
      }
    }
  }

  /** Caching on a tensor-parallel model: the facade's options carry tp, every rank decides alike. */
  private void tensorParallelCache(DistributedEnvironment env) {
    ParallelismConfig config = ParallelismConfig.parse("tp=" + world);
    for (String name : List.of("FLUX.1", "Wan2.1-T2V")) {
      String json = sixHeads(name);
      try (PointerScope scope = new PointerScope();
           DiffusersTransformer whole = ModelRegistry.defaults().randomTransformer(json, 4, ScalarType.Float)) {
        ModelSpec ms = spec(name);
        Map<String, Tensor> in = inputs(name, 5, false);
        List<Tensor> reference;
        CacheStats single;
        try (CacheHandle h = CacheDit.enableCache(whole, cacheOptions(name))) {
          reference = loop(whole, ms, in, 12);
          single = h.stats().get(0);
        }
        try (ProcessGroups groups = ProcessGroups.create(env, ProcessGroups.timeoutFromEnvironment());
             DiffusersTransformer shard = ModelRegistry.defaults().randomTransformer(json, 4, ScalarType.Float,
                 TensorParallelGroup.join(groups, config));
             CacheHandle h = CacheDit.enableCache(shard, cacheOptions(name).withParallelism(config))) {
          List<Tensor> parallel = loop(shard, ms, in, 12);
          CacheStats multi = h.stats().get(0);
          double maxDiff = 0;
          for (int i = 0; i < reference.size(); i++) {
            maxDiff = Math.max(maxDiff, reference.get(i).sub(parallel.get(i)).abs().max().item_double());
          }
          record(Map.of("model", name, "singleCached", single.cachedSteps(), "parallelCached", multi.cachedSteps(),
              "parallelDiffs", multi.allDiffs(false), "maxDiff", maxDiff));
        }
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // CFG parallelism: a true-CFG FLUX generation, cached, with its branches on two ranks

  /** A 12-step true-CFG request of two images; {@code batched}: one call of both branches per step. */
  static io.cachedit.pipeline.FluxPipeline.Request cfgRequest(boolean batched) {
    torch.manual_seed(100);
    Tensor prompt = torch.randn(1, 5, 12);
    Tensor pooled = torch.randn(1, 6);
    Tensor neg = torch.randn(1, 5, 12);
    Tensor negPooled = torch.randn(1, 6);
    return new io.cachedit.pipeline.FluxPipeline.Request(prompt, pooled, neg, negPooled, 64, 48, 12, 3.5, 4.0, batched,
        2, 21);
  }

  private void cfgParallel(DistributedEnvironment env) {
    try (PointerScope scope = new PointerScope();
         io.cachedit.models.flux.FluxTransformer2DModel model = (io.cachedit.models.flux.FluxTransformer2DModel)
             ModelRegistry.defaults().randomTransformer(spec("FLUX.1").configJson(), 4, ScalarType.Float)) {
      io.cachedit.pipeline.FluxPipeline pipe = new io.cachedit.pipeline.FluxPipeline(model,
          io.cachedit.pipeline.FlowMatchEulerScheduler.flux());
      // one process: plain, then cached with one cache state per branch (two calls per step)
      Tensor plain = pipe.generate(cfgRequest(true), null);
      Tensor cached;
      CacheStats single;
      try (CacheHandle h = CacheDit.enableCache(pipe, cacheOptions("FLUX.1"))) {
        cached = pipe.generate(cfgRequest(false), null);
        single = h.stats().get(0);
      }
      try (ProcessGroups groups = ProcessGroups.create(env, ProcessGroups.timeoutFromEnvironment());
           Parallelism p = CacheDit.enableParallelism(pipe, ParallelismConfig.parse("cfg=2"), groups)) {
        long before = p.cfgGroup().bytesSent();
        Tensor plainParallel = pipe.generate(cfgRequest(true), null);
        long bytes = p.cfgGroup().bytesSent() - before;
        Tensor cachedParallel;
        CacheStats multi;
        try (CacheHandle h = CacheDit.enableCache(pipe, cacheOptions("FLUX.1"))) {
          cachedParallel = pipe.generate(cfgRequest(false), null);
          multi = h.stats().get(0);
        }
        record(Map.of("plainDiff", plain.sub(plainParallel).abs().max().item_double(),
            "cachedDiff", cached.sub(cachedParallel).abs().max().item_double(),
            "singleCond", single.cachedSteps(), "singleUncond", single.cfgCachedSteps(),
            "parallelCond", multi.cachedSteps(), "parallelUncond", multi.cfgCachedSteps(),
            "gathers", p.cfgGroup().calls(), "bytesPerGeneration", bytes));
      }
      Tensor after = pipe.generate(cfgRequest(true), null);  // closed: both branches here again
      record(Map.of("restored", torch.equal(after, plain)));
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Caching under context parallelism, through the facade (options with a parallelism section)

  /**
   * DBCache F1B0 with a threshold no diff of the tiny model's 12 steps lies within 3% of; Wan also with
   * a TaylorSeer calibrator (its state is per shard under context parallelism).
   */
  static CacheOptions cacheOptions(String model) {
    DBCacheConfig config = DBCacheConfig.builder().fnComputeBlocks(1).bnComputeBlocks(0).maxWarmupSteps(2)
        .residualDiffThreshold(model.equals("FLUX.1") ? 0.65 : 0.41).build();
    return model.equals("FLUX.1") ? CacheOptions.of(config)
        : CacheOptions.of(config, io.cachedit.cache.TaylorSeerCalibratorConfig.ofOrder(1));
  }

  private void cache() {
    for (String name : List.of("FLUX.1", "Wan2.1-T2V")) {
      try (PointerScope scope = new PointerScope();
           DiffusersTransformer model = model(name)) {
        ModelSpec spec = spec(name);
        Map<String, Tensor> in = inputs(name, 5, false);
        List<Tensor> reference;
        CacheStats single;
        try (CacheHandle h = CacheDit.enableCache(model, cacheOptions(name))) {
          reference = loop(model, spec, in, 12);
          single = h.stats().get(0);
        }
        List<Tensor> parallel;
        CacheStats multi;
        try (CacheHandle h = CacheDit.enableCache(model, cacheOptions(name).withParallelism(
            ParallelismConfig.parse("ulysses=" + world + ",anything")))) {
          parallel = loop(model, spec, in, 12);
          multi = h.stats().get(0);
        }
        double maxDiff = 0;
        for (int i = 0; i < reference.size(); i++) {
          maxDiff = Math.max(maxDiff, reference.get(i).sub(parallel.get(i)).abs().max().item_double());
        }
        record(Map.of("model", name, "singleCached", single.cachedSteps(), "parallelCached", multi.cachedSteps(),
            "singleDiffs", single.allDiffs(false), "parallelDiffs", multi.allDiffs(false),
            "maxDiff", maxDiff));
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // A rank lost mid-generation

  private void fault(DistributedEnvironment env) {
    try (ProcessGroups groups = ProcessGroups.create(env, ProcessGroups.timeoutFromEnvironment());
         PointerScope scope = new PointerScope();
         DiffusersTransformer model = model("FLUX.1");
         ContextParallel cp = ContextParallel.apply(model, ParallelismConfig.parse("ulysses=" + world), groups)) {
      ModelSpec spec = spec("FLUX.1");
      Map<String, Tensor> in = inputs("FLUX.1", 5, false);
      loop(model, spec, in, 2);  // steps 0 and 1 of a four-step generation
      record(Map.of("phase", "two steps done"));
      if (rank == 1) {
        Runtime.getRuntime().halt(17);  // dies without closing anything, as a killed process does
      }
      long t0 = System.nanoTime();
      try {
        loop(model, spec, in, 2);  // steps 2 and 3
        record(Map.of("phase", "generation done (unexpected)"));
      } catch (io.cachedit.error.DistributedException e) {
        record(Map.of("phase", "failed", "message", e.getMessage(), "lostRank", e.rank().orElse(-1),
            "ms", (System.nanoTime() - t0) / 1_000_000));
      }
    }
  }

  /** Rank 0 leaves (closes its groups) while the others are inside a collective with it. */
  private void closeEarly(DistributedEnvironment env) {
    ProcessGroups groups = ProcessGroups.create(env, ProcessGroups.timeoutFromEnvironment());
    try (PointerScope scope = new PointerScope()) {
      CommGroup sub = groups.subgroup("early", List.of(0, 1));
      sub.allReduceSum(torch.ones(4));
      if (rank == 0) {
        try {
          Thread.sleep(1000);  // rank 1's data for the next collective is already here
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
        groups.close();
        record(Map.of("phase", "closed"));
        return;
      }
      try {
        Tensor in = torch.ones(1 << 20);
        sub.startAllToAll(torch.empty(1 << 20), in, null, null).waitFor();
        record(Map.of("phase", "reduced (unexpected)"));
      } catch (io.cachedit.error.DistributedException e) {
        record(Map.of("phase", "failed", "message", e.getMessage()));
      }
    }
    groups.close();
  }

  // ---------------------------------------------------------------------------------------------
  // Native memory over many parallel generations

  private void memory() {
    try (PointerScope outer = new PointerScope();
         DiffusersTransformer model = model("FLUX.1");
         CacheHandle h = CacheDit.enableCache(model, cacheOptions("FLUX.1").withParallelism(
             ParallelismConfig.parse("ulysses=" + world + ",anything,float8")))) {
      ModelSpec spec = spec("FLUX.1");
      Map<String, Tensor> in = inputs("FLUX.1", 5, false);
      long after10 = 0;
      long kept10 = 0;
      for (int g = 1; g <= 50; g++) {
        try (PointerScope s = new PointerScope()) {
          loop(model, spec, in, 6);
        }
        if (g == 10) {
          System.gc();
          after10 = Pointer.physicalBytes();
          kept10 = NativeScope.liveKeptHandles();
        }
      }
      System.gc();
      record(Map.of("after10", after10, "after50", Pointer.physicalBytes(), "kept10", kept10,
          "kept50", NativeScope.liveKeptHandles()));
    }
  }
}
