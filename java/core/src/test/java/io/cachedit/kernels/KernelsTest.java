package io.cachedit.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** Every kernel against the libtorch composite a user would write, at every dtype. */
class KernelsTest {
  static final long[] SIZES = {1, 17, 8193, 1_000_003};
  static final ScalarType[] DTYPES = {ScalarType.Float, ScalarType.BFloat16, ScalarType.Half};

  private final Kernels kernels = Kernels.withThreads(2);
  private PointerScope scope;

  @BeforeEach
  void openScope() {
    scope = new PointerScope();
  }

  @AfterEach
  void closeScope() {
    scope.close();
  }

  static Stream<Arguments> sizesAndDtypes() {
    List<Arguments> args = new ArrayList<>();
    for (long n : SIZES) {
      for (ScalarType t : DTYPES) {
        args.add(Arguments.of(n, t));
      }
    }
    return args.stream();
  }

  static Tensor randn(long seed, ScalarType type, long... shape) {
    torch.manual_seed(seed);
    return torch.randn(shape).to(type);
  }

  static double sum(Tensor t) {
    return t.to(ScalarType.Double).sum().item_double();
  }

  @ParameterizedTest(name = "n={0} {1}")
  @MethodSource("sizesAndDtypes")
  void relL1_matchesComposite(long n, ScalarType type) {
    Tensor a = randn(n, type, n);
    Tensor b = a.add(randn(n + 1, type, n).mul(new Scalar(0.05)));
    RelL1Sums sums = kernels.relL1Sums(a, b);
    // exact reference: the same inputs summed in fp64
    Tensor a64 = a.to(ScalarType.Double);
    Tensor b64 = b.to(ScalarType.Double);
    double num = a64.sub(b64).abs().sum().item_double();
    double den = a64.abs().sum().item_double();
    assertEquals(num, sums.sumAbsDiff(), 1e-5 * num);
    assertEquals(den, sums.sumAbsPrev(), 1e-5 * den);
    assertEquals(n, sums.count());
    // the composite a user writes, in the input dtype (bf16/fp16 means are rounded: looser bound)
    double composite = a.sub(b).abs().mean().div(a.abs().mean()).item_double();
    double tol = type == ScalarType.Float ? 1e-5 : 2e-2;
    assertEquals(composite, kernels.relL1(a, b), tol * composite);
    // the all-reduce form
    Tensor t = kernels.relL1SumsTensor(a, b);
    assertEquals(ScalarType.Double, t.scalar_type().intern());
    assertEquals(sums.sumAbsDiff(), t.data_ptr_double().get(0), 0.0);
    assertEquals(sums.sumAbsPrev(), t.data_ptr_double().get(1), 0.0);
  }

  @ParameterizedTest(name = "n={0} {1}")
  @MethodSource("sizesAndDtypes")
  void relL1Residual_equalsTheDiffOfTheMaterialisedResidual(long n, ScalarType type) {
    Tensor prev = randn(n + 5, type, n);
    Tensor after = randn(n + 6, type, n);
    Tensor before = randn(n + 7, type, n);
    // the composite: materialise after - before in the dtype, then diff against prev
    assertEquals(kernels.relL1Sums(prev, after.sub(before)), kernels.relL1ResidualSums(prev, after, before));
    double num = sum(prev.to(ScalarType.Double).sub(after.sub(before).to(ScalarType.Double)).abs());
    assertEquals(num, kernels.relL1ResidualSums(prev, after, before).sumAbsDiff(), 1e-5 * num);
    assertThrows(IllegalArgumentException.class, () -> kernels.relL1ResidualSums(prev, after, torch.ones(n + 1)));
  }

  @Test
  void nativeFailures_carryTheFunctionArgumentAndValue() {
    NativeKernels.ensureLoaded();
    assertEquals(1, NativeKernels.taylorPredict(0, 0L, new long[] {0L}, 6, 1.0, 4, 1));  // CDIT_ERR_ARGUMENT
    assertEquals("cdit_taylor_predict: nterms must be 1..5, got 6", NativeKernels.lastError());
    assertEquals(2, NativeKernels.relL1Sums(7, 0L, 0L, 0, 1, new double[1], new double[1]));  // CDIT_ERR_DTYPE
    assertTrue(NativeKernels.lastError().startsWith("cdit_rel_l1_sums: dtype 7"), NativeKernels.lastError());
  }

