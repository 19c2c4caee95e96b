package io.cachedit.models;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.cachedit.models.common.AdaLayerNorms;
import io.cachedit.models.common.Norms;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;

/** The one-call forms of the norms and modulations against diffusers' composites. */
class NormsTest {
  /** diffusers' RMSNorm in fp32: variance in fp32, x * rsqrt(variance + eps), times the weight. */
  private static Tensor composite(Tensor x, Tensor weight, double eps) {
    Tensor variance = x.pow(new Scalar(2.0)).mean(new long[] {-1}, true, new org.bytedeco.pytorch.ScalarTypeOptional());
    Tensor h = x.mul(torch.rsqrt(variance.add(new Scalar(eps))));
    return weight == null ? h : h.mul(weight);
  }

  @Test
  void fp32RmsNormEqualsTheCompositeBitForBit() {
    try (PointerScope scope = new PointerScope()) {
      torch.manual_seed(3);
      for (long[] shape : new long[][] {{2, 4, 7, 32}, {16, 4, 49, 32}, {3, 5, 128}, {1, 1, 1, 64}, {2, 3, 33}}) {
        Tensor x = torch.randn(shape).mul(new Scalar(3.0));
        Tensor w = torch.randn(shape[shape.length - 1]);
        assertTrue(torch.equal(composite(x, w, 1e-6), Norms.rmsNorm(x, w, 1e-6)), java.util.Arrays.toString(shape));
        assertTrue(torch.equal(composite(x, null, 1e-5), Norms.rmsNorm(x, null, 1e-5)), java.util.Arrays.toString(shape));
      }
      // bf16 keeps diffusers' casts: fp32 statistics, normalised value cast to the weight dtype before scaling
      Tensor x = torch.randn(2, 3, 16).to(ScalarType.BFloat16);
      Tensor w = torch.randn(16).to(ScalarType.BFloat16);
      Tensor expected = composite(x.to(ScalarType.Float), null, 1e-6).to(ScalarType.BFloat16).mul(w);
      assertTrue(torch.equal(expected, Norms.rmsNorm(x, w, 1e-6)));
    }
  }

  @Test
  void modulateAndGatedResidualEqualTheirComposites() {
    try (PointerScope scope = new PointerScope()) {
      torch.manual_seed(4);
      Tensor x = torch.randn(3, 11, 24);
      Tensor y = torch.randn(3, 11, 24);
      Tensor shift = torch.randn(3, 24);
      Tensor scale = torch.randn(3, 24);
      Tensor modulated = x.mul(scale.unsqueeze(1).add(new Scalar(1.0))).add(shift.unsqueeze(1));
      assertTrue(torch.allclose(modulated, AdaLayerNorms.modulate(x, shift, scale), 1e-6, 1e-7, false));
      Tensor gated = x.add(scale.unsqueeze(1).mul(y));
      assertTrue(torch.allclose(gated, AdaLayerNorms.addGated(x, scale, y), 1e-6, 1e-7, false));
    }
  }
}
