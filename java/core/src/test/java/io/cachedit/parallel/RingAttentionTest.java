package io.cachedit.parallel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.cachedit.kernels.NativeRuntime;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;

/** One block of ring attention: the fused kernel's output and log-sum-exp against the composite. */
class RingAttentionTest {
  @Test
  void fusedBlockAttentionWithLse_matchesTheComposite_alsoWithMasks() {
    NativeRuntime.initialize();
    try (PointerScope scope = new PointerScope()) {
      torch.manual_seed(3);
      Tensor q = torch.randn(2, 3, 37, 16);
      Tensor k = torch.randn(2, 3, 29, 16);
      Tensor v = torch.randn(2, 3, 29, 16);
      RingAttention ring = new RingAttention(null, null, null, RingRotateMethod.P2P, true);
      Tensor keep = torch.ones(new long[] {2, 1, 1, 29}, new org.bytedeco.pytorch.TensorOptions(ScalarType.Bool));
      keep.select(0, 1).narrow(2, 0, 29).fill_(new Scalar(0));  // the second sample sees no key of this block
      keep.select(0, 0).narrow(2, 20, 9).fill_(new Scalar(0));
      for (Tensor mask : new Tensor[] {null, keep}) {
        Tensor[] fused = ring.attendWithLse(q, k, v, mask, true);
        Tensor[] composite = RingAttention.attendWithLseComposite(q, k, v, mask, true);
        assertTrue(fused[0].sub(composite[0]).abs().max().item_double() < 1e-5, "outputs agree");
        Tensor finite = composite[1].isfinite();
        assertTrue(torch.equal(finite, fused[1].isfinite()), "the same queries see no key");
        assertTrue(fused[1].masked_select(finite).sub(composite[1].masked_select(finite)).abs().max()
            .item_double() < 1e-5, "lse agrees");
        assertEquals(0.0, fused[0].isfinite().logical_not().sum().item_double(), "no NaN or inf in outputs");
      }
      // two blocks merged by their lse equal attention over both at once
      Tensor k2 = torch.randn(2, 3, 29, 16);
      Tensor v2 = torch.randn(2, 3, 29, 16);
      Tensor[] a = ring.attendWithLse(q, k, v, null, true);
      Tensor[] b = ring.attendWithLse(q, k2, v2, null, true);
      Tensor merged = torch.logaddexp(a[1], b[1]);
      Tensor out = a[0].mul(torch.exp(a[1].sub(merged)).unsqueeze(-1))
          .add(b[0].mul(torch.exp(b[1].sub(merged)).unsqueeze(-1)));
      Tensor whole = torch.scaled_dot_product_attention(q, torch.cat(new TensorVector(k, k2), 2),
          torch.cat(new TensorVector(v, v2), 2));
      assertTrue(out.sub(whole).abs().max().item_double() < 1e-5);
    }
  }
}