  @Test
  void relL1_isIndependentOfThreadCount() {
    Tensor a = randn(1, ScalarType.Float, 3_000_017);
    Tensor b = randn(2, ScalarType.Float, 3_000_017);
    RelL1Sums one = Kernels.withThreads(1).relL1Sums(a, b);
    RelL1Sums two = Kernels.withThreads(2).relL1Sums(a, b);
    RelL1Sums eight = Kernels.withThreads(8).relL1Sums(a, b);
    assertEquals(one, two);
    assertEquals(one, eight);
  }

  @Test
  void relL1_nonContiguousInputIsHandled() {
    Tensor a = randn(3, ScalarType.Float, 300, 500);
    Tensor b = randn(4, ScalarType.Float, 300, 500);
    Tensor at = a.t();
    Tensor bt = b.t();
    assertFalse(at.is_contiguous());
    assertEquals(kernels.relL1Sums(at.contiguous(), bt.contiguous()), kernels.relL1Sums(at, bt));
    double num = sum(at.sub(bt).abs());
    assertEquals(num, kernels.relL1Sums(at, bt).sumAbsDiff(), 1e-6 * num);
  }

  @Test
  void relL1_zeroTensors() {
    Tensor z = torch.zeros(10);
    assertEquals(0.0, kernels.relL1(z, z));
    assertEquals(Double.POSITIVE_INFINITY, kernels.relL1(z, torch.ones(10)));
    assertEquals(0.0, kernels.relL1(torch.empty(0), torch.empty(0)));
  }

