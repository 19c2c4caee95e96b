package io.cachedit.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Test;

/** Ownership of native tensors: keep, replace, release, close, compute, use after close. */
class NativeScopeTest {
  @Test
  void keptTensorsOutliveInnerScopesAndGoWithTheirOwner() {
    NativeRuntime.initialize();
    long before = NativeScope.liveKeptHandles();
    Tensor kept;
    try (NativeScope outer = NativeScope.open("outer")) {
      try (NativeScope inner = NativeScope.open("inner")) {
        kept = outer.keep(torch.ones(3).mul(new Scalar(2.0)));  // made in inner, owned by outer
      }
      assertEquals(6.0, kept.sum().item_double(), "kept past the inner scope");
      assertEquals(before + 1, NativeScope.liveKeptHandles());
      Tensor next = outer.replace(kept, kept.add(new Scalar(1.0)));
      assertEquals(1, outer.size(), "replace releases the previous handle");
      assertEquals(9.0, next.sum().item_double());
    }
    assertTrue(kept.isNull(), "closing the owner frees its handles");
    assertEquals(before, NativeScope.liveKeptHandles());
  }

  @Test
  void closeIsIdempotent_andUseAfterCloseNamesTheScope() {
    NativeScope owner = NativeScope.owner("weights of model X");
    owner.keep(torch.zeros(2));
    owner.close();
    owner.close();
    IllegalStateException e = assertThrows(IllegalStateException.class, () -> owner.keep(torch.zeros(2)));
    assertTrue(e.getMessage().contains("weights of model X") && e.getMessage().contains("closed"), e.getMessage());
    assertThrows(IllegalStateException.class, owner::ensureOpen);
    owner.release(null);  // tolerated
  }

  @Test
  void compute_returnsAResultOwnedByTheCaller_andFreesTheRestOnFailure() {
    long before = NativeScope.liveKeptHandles();
    Tensor result;
    try (PointerScope caller = new PointerScope()) {
      result = NativeScope.compute("work", s -> {
        Tensor a = s.keep(torch.ones(4));
        return a.add(a);
      });
      assertEquals(8.0, result.sum().item_double());
      assertEquals(before, NativeScope.liveKeptHandles(), "only the result survives, owned by the caller's scope");
    }
    assertTrue(result.isNull(), "the caller's scope freed the result");
    assertThrows(ArithmeticException.class, () -> NativeScope.compute("failing", s -> {
      s.keep(torch.ones(4));
      throw new ArithmeticException("boom");
    }));
    assertEquals(before, NativeScope.liveKeptHandles());
  }
}
