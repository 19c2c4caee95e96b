package io.cachedit.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.cachedit.error.KernelException;
import io.cachedit.models.common.Attention;
import io.cachedit.models.common.Norms;
import io.cachedit.models.common.Rope;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The fused kernels against the libtorch composites they replace: gelu(tanh) alone and as a linear
 * epilogue, and the joint-attention input (head split, RMSNorm, concatenation, rotary embedding).
 */
class FusedKernelsTest {
  @BeforeAll
  static void init() {
    NativeRuntime.initialize();
  }

  private static double maxAbs(Tensor a, Tensor b) {
    return a.sub(b).abs().max().item_double();
  }

  @Test
  void geluTanh_matchesLibtorch() {
    try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
      torch.manual_seed(1);
      Tensor x = torch.randn(1000, 77).mul(new Scalar(4.0));
      Tensor y = Kernels.withThreads(2).geluTanh(x);
      Tensor x64 = x.to(ScalarType.Double);
      // fp64 0.5 x (1 + tanh(u)) as x sigmoid(2u), which keeps its digits where tanh(u) is near -1
      Tensor u = x64.add(x64.pow(new Scalar(3.0)).mul(new Scalar(0.044715))).mul(new Scalar(Math.sqrt(2 / Math.PI)));
      Tensor ref64 = x64.mul(torch.sigmoid(u.mul(new Scalar(2.0))));
      Tensor ref32 = torch.gelu(x, "tanh").to(ScalarType.Double);
      // libtorch's fp32 form 0.5 x (1 + tanh(u)) loses digits where tanh(u) is near -1; ours does not
      // bound: 1e-6 relative plus 1e-9 |x| (where gelu(x) is tiny the fp32 rounding of u dominates)
      Tensor bound = ref64.abs().mul(new Scalar(1e-6)).add(x64.abs().mul(new Scalar(1e-9)));
      double worst = y.to(ScalarType.Double).sub(ref64).abs().div(bound).max().item_double();
      double torchWorst = ref32.sub(ref64).abs().div(bound).max().item_double();
      assertTrue(worst <= 1.0, "error / bound: " + worst + " (libtorch's fp32 gelu: " + torchWorst + ")");
      assertTrue(maxAbs(y.to(ScalarType.Double), ref32) < 1e-6, "the same function as libtorch's gelu(tanh)");
      Tensor strided = x.t();
      assertTrue(torch.equal(Kernels.withThreads(1).geluTanh(strided), y.t()), "non-contiguous input, one thread");
      assertThrows(IllegalArgumentException.class, () -> Kernels.withThreads(1).geluTanh(x.to(ScalarType.Double)));
    }
  }

  @Test
  void linearWithFusedGelu_isTheLinearThenGelu_bitForBit() {
    try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
      torch.manual_seed(2);
      Tensor w = torch.randn(70, 136);
      Tensor b = torch.randn(70);
      Tensor x = torch.randn(3, 53, 136);
      Kernels k = Kernels.withThreads(2);
      Tensor packed = k.packInvariantWeight(w);
      Tensor fused = k.invariantLinear(x, packed, 70, 136, b, FusedActivation.GELU_TANH);
      assertTrue(torch.equal(fused, k.geluTanh(k.invariantLinear(x, packed, 70, 136, b))), "fp32");
      assertTrue(maxAbs(fused, torch.gelu(torch.linear(x, w, b), "tanh")) < 1e-4, "vs libtorch");
      Tensor packedBf16 = k.packBf16Weight(w);
      assertTrue(torch.equal(k.bf16Linear(x, packedBf16, 70, 136, b, FusedActivation.GELU_TANH),
          k.geluTanh(k.bf16Linear(x, packedBf16, 70, 136, b))), "bf16");
      assertTrue(torch.equal(k.invariantLinear(x, packed, 70, 136, null, FusedActivation.NONE),
          k.invariantLinear(x, packed, 70, 136, null)), "NONE is the plain layer");
    }
  }

  /** diffusers' order: heads, RMSNorm per group, concatenation along the sequence, rotary embedding. */
  private static Tensor composite(Tensor a, Tensor b, long heads, Tensor wa, Tensor wb, Rope.CosSin rope) {
    Tensor ha = Attention.heads(a, heads);
    Tensor hb = b == null ? null : Attention.heads(b, heads);
    if (wa != null) {
      ha = Norms.rmsNorm(ha, wa, 1e-6);
      hb = hb == null ? null : Norms.rmsNorm(hb, wb, 1e-6);
    }
    Tensor joint = hb == null ? ha : torch.cat(new TensorVector(ha, hb), 2);
    return rope == null ? joint : Rope.apply(joint, rope);
  }

  @Test
  void jointHeads_matchesTheLibtorchComposite() {
    try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
      torch.manual_seed(3);
      long heads = 4;
      Tensor text = torch.randn(3, 5, 128);
      Tensor image = torch.randn(3, 49, 128);
      Tensor wa = torch.randn(32);
      Tensor wb = torch.randn(32);
      Tensor ids = torch.randint(0, 8, new long[] {54, 3}).to(ScalarType.Float);
      Rope.CosSin rope = Rope.multiAxis(ids, new int[] {8, 12, 12}, 10000);
      Tensor fused = Attention.jointHeads(text, image, heads, wa, wb, 1e-6, rope);
      Tensor want = composite(text, image, heads, wa, wb, rope);
      assertEquals(java.util.List.of(3L, 4L, 54L, 32L), java.util.Arrays.stream(fused.sizes().vec().get()).boxed().toList());
      assertTrue(fused.is_contiguous());
      assertTrue(maxAbs(fused, want) < 1e-5, "norm + rope: " + maxAbs(fused, want));
      // values only (v): the exact layout change
      assertTrue(torch.equal(Attention.jointHeads(text, image, heads, null, null, 0, null),
          composite(text, image, heads, null, null, null)), "layout only");
      // one group (single-stream blocks), norm and rope
      Rope.CosSin rope49 = new Rope.CosSin(rope.cos().narrow(0, 5, 49), rope.sin().narrow(0, 5, 49));
      Tensor one = Attention.jointHeads(image, null, heads, wb, null, 1e-6, rope49);
      assertTrue(maxAbs(one, composite(image, null, heads, wb, null, rope49)) < 1e-5, "one group");
      // the composite is what non-fp32 inputs get: same values in fp64
      Tensor f64 = Attention.jointHeads(text.to(ScalarType.Double), image.to(ScalarType.Double), heads,
          wa.to(ScalarType.Double), wb.to(ScalarType.Double), 1e-6, rope);
      assertTrue(maxAbs(f64.to(ScalarType.Float), fused) < 1e-5, "fp64 composite path");
      Kernels k = Kernels.withThreads(1);
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> k.headsNormRope(text, image.narrow(2, 0, 64), heads, null, null, 0, null, null));
      assertTrue(e.getMessage().contains("b must be"), e.getMessage());
      e = assertThrows(IllegalArgumentException.class,
          () -> k.headsNormRope(text, image, heads, wa, wb, 1e-6, rope49.cos(), rope49.sin()));
      assertTrue(e.getMessage().contains("cos must hold"), e.getMessage());
      KernelException ke = assertThrows(KernelException.class,
          () -> k.headsNormRope(text, image, heads, wa, null, 1e-6, null, null));
      assertTrue(ke.getMessage().contains("wa and wb"), ke.getMessage());
    }
  }

  @Test
  void attentionTokenMajor_isLibtorchsSdpaMergedAndSplit() {
    try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
      torch.manual_seed(4);
      Tensor q = torch.randn(3, 4, 53, 32).mul(new Scalar(2.0));
      Tensor k = torch.randn(3, 4, 53, 32);
      Tensor v = torch.randn(3, 4, 53, 32);
      Tensor want = Attention.merge(torch.scaled_dot_product_attention(q, k, v));
      Tensor[] parts = Kernels.withThreads(2).attentionTokenMajor(q, k, v, 4);
      assertTrue(maxAbs(parts[0], want.narrow(1, 0, 4)) < 2e-6, "text part");
      assertTrue(maxAbs(parts[1], want.narrow(1, 4, 49)) < 2e-6, "image part");
      Tensor[] whole = Kernels.withThreads(1).attentionTokenMajor(q, k, v, 53);
      assertTrue(whole[1] == null && torch.equal(whole[0], torch.cat(new TensorVector(parts[0], parts[1]), 1)),
          "unsplit, one thread: the same bits");
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> Kernels.withThreads(1).attentionTokenMajor(q, k.narrow(2, 0, 50), v, 4));
      assertTrue(e.getMessage().contains("one shape"), e.getMessage());
      assertThrows(IllegalArgumentException.class, () -> Kernels.withThreads(1).attentionTokenMajor(q, k, v, 54));
    }
  }

  @Test
  void gatedLinear_isTheLayerThenAddcmul_bitForBit() {
    try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
      torch.manual_seed(5);
      Tensor w = torch.randn(70, 136);
      Tensor b = torch.randn(70);
      Tensor x = torch.randn(3, 53, 136);
      Tensor residual = torch.randn(3, 53, 70);
      Tensor gate = torch.randn(3, 6 * 70).chunk(6, -1).get(2);  // a strided adaLN chunk
      Kernels k = Kernels.withThreads(2);
      Tensor packed = k.packInvariantWeight(w);
      Tensor want = torch.addcmul(residual, gate.unsqueeze(1), k.invariantLinear(x, packed, 70, 136, b));
      assertTrue(torch.equal(k.invariantLinearGated(x, packed, 70, 136, b, residual, gate), want), "fp32");
      Tensor packedBf16 = k.packBf16Weight(w);
      Tensor wantBf16 = torch.addcmul(residual, gate.unsqueeze(1), k.bf16Linear(x, packedBf16, 70, 136, null));
      assertTrue(torch.equal(k.bf16LinearGated(x, packedBf16, 70, 136, null, residual, gate), wantBf16), "bf16");
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> k.invariantLinearGated(x, packed, 70, 136, b, residual.narrow(1, 0, 50), gate));
      assertTrue(e.getMessage().contains("residual [B, S, 70]"), e.getMessage());
    }
  }

  @Test
  void layerNormModulate_matchesLibtorchsLayerNormAndAddcmul() {
    try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
      torch.manual_seed(6);
      Tensor x = torch.randn(3, 53, 128).mul(new Scalar(3.0)).add(new Scalar(1.5));
      TensorVector mod = torch.randn(3, 6 * 128).chunk(6, -1);
      Tensor shift = mod.get(0);
      Tensor scale = mod.get(1);
      Tensor want = io.cachedit.models.common.AdaLayerNorms.modulate(Norms.layerNorm(x, 1e-6), shift, scale);
      Tensor got = Kernels.withThreads(2).layerNormModulate(x, shift, scale, 1e-6);
      assertTrue(maxAbs(got, want) < 1e-5, "vs libtorch: " + maxAbs(got, want));
      assertTrue(torch.equal(Kernels.withThreads(1).layerNormModulate(x, shift.contiguous(), scale.contiguous(), 1e-6),
          got), "contiguous chunks, one thread: the same bits");
      // the composite is what other dtypes get
      Tensor f64 = io.cachedit.models.common.AdaLayerNorms.normModulate(x.to(ScalarType.Double),
          shift.to(ScalarType.Double), scale.to(ScalarType.Double), 1e-6);
      assertTrue(maxAbs(f64.to(ScalarType.Float), got) < 1e-5, "fp64 composite path");
      assertThrows(IllegalArgumentException.class,
          () -> Kernels.withThreads(1).layerNormModulate(x, shift.narrow(1, 0, 100), scale, 1e-6));
    }
  }
}