  @Test
  void relL1_rejectsBadInputWithClearMessages() {
    Tensor f = torch.ones(4);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> kernels.relL1(f, torch.ones(5)));
    assertTrue(e.getMessage().contains("shape"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> kernels.relL1(f, f.to(ScalarType.BFloat16)));
    assertTrue(e.getMessage().contains("BFloat16"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class,
        () -> kernels.relL1(f.to(ScalarType.Long), f.to(ScalarType.Long)));
    assertTrue(e.getMessage().contains("unsupported dtype"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> kernels.relL1(f.to(ScalarType.Double), f.to(ScalarType.Double)));
    assertTrue(e.getMessage().contains("Float (fp32), BFloat16 or Half"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> kernels.relL1(null, f));
    assertTrue(e.getMessage().contains("prev"), e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> Kernels.withThreads(0));
  }

  @ParameterizedTest(name = "n={0} {1}")
  @MethodSource("sizesAndDtypes")
  void taylorPredict_matchesComposite(long n, ScalarType type) {
    Tensor f = randn(n, type, n);
    Tensor d1 = randn(n + 1, type, n);
    Tensor d2 = randn(n + 2, type, n);
    double k = 3.0;
    // the composite a user writes: f + d1*k + d2*k*k/2 (in fp32 for the reference)
    Tensor ref = f.to(ScalarType.Float).add(d1.to(ScalarType.Float).mul(new Scalar(k)))
        .add(d2.to(ScalarType.Float).mul(new Scalar(k * k / 2)));
    Tensor out = kernels.taylorPredict(List.of(f, d1, d2), k);
    assertEquals(type, out.scalar_type().intern());
    assertClose(ref, out, type);
    // order 4 (five terms)
    Tensor d3 = randn(n + 3, type, n);
    Tensor d4 = randn(n + 4, type, n);
    Tensor ref4 = ref.add(d3.to(ScalarType.Float).mul(new Scalar(k * k * k / 6)))
        .add(d4.to(ScalarType.Float).mul(new Scalar(k * k * k * k / 24)));
    assertClose(ref4, kernels.taylorPredict(List.of(f, d1, d2, d3, d4), k), type);
    // into an existing tensor, aliasing the first term
    Tensor alias = f.clone();
    kernels.taylorPredictInto(alias, List.of(alias, d1, d2), k);
    assertClose(ref, alias, type);
  }

  @ParameterizedTest(name = "n={0} {1}")
  @MethodSource("sizesAndDtypes")
  void taylorUpdate_matchesComposite(long n, ScalarType type) {
    Tensor l0 = randn(n, type, n);
    Tensor l1 = randn(n + 1, type, n);
    Tensor l2 = randn(n + 2, type, n);
    Tensor y = randn(n + 3, type, n);
    double gap = 2.0;
    Tensor new0 = y.to(ScalarType.Float);
    Tensor new1 = new0.sub(l0.to(ScalarType.Float)).div(new Scalar(gap));
    Tensor new2 = new1.sub(l1.to(ScalarType.Float)).div(new Scalar(gap));
    Tensor old2 = l2.clone();
    int count = kernels.taylorUpdate(List.of(l0, l1, l2), 2, y, gap);
    assertEquals(3, count);
    assertClose(new0, l0, type);
    assertClose(new1, l1, type);
    assertClose(new2, l2, type);
    // a fresh ladder: only the value is written, higher levels untouched
    Tensor m0 = torch.zeros_like(y);
    Tensor m1 = old2.clone();
    assertEquals(1, kernels.taylorUpdate(List.of(m0, m1), 0, y, gap));
    assertTrue(torch.equal(m0, y));
    assertTrue(torch.equal(m1, old2));
  }

  @Test
  void taylorSeer_specExample() {
    // docs/algorithms.md section 6.1: Y = t^2 computed at steps 0..3 then 6 (order 1): 14, 19 at 4, 5; 45, 54, 63 at 7, 8, 9.
    Tensor l0 = torch.zeros(1);
    Tensor l1 = torch.zeros(1);
    int valid = 0;
    int last = -1;
    for (int step : new int[] {0, 1, 2, 3}) {
      int nvalid = step - 1 > 1 ? valid : 0;  // the reference's current_step > 1 guard, 1-step lag
      valid = kernels.taylorUpdate(List.of(l0, l1), nvalid, torch.full(new long[] {1}, new Scalar((double) (step * step))),
          step - last);
      last = step;
    }
    List<Tensor> ladder = List.of(l0, l1).subList(0, valid);
    assertEquals(14f, kernels.taylorPredict(ladder, 4 - last).item_float());
    assertEquals(19f, kernels.taylorPredict(ladder, 5 - last).item_float());
    valid = kernels.taylorUpdate(List.of(l0, l1), valid, torch.full(new long[] {1}, new Scalar(36.0)), 6 - last);
    last = 6;
    assertEquals(45f, kernels.taylorPredict(List.of(l0, l1), 7 - last).item_float());
    assertEquals(54f, kernels.taylorPredict(List.of(l0, l1), 8 - last).item_float());
    assertEquals(63f, kernels.taylorPredict(List.of(l0, l1), 9 - last).item_float());
  }

  @Test
  void taylor_rejectsBadInput() {
    Tensor a = torch.ones(4);
    assertThrows(IllegalArgumentException.class, () -> kernels.taylorPredict(List.of(), 1.0));
    assertThrows(IllegalArgumentException.class, () -> kernels.taylorPredict(List.of(a, a, a, a, a, a), 1.0));
    assertThrows(IllegalArgumentException.class, () -> kernels.taylorPredict(List.of(a), Double.NaN));
    assertThrows(IllegalArgumentException.class, () -> kernels.taylorPredict(List.of(a, torch.ones(5)), 1.0));
    assertThrows(IllegalArgumentException.class, () -> kernels.taylorUpdate(List.of(a, a.clone()), 1, torch.ones(4), 0.0));
    assertThrows(IllegalArgumentException.class, () -> kernels.taylorUpdate(List.of(a, a.clone()), 3, torch.ones(4), 1.0));
    assertThrows(IllegalArgumentException.class, () -> kernels.taylorUpdate(List.of(a), 0, a, 1.0));
    Tensor nc = torch.ones(4, 4).t();
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> kernels.taylorUpdate(List.of(nc), 0, torch.ones(4, 4), 1.0));
    assertTrue(e.getMessage().contains("contiguous"), e.getMessage());
  }

  // ---- Ulysses packing ------------------------------------------------------------------------

  /** Shapes [B, S, H, D, P]: element counts 1, 17, 8193 and 1,000,003, plus realistic ones. */
  static Stream<Arguments> ulyssesShapes() {
    long[][] shapes = {
        {1, 1, 1, 1, 1}, {1, 1, 17, 1, 4}, {1, 2731, 3, 1, 2}, {1, 1, 1, 1_000_003, 1},
        {2, 3, 4, 8, 2}, {1, 5, 30, 16, 4}, {2, 64, 24, 128, 8}, {1, 33, 40, 64, 3}};
    List<Arguments> args = new ArrayList<>();
    for (long[] s : shapes) {
      for (ScalarType t : DTYPES) {
        for (Wire w : Wire.values()) {
          args.add(Arguments.of(s, t, w));
        }
      }
    }
    return args.stream();
  }

  /** The composite: pad heads with zeros, view as [B,S,P,Hl,D], permute to [P,S,B,Hl,D]. */
  static Tensor compositeHeadsToRanks(Tensor x, int world) {
    long b = x.size(0), s = x.size(1), h = x.size(2), d = x.size(3);
    long hl = (h + world - 1) / world;
    Tensor padded = x;
    if (hl * world > h) {
      padded = torch.cat(new TensorVector(x, torch.zeros(new long[] {b, s, hl * world - h, d}, x.options())), 2);
    }
    return padded.view(b, s, world, hl, d).permute(2, 1, 0, 3, 4).contiguous();
  }

  /** The composite of per-row fp8 quantisation with the scale appended, as bytes. */
  static Tensor compositeFp8Rows(Tensor rows, Wire wire) {
    Tensor x = rows.to(ScalarType.Float);
    Tensor absmax = x.abs().amax(new long[] {-1}, true);
    Tensor scale;
    Tensor scaleBytes;
    if (wire == Wire.FP8_F32_SCALE) {
      scale = absmax.div(new Scalar(448.0)).clamp_min(new Scalar(1e-6f));
      scaleBytes = scale.view(ScalarType.Byte);
    } else {
      Tensor scale16 = absmax.clamp_min(new Scalar(1e-4f)).div(new Scalar(448.0)).to(ScalarType.BFloat16);
      scale = scale16.to(ScalarType.Float);
      scaleBytes = scale16.view(ScalarType.Byte);
    }
    Tensor q = x.div(scale).to(ScalarType.Float8_e4m3fn).view(ScalarType.Byte);
    return torch.cat(new TensorVector(q, scaleBytes), -1);
  }

  @ParameterizedTest(name = "{0} {1} {2}")
  @MethodSource("ulyssesShapes")
  void ulysses_packHeadsMatchesCompositeAndRoundTrips(long[] shape, ScalarType type, Wire wire) {
    long b = shape[0], s = shape[1], h = shape[2], d = shape[3];
    int p = (int) shape[4];
    Tensor x = randn(h * 31 + d, type, b, s, h, d).mul(new Scalar(3.0));
    Tensor packed = kernels.packHeads(x, p, wire);
    Tensor permuted = compositeHeadsToRanks(x, p);
    if (wire == Wire.RAW) {
      assertTrue(torch.equal(permuted, packed), "raw pack must equal pad+permute exactly");
    } else {
      assertTrue(torch.equal(compositeFp8Rows(permuted, wire), packed), "fp8 bytes must equal the composite");
    }
    Tensor back = kernels.unpackHeads(packed, wire, type, h);
    assertArrayEquals(x.sizes().vec().get(), back.sizes().vec().get());
    if (wire == Wire.RAW) {
      assertTrue(torch.equal(x, back), "raw round trip must be exact");
    } else {
      assertWithinFp8(x, back, wire);
    }
  }

  @ParameterizedTest(name = "{0} {1} {2}")
  @MethodSource("ulyssesShapes")
  void ulysses_packSeqMatchesCompositeAndRoundTrips(long[] shape, ScalarType type, Wire wire) {
    long b = shape[0], s = shape[1], h = shape[2], d = shape[3];
    long hl = h + 2;  // this rank holds h real heads of a group of h+2
    Tensor x = randn(s * 7 + d, type, b, s, h, d);
    Tensor packed = kernels.packSeq(x, hl, wire);
    Tensor padded = torch.cat(new TensorVector(x, torch.zeros(new long[] {b, s, 2, d}, x.options())), 2);
    Tensor permuted = padded.permute(1, 0, 2, 3).contiguous();  // [S, B, Hl, D]
    if (wire == Wire.RAW) {
      assertTrue(torch.equal(permuted, packed));
    } else {
      assertTrue(torch.equal(compositeFp8Rows(permuted, wire), packed));
    }
    Tensor back = kernels.unpackSeq(packed, wire, type, h);
    if (wire == Wire.RAW) {
      assertTrue(torch.equal(x, back));
    } else {
      assertWithinFp8(x, back, wire);
    }
  }

  @Test
  void ulysses_fp8NeverTurnsFiniteIntoNaN() {
    Tensor x = torch.tensor(new float[] {3e38f, -3e38f, 1e-38f, 0f, -0f, 448f, 449f, 1e-45f}).view(1, 1, 1, 8);
    for (Wire wire : new Wire[] {Wire.FP8_F32_SCALE, Wire.FP8_BF16_SCALE}) {
      Tensor back = kernels.unpackSeq(kernels.packSeq(x, 1, wire), wire, ScalarType.Float, 1);
      assertTrue(back.isfinite().all().item_bool(), wire + " produced a non-finite value");
    }
  }

  @Test
  void ulysses_rejectsBadInput() {
    Tensor x = torch.ones(1, 2, 3, 4);
    assertThrows(IllegalArgumentException.class, () -> kernels.packHeads(torch.ones(2, 3), 2, Wire.RAW));
    assertThrows(IllegalArgumentException.class, () -> kernels.packHeads(x, 0, Wire.RAW));
    Tensor packed = kernels.packHeads(x, 2, Wire.FP8_F32_SCALE);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> kernels.unpackHeads(packed, Wire.FP8_F32_SCALE, ScalarType.Float, 7));
    assertTrue(e.getMessage().contains("heads"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class,
        () -> kernels.unpackHeads(packed, Wire.RAW, ScalarType.Float, 3));
    assertTrue(e.getMessage().contains("travels as"), e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> kernels.packSeq(x, 2, Wire.RAW));
    assertThrows(IllegalArgumentException.class,
        () -> kernels.unpackSeq(kernels.packSeq(x, 3, Wire.RAW), Wire.RAW, ScalarType.Float, 4));
  }

  @Test
  void fp8ScalarConversionsMatchLibtorch() {
    float[] values = {0.1f, 3.14159f, 448f, 1e-3f, -2.5f, 0.0f, 240f, 0.017578125f};
    Tensor t = torch.tensor(values).to(ScalarType.Float8_e4m3fn).view(ScalarType.Byte);
    for (int i = 0; i < values.length; i++) {
      assertEquals(t.data_ptr_byte().get(i), Kernels.fp8E4m3(values[i]), "value " + values[i]);
    }
    assertEquals(0x7E, Kernels.fp8E4m3(500f) & 0xFF, "saturates where libtorch gives NaN");
    assertEquals(448f, Kernels.fp8E4m3Value((byte) 0x7E));
  }

  @Test
  void cudaLibraryLoadsAndReportsAvailability() {
    // The CUDA library links the runtime statically and must load on machines without a GPU.
    boolean available = Kernels.cudaAvailable();
    if (!Kernels.cudaBuilt()) {
      assertFalse(available);
    }
    assertTrue(Kernels.version().matches("\\d+\\.\\d+\\.\\d+"));
    assertTrue(List.of("avx512f", "avx2", "default").contains(Kernels.cpuIsa()));
  }

  @Test
  void longLoopDoesNotGrowNativeMemory() {
    Tensor a = randn(5, ScalarType.Float, 1024, 1024).t();  // non-contiguous: a 4 MB temporary per call
    Tensor b = randn(6, ScalarType.Float, 1024, 1024).t();
    for (int i = 0; i < 50; i++) {
      kernels.relL1(a, b);
    }
    long before = org.bytedeco.javacpp.Pointer.physicalBytes();
    for (int i = 0; i < 2000; i++) {  // 8 GB of temporaries if any leaked
      kernels.relL1(a, b);
      try (PointerScope s = new PointerScope()) {
        kernels.packHeads(a.view(1, 1024, 8, 128), 2, Wire.FP8_F32_SCALE);
      }
    }
    long grown = org.bytedeco.javacpp.Pointer.physicalBytes() - before;
    assertTrue(grown < 256L << 20, "RSS grew by " + (grown >> 20) + " MB");
  }

  // ---- helpers --------------------------------------------------------------------------------

  static void assertClose(Tensor ref32, Tensor got, ScalarType type) {
    Tensor g = got.to(ScalarType.Float);
    Tensor expected = ref32.to(type).to(ScalarType.Float);  // the reference rounded like the output
    double maxErr = g.sub(expected).abs().max().item_double();
    double scale = ref32.abs().max().item_double();
    double tol = type == ScalarType.Float ? 1e-6 * scale : (type == ScalarType.BFloat16 ? 8e-3 : 1e-3) * scale;
    assertTrue(maxErr <= tol, "max error " + maxErr + " > " + tol + " for " + type);
  }

  /** Element-wise e4m3 bound: half an ulp (2^-4 relative) plus 2^-10 of the row scale, plus output rounding. */
  static void assertWithinFp8(Tensor x, Tensor back, Wire wire) {
    Tensor xf = x.to(ScalarType.Float);
    Tensor err = back.to(ScalarType.Float).sub(xf).abs();
    Tensor absmax = xf.abs().amax(new long[] {-1}, true);
    Tensor scale = wire == Wire.FP8_F32_SCALE ? absmax.div(new Scalar(448.0)).clamp_min(new Scalar(1e-6f))
        : absmax.clamp_min(new Scalar(1e-4f)).div(new Scalar(448.0)).mul(new Scalar(1.004));
    double outRounding = x.scalar_type().intern() == ScalarType.Float ? 0.0 : 1.0 / 128;
    Tensor bound = xf.abs().mul(new Scalar(0.0625 + outRounding)).add(scale.mul(new Scalar(1.0 / 1024)))
        .mul(new Scalar(1.0001));
    Tensor over = err.gt(bound);
    assertFalse(over.any().item_bool(), over.sum().item_long() + " elements beyond e4m3 precision");
  }
}
