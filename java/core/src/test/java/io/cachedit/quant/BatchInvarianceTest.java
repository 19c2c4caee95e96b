package io.cachedit.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.cachedit.kernels.Kernels;
import io.cachedit.kernels.NativeRuntime;
import io.cachedit.models.common.DiffusersTransformer;
import io.cachedit.models.common.Linear;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The batch-invariant fp32 linear against libtorch's, its row invariance, and the model policy. */
class BatchInvarianceTest {
  @BeforeAll
  static void init() {
    NativeRuntime.initialize();
  }

  @Test
  void kernelMatchesLibtorchAndRowsDoNotDependOnTheBatch() {
    try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
      torch.manual_seed(3);
      Tensor w = torch.randn(70, 136);
      Tensor b = torch.randn(70);
      Tensor x = torch.randn(211, 136);
      Kernels k = Kernels.withThreads(2);
      Tensor packed = k.packInvariantWeight(w);
      Tensor y = k.invariantLinear(x, packed, 70, 136, b);
      Tensor ref = torch.linear(x, w, b);
      double err = y.sub(ref).abs().max().item_double();
      assertTrue(err < 1e-4, "vs libtorch: " + err);
      for (int[] win : new int[][] {{0, 1}, {0, 2}, {3, 7}, {100, 53}, {205, 6}}) {
        Tensor alone = k.invariantLinear(x.narrow(0, win[0], win[1]), packed, 70, 136, b);
        assertTrue(torch.equal(alone, y.narrow(0, win[0], win[1])), "rows " + win[0] + "+" + win[1]);
      }
      Tensor one = Kernels.withThreads(1).invariantLinear(x, packed, 70, 136, b);
      assertTrue(torch.equal(one, y), "thread count changes nothing");
      Tensor batched3d = k.invariantLinear(x.view(211, 1, 136), packed, 70, 136, null);
      assertEquals(3, batched3d.dim());
      assertThrows(IllegalArgumentException.class, () -> k.invariantLinear(x.to(torch.ScalarType.Double), packed, 70,
          136, null));
      assertThrows(IllegalArgumentException.class, () -> k.invariantLinear(x.narrow(1, 0, 100), packed, 70, 136,
          null));
    }
  }

  @Test
  void modelPolicyGivesEachSampleTheSameBitsAloneOrBatched() {
    try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard();
         DiffusersTransformer m = QuantizeTest.tinyFlux()) {
      Linear q = m.linearLayers().get("transformer_blocks.0.attn.to_q");
      Tensor dense = q.weight().clone();
      int converted = BatchInvariance.apply((io.cachedit.models.common.DiffusersModel) m);
      assertEquals(m.linearLayers().size(), converted);
      assertTrue(BatchInvariance.applied((io.cachedit.models.common.DiffusersModel) m));
      assertEquals("fp32_batch_invariant", q.kernel().describe());
      assertTrue(torch.equal(q.kernel().checkpointTensors().get("weight"), dense), "the dense weight is recoverable");
      Tensor a = torch.randn(1, 9, q.inFeatures());
      Tensor b = torch.randn(3, 9, q.inFeatures());
      Tensor both = q.forward(torch.cat(new TensorVector(a, b), 0));
      assertTrue(torch.equal(q.forward(a), both.narrow(0, 0, 1)));
      assertTrue(torch.equal(q.forward(b), both.narrow(0, 1, 3)));
      assertEquals(0, BatchInvariance.apply((io.cachedit.models.common.DiffusersModel) m), "idempotent");
    }
  }

  @Test
  void bf16Kernel_isTheFp64ProductOfRoundedOperands_andRowsDoNotDependOnTheBatch() {
    try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
      torch.manual_seed(5);
      Tensor w = torch.randn(70, 137);  // odd inputs: the last pair is padded
      Tensor b = torch.randn(70);
      Tensor x = torch.randn(211, 137);
      Kernels k = Kernels.withThreads(2);
      Tensor packed = k.packBf16Weight(w);
      Tensor y = k.bf16Linear(x, packed, 70, 137, b);
      org.bytedeco.pytorch.global.torch.ScalarType bf16 = org.bytedeco.pytorch.global.torch.ScalarType.BFloat16;
      org.bytedeco.pytorch.global.torch.ScalarType f64 = org.bytedeco.pytorch.global.torch.ScalarType.Double;
      Tensor ref = torch.linear(x.to(bf16).to(f64), w.to(bf16).to(f64), b.to(f64));
      double err = y.to(f64).sub(ref).abs().max().item_double();
      assertTrue(err < 1e-4, "vs fp64 of bf16 operands: " + err);
      double fromFp32 = y.sub(torch.linear(x, w, b)).abs().max().item_double();
      assertTrue(fromFp32 > 1e-3 && fromFp32 < 0.5, "bf16 rounding shows, but only as rounding: " + fromFp32);
      Tensor alone = k.bf16Linear(x.narrow(0, 100, 1), packed, 70, 137, b);
      assertTrue(torch.equal(alone, y.narrow(0, 100, 1)), "a row alone gives the same bits");
      assertTrue(Kernels.bf16LinearIsa().equals("avx512bf16") || Kernels.bf16LinearIsa().equals("default"));
      assertThrows(IllegalArgumentException.class, () -> k.bf16Linear(x, k.packInvariantWeight(w), 70, 137, b));
    }
  }

  @Test
  void bf16ModelPolicy_reportsItsKernelAndRecoversTheRoundedWeight() {
    try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard();
         DiffusersTransformer m = QuantizeTest.tinyFlux()) {
      Linear q = m.linearLayers().get("transformer_blocks.0.attn.to_q");
      Tensor rounded = q.weight().to(org.bytedeco.pytorch.global.torch.ScalarType.BFloat16)
          .to(org.bytedeco.pytorch.global.torch.ScalarType.Float);
      int converted = BatchInvariance.apply((io.cachedit.models.common.DiffusersModel) m, LinearCompute.BF16);
      assertEquals(m.linearLayers().size(), converted);
      assertEquals("bf16_compute", q.kernel().describe());
      assertEquals(q.outFeatures() * q.inFeatures() * 2L, q.kernel().weightBytes());
      assertTrue(torch.equal(q.kernel().checkpointTensors().get("weight"), rounded), "the bf16 weight is recoverable");
      Tensor a = torch.randn(1, 9, q.inFeatures());
      Tensor b = torch.randn(3, 9, q.inFeatures());
      Tensor both = q.forward(torch.cat(new TensorVector(a, b), 0));
      assertTrue(torch.equal(q.forward(b), both.narrow(0, 1, 3)));
      assertEquals(LinearCompute.BF16, LinearCompute.parse(" BF16 "));
      assertThrows(io.cachedit.error.ConfigException.class, () -> LinearCompute.parse("fp8"));
    }
  }
}
