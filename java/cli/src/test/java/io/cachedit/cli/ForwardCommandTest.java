package io.cachedit.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.cachedit.io.SafetensorsFile;
import io.cachedit.io.SafetensorsWriter;
import io.cachedit.models.FluxModelTestSupport;
import io.cachedit.models.TinyConfigs;
import io.cachedit.models.common.DiffusersTransformer;
import io.cachedit.models.common.ForwardInputs;
import io.cachedit.pipeline.ModelRegistry;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code cachedit forward} end to end: real files in, real file out. */
class ForwardCommandTest {
  @Test
  void forward_writesTheSampleTheModelComputes(@TempDir Path dir) throws Exception {
    try (PointerScope scope = new PointerScope();
         DiffusersTransformer model = ModelRegistry.defaults().randomTransformer(TinyConfigs.flux(true), 3, ScalarType.Float)) {
      Path modelDir = dir.resolve("model/transformer");
      ModelRegistry.save(model, modelDir);
      Map<String, Tensor> inputs = FluxModelTestSupport.inputs(2, 0.75);
      SafetensorsWriter.write(dir.resolve("in.safetensors"), inputs, Map.of());
      Files.writeString(dir.resolve("args.json"), "{\"return_dict\": false}");
      int code = Main.run("forward", "--model", dir.resolve("model").toString(), "--inputs",
          dir.resolve("in.safetensors").toString(), "--args", dir.resolve("args.json").toString(), "--out",
          dir.resolve("out.safetensors").toString());
      assertEquals(0, code);
      Tensor expected = model.forward(ForwardInputs.of(inputs), null);
      try (SafetensorsFile out = SafetensorsFile.open(dir.resolve("out.safetensors"))) {
        assertTrue(torch.equal(expected, out.tensor("sample")));
        assertEquals("FluxTransformer2DModel", out.metadata().get("model"));
      }
      // bf16: runs and writes bf16
      assertEquals(0, Main.run("forward", "--model", modelDir.toString(), "--inputs",
          dir.resolve("in.safetensors").toString(), "--out", dir.resolve("out16.safetensors").toString(),
          "--dtype", "bf16"));
      try (SafetensorsFile out = SafetensorsFile.open(dir.resolve("out16.safetensors"))) {
        assertEquals(ScalarType.BFloat16, out.tensor("sample").scalar_type().intern());
      }
      // the math SDPA backend agrees with the default one to fp32 rounding
      assertEquals(0, Main.run("forward", "--model", modelDir.toString(), "--inputs",
          dir.resolve("in.safetensors").toString(), "--out", dir.resolve("math.safetensors").toString(),
          "--attention", "math"));
      try (SafetensorsFile out = SafetensorsFile.open(dir.resolve("math.safetensors"))) {
        assertTrue(expected.sub(out.tensor("sample")).abs().max().item_double() < 1e-4);
      }
    }
  }

  @Test
  void zImage_writesOneSamplePerImageAsDiffusersReturnsAList(@TempDir Path dir) throws Exception {
    try (PointerScope scope = new PointerScope();
         DiffusersTransformer model = ModelRegistry.defaults().randomTransformer(TinyConfigs.zImage(), 3,
             ScalarType.Float)) {
      ModelRegistry.save(model, dir.resolve("model/transformer"));
      torch.manual_seed(4);
      Map<String, Tensor> inputs = new java.util.LinkedHashMap<>();
      inputs.put("x.0", torch.randn(4, 1, 8, 12));
      inputs.put("x.1", torch.randn(4, 1, 8, 8));  // another size: a list, not a batch
      inputs.put("t", torch.full(new long[] {2}, new org.bytedeco.pytorch.Scalar(0.5)));
      inputs.put("cap_feats.0", torch.randn(5, 10));
      inputs.put("cap_feats.1", torch.randn(37, 10));
      SafetensorsWriter.write(dir.resolve("in.safetensors"), inputs, Map.of());
      Files.writeString(dir.resolve("args.json"), "{\"return_dict\": false, \"patch_size\": 2}");
      assertEquals(0, Main.run("forward", "--model", dir.resolve("model").toString(), "--inputs",
          dir.resolve("in.safetensors").toString(), "--args", dir.resolve("args.json").toString(), "--out",
          dir.resolve("out.safetensors").toString()));
      Map<String, Tensor> expected = model.outputs(new ForwardInputs(inputs, Map.of("patch_size", 2)), null);
      assertEquals(java.util.Set.of("sample.0", "sample.1"), expected.keySet());
      try (SafetensorsFile out = SafetensorsFile.open(dir.resolve("out.safetensors"))) {
        assertEquals(java.util.Set.copyOf(expected.keySet()), java.util.Set.copyOf(out.keys()));
        assertTrue(torch.equal(expected.get("sample.0"), out.tensor("sample.0")));
        assertTrue(torch.equal(expected.get("sample.1"), out.tensor("sample.1")));
        assertArrayEquals(new long[] {4, 1, 8, 8}, out.tensor("sample.1").sizes().vec().get());
      }
    }
  }

  @Test
  void errors_areOneLineAndNonZero(@TempDir Path dir) {
    PrintStream err = System.err;
    ByteArrayOutputStream buf = new ByteArrayOutputStream();
    System.setErr(new PrintStream(buf, true, StandardCharsets.UTF_8));
    try {
      assertEquals(1, Main.run("forward", "--model", dir.resolve("nope").toString(), "--inputs", "x", "--out", "y"));
      assertTrue(buf.toString(StandardCharsets.UTF_8).contains("nope"), buf.toString(StandardCharsets.UTF_8));
      assertEquals(2, Main.run("forward", "--model", "m"));  // missing required options
      buf.reset();
      assertEquals(1, Main.run("forward", "--model", dir.toString(), "--inputs", "x", "--out", "y", "--attention",
          "fastest"));
      assertTrue(buf.toString(StandardCharsets.UTF_8).contains("--attention fastest"), buf.toString(StandardCharsets.UTF_8));
    } finally {
      System.setErr(err);
    }
  }
}
