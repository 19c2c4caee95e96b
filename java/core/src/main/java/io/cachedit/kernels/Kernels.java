package io.cachedit.kernels;

import io.cachedit.error.KernelException;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.MemoryFormatOptional;
import org.bytedeco.pytorch.ScalarTypeOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * Tensor-level entry to the cachedit kernels: fused relative-L1 diff, Taylor extrapolation and
 * Ulysses all-to-all packing. Dispatches on the tensors' device (CPU library or CUDA library, on
 * libtorch's current stream) and dtype (fp32, bf16, fp16).
 *
 * <p>Inputs are validated before any native call: a wrong dtype, shape or device, or a
 * non-contiguous output, is an {@link IllegalArgumentException} naming the argument. Non-contiguous
 * inputs are copied to a contiguous temporary first. Immutable and thread-safe; CPU kernels use
 * {@link #threads()} OpenMP threads.
 *
 * <pre>{@code
 * Kernels kernels = Kernels.create();
 * double diff = kernels.relL1(previousResidual, currentResidual);  // sum|p-c| / sum|p|
 * }</pre>
 */
public final class Kernels {
  private final int threads;

  private Kernels(int threads) {
    this.threads = threads;
  }

  /** Kernels using one CPU thread per available processor. */
  public static Kernels create() {
    return withThreads(Runtime.getRuntime().availableProcessors());
  }

  /** Kernels using exactly {@code threads} CPU threads (1 = serial). */
  /** Kernels sized as the process's compute pool (libtorch's intra-op threads; docs/runtime.md). */
  public static Kernels forComputePool() {
    return withThreads(Math.max(1, torch.get_num_threads()));
  }

  public static Kernels withThreads(int threads) {
    if (threads < 1) {
      throw new IllegalArgumentException("threads must be >= 1, got " + threads);
    }
    NativeKernels.ensureLoaded();
    return new Kernels(threads);
  }

  public int threads() {
    return threads;
  }

  /** Version of the native kernel library. */
  public static String version() {
    return NativeKernels.version();
  }

  /** Instruction set the CPU kernels dispatch to on this machine ("avx512f", "avx2" or "default"). */
  public static String cpuIsa() {
    return NativeKernels.cpuIsa();
  }

  /** Whether the CUDA kernel library was compiled with nvcc. */
  public static boolean cudaBuilt() {
    return CudaNativeKernels.built() == 1;
  }

  /** Whether CUDA kernels can run here (built with nvcc and a CUDA device present). */
  public static boolean cudaAvailable() {
    return CudaNativeKernels.available() == 1;
  }

  // ---------------------------------------------------------------------------------------------
  // Relative L1 diff
  // ---------------------------------------------------------------------------------------------

  /** {@code sum|prev-cur|} and {@code sum|prev|} (fp64), over tensors of equal shape and dtype. */
  public RelL1Sums relL1Sums(Tensor prev, Tensor cur) {
    return sums(prev, cur, null, false).host();
  }

  /**
   * The sums of {@link #relL1Sums} where the current value is the residual {@code after - before},
   * computed on the fly in one pass (the DBCache probe, docs/algorithms.md section 3.2) instead of
   * materialised first.
   */
  public RelL1Sums relL1ResidualSums(Tensor prev, Tensor after, Tensor before) {
    return sums(prev, after, before, false).host();
  }

  /** {@code sum|prev-cur| / sum|prev|}: the residual diff of docs/algorithms.md section 3.5 (0 for two zero tensors). */
  public double relL1(Tensor prev, Tensor cur) {
    return relL1Sums(prev, cur).ratio();
  }

  /**
   * The two sums as a float64 tensor {@code [sum|prev-cur|, sum|prev|]} on the inputs' device, ready
   * for an all-reduce; on CUDA this does not synchronise with the host. Read it with {@link RelL1Sums#read}.
   */
  public Tensor relL1SumsTensor(Tensor prev, Tensor cur) {
    return sums(prev, cur, null, true).device();
  }

  /**
   * The sums of {@link #relL1ResidualSums} as a float64 tensor {@code [sum|prev-cur|, sum|prev|]} on the
   * inputs' device (the current value is {@code after - before}), ready for an all-reduce across ranks;
   * on CUDA this does not synchronise with the host. Read it with {@link RelL1Sums#read}.
   */
  public Tensor relL1ResidualSumsTensor(Tensor prev, Tensor after, Tensor before) {
    return sums(prev, after, before, true).device();
  }

  /** Sums computed on the host (CPU tensors, or read back from the GPU) or kept on the device. */
  private record Sums(RelL1Sums host, Tensor device) {}

  /**
   * The one implementation of the four diff entry points: {@code cur} is the current value, or with
   * {@code before} set the residual {@code cur - before}; {@code onDevice} returns a float64 [2]
   * tensor on the inputs' device instead of host numbers.
   */
  private Sums sums(Tensor prev, Tensor cur, Tensor before, boolean onDevice) {
    Device device = checkPair("prev", prev, before == null ? "cur" : "after", cur);
    if (before != null) {
      checkPair("after", cur, "before", before);
    }
    int dtype = dtypeCode("prev", prev);
    long n = prev.numel();
    Tensor deviceSums = onDevice || device.cuda ? torch.empty(new long[] {2},
        prev.options().dtype(new ScalarTypeOptional(ScalarType.Double)), new MemoryFormatOptional()) : null;
    try (PointerScope scope = new PointerScope()) {
      long p = address(prev.contiguous());
      long c = address(cur.contiguous());
      long b = before == null ? 0 : address(before.contiguous());
      if (device.cuda) {
        requireCuda();
        long stream = CudaStreams.current(device.index);
        checkCuda(before == null ? CudaNativeKernels.relL1Sums(dtype, p, c, n, address(deviceSums), stream)
            : CudaNativeKernels.relL1ResidualSums(dtype, p, c, b, n, address(deviceSums), stream),
            before == null ? "relL1Sums" : "relL1ResidualSums");
        return onDevice ? new Sums(null, deviceSums) : new Sums(RelL1Sums.read(deviceSums, n), null);
      }
      double[] diff = new double[1];
      double[] abs = new double[1];
      check(before == null ? NativeKernels.relL1Sums(dtype, p, c, n, threads, diff, abs)
          : NativeKernels.relL1ResidualSums(dtype, p, c, b, n, threads, diff, abs),
          before == null ? "relL1Sums" : "relL1ResidualSums");
      if (onDevice) {
        deviceSums.data_ptr_double().put(0, diff[0]).put(1, abs[0]);
        return new Sums(null, deviceSums);
      }
      return new Sums(new RelL1Sums(diff[0], abs[0], n), null);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Taylor series (TaylorSeer)
  // ---------------------------------------------------------------------------------------------

  /** Maximum number of Taylor terms (the value plus four derivatives, i.e. order 4). */
  public static final int MAX_TAYLOR_TERMS = 5;

  /**
   * A new tensor {@code sum_i terms[i] * k^i / i!}: the TaylorSeer prediction {@code k} steps after
   * the last computed step from the derivative ladder {@code terms} (value first).
   */
  public Tensor taylorPredict(List<Tensor> terms, double k) {
    checkTerms("terms", terms, MAX_TAYLOR_TERMS);
    Tensor out = torch.empty_like(terms.get(0), terms.get(0).options(), new MemoryFormatOptional(torch.MemoryFormat.Contiguous));
    taylorPredictInto(out, terms, k);
    return out;
  }

  /** As {@link #taylorPredict} into an existing contiguous tensor {@code out} (may be {@code terms[0]}). */
  public void taylorPredictInto(Tensor out, List<Tensor> terms, double k) {
    checkTerms("terms", terms, MAX_TAYLOR_TERMS);
    if (!Double.isFinite(k)) {
      throw new IllegalArgumentException("k must be finite, got " + k);
    }
    Tensor first = terms.get(0);
    Device device = checkPair("terms[0]", first, "out", out);
    requireContiguous("out", out);
    int dtype = dtypeCode("terms[0]", first);
    try (PointerScope scope = new PointerScope()) {
      long[] addresses = new long[terms.size()];
      for (int i = 0; i < terms.size(); i++) {
        addresses[i] = address(terms.get(i).contiguous());
      }
      if (device.cuda) {
        requireCuda();
        checkCuda(CudaNativeKernels.taylorPredict(dtype, address(out), addresses, terms.size(), k, out.numel(),
            CudaStreams.current(device.index)), "taylorPredict");
      } else {
        check(NativeKernels.taylorPredict(dtype, address(out), addresses, terms.size(), k, out.numel(), threads),
            "taylorPredict");
      }
    }
  }

  /**
   * Updates a derivative ladder in place from a new value {@code y} observed {@code gap} steps after
   * the previous one: {@code L[0] = y}, {@code L[i+1] = (L[i] - old L[i]) / gap} for the
   * {@code validLevels} levels that held values (docs/algorithms.md section 6.1). {@code ladder} holds all levels, each a
   * contiguous tensor shaped like {@code y}; levels above the returned count are left untouched.
   *
   * @return the number of valid levels afterwards, {@code min(validLevels + 1, ladder.size())}
   */
  public int taylorUpdate(List<Tensor> ladder, int validLevels, Tensor y, double gap) {
    checkTerms("ladder", ladder, MAX_TAYLOR_TERMS);
    if (validLevels < 0 || validLevels > ladder.size()) {
      throw new IllegalArgumentException(
          "validLevels must be in [0, " + ladder.size() + "], got " + validLevels);
    }
    int count = Math.min(validLevels + 1, ladder.size());
    if (count > 1 && (!Double.isFinite(gap) || gap == 0.0)) {
      throw new IllegalArgumentException("gap must be finite and non-zero, got " + gap);
    }
    Device device = checkPair("ladder[0]", ladder.get(0), "y", y);
    int dtype = dtypeCode("y", y);
    long[] addresses = new long[ladder.size()];
    for (int i = 0; i < ladder.size(); i++) {
      requireContiguous("ladder[" + i + "]", ladder.get(i));
      addresses[i] = address(ladder.get(i));
    }
    try (PointerScope scope = new PointerScope()) {
      long yAddress = address(y.contiguous());
      for (long a : addresses) {
        if (a == yAddress) {
          throw new IllegalArgumentException("y must not share memory with a ladder level");
        }
      }
      if (device.cuda) {
        requireCuda();
        checkCuda(CudaNativeKernels.taylorUpdate(dtype, addresses, validLevels, ladder.size(), yAddress, gap,
            y.numel(), CudaStreams.current(device.index)), "taylorUpdate");
      } else {
        check(NativeKernels.taylorUpdate(dtype, addresses, validLevels, ladder.size(), yAddress, gap, y.numel(),
            threads), "taylorUpdate");
      }
    }
    return count;
  }

  // ---------------------------------------------------------------------------------------------
  // Ulysses all-to-all packing
  // ---------------------------------------------------------------------------------------------

  /**
   * Sender side of the Q/K/V all-to-all: {@code x [B, S, H, D]} to {@code [P, S, B, Hl, row]}, where
   * {@code Hl = ceil(H / P)} and heads {@code >= H} are zero rows (uneven heads, docs/kernels.md section 3). Chunk
   * {@code p} of dim 0 goes to rank {@code p}. For {@link Wire#RAW} the result keeps x's dtype and
   * {@code row = D}; for the FP8 wires it is uint8 with {@code row = D + scale bytes}.
   */
  public Tensor packHeads(Tensor x, int world, Wire wire) {
    requireDims("x", x, 4);
    if (world < 1) {
      throw new IllegalArgumentException("world must be >= 1, got " + world);
    }
    Device device = device("x", x);
    int dtype = dtypeCode("x", x);
    long b = x.size(0), s = x.size(1), h = x.size(2), d = x.size(3);
    long hl = (h + world - 1) / world;
    Tensor out = wireTensor(x, new long[] {world, s, b, hl}, wire, d);
    try (PointerScope scope = new PointerScope()) {
      long in = address(x.contiguous());
      if (device.cuda) {
        requireCuda();
        checkCuda(CudaNativeKernels.packHeads(dtype, wire.code, address(out), in, b, s, h, d, world,
            CudaStreams.current(device.index)), "packHeads");
      } else {
        check(NativeKernels.packHeads(dtype, wire.code, address(out), in, b, s, h, d, world, threads), "packHeads");
      }
    }
    return out;
  }

  /**
   * Receiver side of the O all-to-all, the inverse of {@link #packHeads}: {@code [P, S, B, Hl, row]}
   * to {@code [B, S, heads, D]} in {@code dtype}, dropping the padded heads.
   */
  public Tensor unpackHeads(Tensor packed, Wire wire, ScalarType dtype, long heads) {
    requireDims("packed", packed, 5);
    Device device = device("packed", packed);
    long p = packed.size(0), s = packed.size(1), b = packed.size(2), hl = packed.size(3);
    long d = checkWireTensor("packed", packed, wire, dtype);
    if (heads < 0 || hl != (heads + p - 1) / p) {
      throw new IllegalArgumentException("packed has " + hl + " heads per rank, but heads=" + heads + " over "
          + p + " ranks needs " + ((heads + p - 1) / p));
    }
    int code = dtypeCode(dtype);
    Tensor out = torch.empty(new long[] {b, s, heads, d}, packed.options().dtype(new ScalarTypeOptional(dtype)),
        new MemoryFormatOptional());
    try (PointerScope scope = new PointerScope()) {
      long in = address(packed.contiguous());
      if (device.cuda) {
        requireCuda();
        checkCuda(CudaNativeKernels.unpackHeads(code, wire.code, address(out), in, b, s, heads, d, p,
            CudaStreams.current(device.index)), "unpackHeads");
      } else {
        check(NativeKernels.unpackHeads(code, wire.code, address(out), in, b, s, heads, d, p, threads),
            "unpackHeads");
      }
    }
    return out;
  }

  /**
   * Sender side of the O all-to-all: {@code x [B, S, Hk, D]} (this rank's heads) to
   * {@code [S, B, headsPerRank, row]}, padding heads {@code Hk..headsPerRank-1} with zero rows. Rows
   * {@code S_0..} of dim 0 go to the rank owning those tokens.
   */
  public Tensor packSeq(Tensor x, long headsPerRank, Wire wire) {
    requireDims("x", x, 4);
    Device device = device("x", x);
    int dtype = dtypeCode("x", x);
    long b = x.size(0), s = x.size(1), hk = x.size(2), d = x.size(3);
    if (headsPerRank < hk) {
      throw new IllegalArgumentException("headsPerRank (" + headsPerRank + ") must be >= x's head count " + hk);
    }
    Tensor out = wireTensor(x, new long[] {s, b, headsPerRank}, wire, d);
    try (PointerScope scope = new PointerScope()) {
      long in = address(x.contiguous());
      if (device.cuda) {
        requireCuda();
        checkCuda(CudaNativeKernels.packSeq(dtype, wire.code, address(out), in, b, s, hk, headsPerRank, d,
            CudaStreams.current(device.index)), "packSeq");
      } else {
        check(NativeKernels.packSeq(dtype, wire.code, address(out), in, b, s, hk, headsPerRank, d, threads),
            "packSeq");
      }
    }
    return out;
  }

  /**
   * Receiver side of the Q/K/V all-to-all: {@code [S, B, Hl, row]} (all ranks' tokens, this rank's
   * head group) to {@code [B, S, keepHeads, D]} in {@code dtype}, dropping padded heads.
   */
  public Tensor unpackSeq(Tensor packed, Wire wire, ScalarType dtype, long keepHeads) {
    requireDims("packed", packed, 4);
    Device device = device("packed", packed);
    long s = packed.size(0), b = packed.size(1), hl = packed.size(2);
    long d = checkWireTensor("packed", packed, wire, dtype);
    if (keepHeads < 0 || keepHeads > hl) {
      throw new IllegalArgumentException("keepHeads must be in [0, " + hl + "], got " + keepHeads);
    }
    int code = dtypeCode(dtype);
    Tensor out = torch.empty(new long[] {b, s, keepHeads, d}, packed.options().dtype(new ScalarTypeOptional(dtype)),
        new MemoryFormatOptional());
    try (PointerScope scope = new PointerScope()) {
      long in = address(packed.contiguous());
      if (device.cuda) {
        requireCuda();
        checkCuda(CudaNativeKernels.unpackSeq(code, wire.code, address(out), in, b, s, keepHeads, hl, d,
            CudaStreams.current(device.index)), "unpackSeq");
      } else {
        check(NativeKernels.unpackSeq(code, wire.code, address(out), in, b, s, keepHeads, hl, d, threads),
            "unpackSeq");
      }
    }
    return out;
  }

  /** float8 e4m3fn encoding of one value (round to nearest even, saturating at +-448). */
  public static byte fp8E4m3(float x) {
    return NativeKernels.fp8FromFloat(x);
  }

  /** Value of one float8 e4m3fn byte. */
  public static float fp8E4m3Value(byte v) {
    return NativeKernels.fp8ToFloat(v);
  }

  // ---------------------------------------------------------------------------------------------
  // validation helpers
  // ---------------------------------------------------------------------------------------------

  private record Device(boolean cuda, int index) {}

  // ---- low-bit linear layers (docs/quantization.md) --------------------------------------------

  /** The instruction set {@link #quantLinear} runs on here: "avx2" or "default". */
  public static String quantLinearIsa() {
    return NativeKernels.qlinearIsa();
  }

  /**
   * Quantises a float weight matrix {@code w} [out, in] (fp32, bf16 or fp16, CPU).
   *
   * @param group inputs per int4 scale (an even divisor of {@code in} and of 512); ignored otherwise
   * @param perTensor one scale for the whole matrix (int8 and fp8 only)
   * @return the canonical weight tensor ({@link QuantFormat#storage()}) and its fp32 scales
   * @throws IllegalArgumentException for a bad group, or naming the first non-finite weight
   */
  public Tensor[] quantizeWeight(Tensor w, QuantFormat format, int group, boolean perTensor) {
    requireDims("w", w, 2);
    Device d = device("w", w);
    if (d.cuda) {
      throw new IllegalArgumentException("w must be a CPU tensor (quantise before moving to the GPU)");
    }
    long out = w.size(0);
    long in = w.size(1);
    checkGroup(format, in, group, perTensor);
    int dtype = dtypeCode("w", w);
    Tensor src = w.contiguous();
    Tensor q = torch.empty(format.storedShape(out, in), new org.bytedeco.pytorch.TensorOptions(format.storage()), new MemoryFormatOptional());
    Tensor scales = torch.empty(new long[] {format.scaleCount(out, in, group, perTensor)},
        new org.bytedeco.pytorch.TensorOptions(ScalarType.Float), new MemoryFormatOptional());
    int status = NativeKernels.qweightQuantize(dtype, format.code, address(src), out, in, group, perTensor ? 1 : 0,
        address(q), address(scales), threads);
    if (status == 1) {  // every other argument was checked above
      throw new IllegalArgumentException("w holds NaN or infinite values; such a layer cannot be quantised");
    }
    check(status, "quantizeWeight");
    return new Tensor[] {q, scales};
  }

  private static void checkGroup(QuantFormat format, long in, int group, boolean perTensor) {
    if (format != QuantFormat.INT4) {
      return;
    }
    if (perTensor) {
      throw new IllegalArgumentException("int4 weights have per-group scales; per-tensor int4 does not exist");
    }
    if (group < 2 || group % 2 != 0 || 512 % group != 0) {
      throw new IllegalArgumentException("int4 group size must be an even divisor of 512 (2, 4, ..., 32, 64, 128, "
          + "256, 512), got " + group);
    }
    if (in % group != 0) {
      throw new IllegalArgumentException("int4 group size " + group + " does not divide the " + in + " inputs");
    }
  }

  /** The packed copy the GEMM reads, from canonical weights {@code q} of an [out, in] matrix. */
  public Tensor packWeight(QuantFormat format, Tensor q, long out, long in) {
    checkCanonical(format, q, out, in);
    long bytes = NativeKernels.qweightPackedBytes(format.code, out, in);
    if (bytes < 0) {
      throw new IllegalArgumentException("cannot pack a " + format + " weight of " + out + " x " + in);
    }
    Tensor packed = torch.empty(new long[] {bytes}, new org.bytedeco.pytorch.TensorOptions(ScalarType.Byte), new MemoryFormatOptional());
    check(NativeKernels.qweightPack(format.code, address(q.contiguous()), out, in, address(packed), threads),
        "packWeight");
    return packed;
  }

  /** The canonical weights back from a packed copy (the inverse of {@link #packWeight}). */
  public Tensor unpackWeight(QuantFormat format, Tensor packed, long out, long in) {
    long bytes = NativeKernels.qweightPackedBytes(format.code, out, in);
    if (bytes < 0 || packed.numel() != bytes || packed.scalar_type().intern() != ScalarType.Byte) {
      throw new IllegalArgumentException("packed is not a packed " + format + " weight of " + out + " x " + in);
    }
    Tensor q = torch.empty(format.storedShape(out, in), new org.bytedeco.pytorch.TensorOptions(format.storage()), new MemoryFormatOptional());
    check(NativeKernels.qweightUnpack(format.code, address(packed), out, in, address(q), threads), "unpackWeight");
    return q;
  }

  private static void checkCanonical(QuantFormat format, Tensor q, long out, long in) {
    requireDefined("q", q);
    long[] want = format.storedShape(out, in);
    long[] got = q.sizes().vec().get();
    if (!Arrays.equals(want, got) || q.scalar_type().intern() != format.storage()) {
      throw new IllegalArgumentException("a " + format + " weight of " + out + " x " + in + " is " + format.storage()
          + " " + Arrays.toString(want) + ", got " + q.scalar_type().intern() + " " + Arrays.toString(got));
    }
  }

  /**
   * The packed copy of an fp32 weight [out, in] that {@link #invariantLinear} reads (panels of 16
   * outputs; docs/kernels.md).
   */
  public Tensor packInvariantWeight(Tensor w) {
    requireCpuFp32Weight("an invariant linear weight", w);
    long out = w.size(0);
    long in = w.size(1);
    Tensor wc = w.contiguous();
    Tensor packed = torch.empty(new long[] {NativeKernels.linearF32PackedFloats(out, in)},
        new org.bytedeco.pytorch.TensorOptions(ScalarType.Float), new MemoryFormatOptional());
    check(NativeKernels.linearF32Pack(address(wc), out, in, address(packed), threads), "packInvariantWeight");
    return packed;
  }

  /**
   * {@code y = x W^T + bias} for a CPU fp32 {@code x} [..., in], computed so that every row's result
   * is the same bits whatever the other rows, their number and the thread count: a request batched with
   * others gets exactly what it gets alone (BLAS GEMMs choose kernels by size and do not).
   *
   * @param packed from {@link #packInvariantWeight}
   * @param bias [out] fp32, or null
   */
  public Tensor invariantLinear(Tensor x, Tensor packed, long out, long in, Tensor bias) {
    return invariantLinear(x, packed, out, in, bias, FusedActivation.NONE);
  }

  /**
   * {@link #invariantLinear(Tensor, Tensor, long, long, Tensor)} followed by {@code activation} on each
   * output, applied as the kernel writes it.
   */
  public Tensor invariantLinear(Tensor x, Tensor packed, long out, long in, Tensor bias, FusedActivation activation) {
    requirePackedF32(packed, out, in);
    int act = java.util.Objects.requireNonNull(activation, "activation").code;
    return cpuFp32Linear("invariantLinear", x, out, in, bias, (xa, rows, b, y) -> NativeKernels.linearF32Act(xa, rows,
        in, address(packed), out, b, act, y, threads));
  }

  /** The instruction set {@link #invariantLinear} uses here: {@code avx2} or {@code default}. */
  public static String invariantLinearIsa() {
    return NativeKernels.linearF32Isa();
  }

  /**
   * The packed bf16 copy of an fp32 weight [out, in] that {@link #bf16Linear} reads (panels of 16
   * outputs, inputs in pairs; docs/kernels.md section 6), rounded to nearest even.
   */
  public Tensor packBf16Weight(Tensor w) {
    requireCpuFp32Weight("a bf16-compute linear weight", w);
    long out = w.size(0);
    long in = w.size(1);
    Tensor wc = w.contiguous();
    Tensor packed = torch.empty(new long[] {NativeKernels.linearBf16PackedElements(out, in)},
        new org.bytedeco.pytorch.TensorOptions(ScalarType.BFloat16), new MemoryFormatOptional());
    check(NativeKernels.linearBf16Pack(address(wc), out, in, address(packed), threads), "packBf16Weight");
    return packed;
  }

  /**
   * {@code y = bf16(x) W^T + bias} for a CPU fp32 {@code x} [..., in] and fp32 output: inputs and
   * weights in bf16, every product exact and summed in fp32 (AVX-512 BF16's dot product where the CPU
   * has it). Rows are independent of the batch and the thread count, as in {@link #invariantLinear}.
   *
   * @param packed from {@link #packBf16Weight}
   * @param bias [out] fp32, or null
   */
  public Tensor bf16Linear(Tensor x, Tensor packed, long out, long in, Tensor bias) {
    return bf16Linear(x, packed, out, in, bias, FusedActivation.NONE);
  }

  /** {@link #bf16Linear(Tensor, Tensor, long, long, Tensor)} followed by {@code activation} on each output. */
  public Tensor bf16Linear(Tensor x, Tensor packed, long out, long in, Tensor bias, FusedActivation activation) {
    requirePackedBf16(packed, out, in);
    int act = java.util.Objects.requireNonNull(activation, "activation").code;
    return cpuFp32Linear("bf16Linear", x, out, in, bias, (xa, rows, b, y) -> NativeKernels.linearBf16Act(xa, rows, in,
        address(packed), out, b, act, y, threads));
  }

  /**
   * adaLN's gated residual fused into {@link #invariantLinear}: {@code residual + gate[:, None] *
   * (x W^T + bias)} for x [B, S, in], residual [B, S, out] and gate [B, out] (a view whose rows may be
   * apart, as adaLN's chunks are): one fused multiply-add per output, which is how libtorch's
   * vectorised {@code addcmul} of the layer's output rounds too (tested bit for bit).
   */
  public Tensor invariantLinearGated(Tensor x, Tensor packed, long out, long in, Tensor bias, Tensor residual,
      Tensor gate) {
    requirePackedF32(packed, out, in);
    return gatedLinear("invariantLinearGated", x, out, in, bias, residual, gate, (xa, rows, b, r, g, perGate, stride,
        y) -> NativeKernels.linearF32Gated(xa, rows, in, address(packed), out, b, r, g, perGate, stride, y, threads));
  }

  /** {@link #invariantLinearGated} on the bf16-compute kernel ({@link #bf16Linear}). */
  public Tensor bf16LinearGated(Tensor x, Tensor packed, long out, long in, Tensor bias, Tensor residual,
      Tensor gate) {
    requirePackedBf16(packed, out, in);
    return gatedLinear("bf16LinearGated", x, out, in, bias, residual, gate, (xa, rows, b, r, g, perGate, stride,
        y) -> NativeKernels.linearBf16Gated(xa, rows, in, address(packed), out, b, r, g, perGate, stride, y, threads));
  }

  private static void requirePackedF32(Tensor packed, long out, long in) {
    if (packed.numel() != NativeKernels.linearF32PackedFloats(out, in)) {
      throw new IllegalArgumentException("packed is not a packed " + out + " x " + in + " weight");
    }
  }

  private static void requirePackedBf16(Tensor packed, long out, long in) {
    if (packed.numel() != NativeKernels.linearBf16PackedElements(out, in)
        || packed.scalar_type().intern() != ScalarType.BFloat16) {
      throw new IllegalArgumentException("packed is not a packed bf16 " + out + " x " + in + " weight");
    }
  }

  @FunctionalInterface
  private interface GatedCall {
    int run(long x, long rows, long bias, long residual, long gate, long rowsPerGate, long gateStride, long y);
  }

  private static Tensor gatedLinear(String op, Tensor x, long out, long in, Tensor bias, Tensor residual, Tensor gate,
      GatedCall call) {
    requireDefined("x", x);
    requireDefined("residual", residual);
    requireDefined("gate", gate);
    if (x.dim() != 3 || x.size(2) != in || residual.dim() != 3 || residual.size(0) != x.size(0)
        || residual.size(1) != x.size(1) || residual.size(2) != out || gate.dim() != 2 || gate.size(0) != x.size(0)
        || gate.size(1) != out) {
      throw new IllegalArgumentException(op + " takes x [B, S, " + in + "], residual [B, S, " + out + "], gate [B, "
          + out + "], got " + Arrays.toString(x.sizes().vec().get()) + ", " + Arrays.toString(residual.sizes().vec().get())
          + ", " + Arrays.toString(gate.sizes().vec().get()));
    }
    Tensor xc = cpuFp32("x", x);
    Tensor rc = cpuFp32("residual", residual);
    Tensor gc = cpuFp32("gate", gate);
    if (gc.stride(1) != 1) {
      gc = gc.contiguous();
    }
    Tensor b = bias == null ? null : cpuFp32Sized("bias", bias, out);
    Tensor y = torch.empty(new long[] {x.size(0), x.size(1), out}, x.options(), new MemoryFormatOptional());
    check(call.run(address(xc), x.size(0) * x.size(1), b == null ? 0L : address(b), address(rc), address(gc),
        x.size(1), x.size(0) == 1 ? out : gc.stride(0), address(y)), op);
    return y;
  }

  /**
   * adaLN's {@code layer_norm(x) * (1 + scale[:, None]) + shift[:, None]} in one pass for CPU fp32 x
   * [B, S, C] and shift, scale [B, C] (views into one modulation vector are fine: rows may be apart).
   */
  public Tensor layerNormModulate(Tensor x, Tensor shift, Tensor scale, double eps) {
    requireDefined("x", x);
    if (x.dim() != 3 || shift.dim() != 2 || scale.dim() != 2 || shift.size(0) != x.size(0)
        || shift.size(1) != x.size(2) || scale.size(0) != x.size(0) || scale.size(1) != x.size(2)) {
      throw new IllegalArgumentException("layerNormModulate takes x [B, S, C] and shift, scale [B, C], got "
          + Arrays.toString(x.sizes().vec().get()) + ", " + Arrays.toString(shift.sizes().vec().get()) + ", "
          + Arrays.toString(scale.sizes().vec().get()));
    }
    Tensor xc = cpuFp32("x", x);
    Tensor sh = cpuFp32("shift", shift);
    Tensor sc = cpuFp32("scale", scale);
    if (sh.stride(1) != 1 || sc.stride(1) != 1 || sh.stride(0) != sc.stride(0)) {
      sh = sh.contiguous();
      sc = sc.contiguous();
    }
    Tensor y = torch.empty_like(xc);
    check(NativeKernels.layerNormModulate(address(xc), x.size(0), x.size(1), x.size(2), address(sc), address(sh),
        x.size(0) == 1 ? x.size(2) : sh.stride(0), (float) eps, address(y), threads), "layerNormModulate");
    return y;
  }

  /**
   * gelu with the tanh approximation of a CPU fp32 tensor, as {@link FusedActivation#GELU_TANH}
   * defines it (a new contiguous tensor).
   */
  public Tensor geluTanh(Tensor x) {
    requireDefined("x", x);
    if (x.is_cuda() || x.scalar_type().intern() != ScalarType.Float) {
      throw new IllegalArgumentException("geluTanh takes a CPU fp32 tensor, got " + x.scalar_type().intern()
          + (x.is_cuda() ? " on CUDA" : ""));
    }
    Tensor xc = x.contiguous();
    Tensor y = torch.empty_like(xc);
    check(NativeKernels.geluTanh(address(xc), xc.numel(), address(y), threads), "geluTanh");
    return y;
  }

  /**
   * One attention input (q, k or v) in the [B, H, Sa + Sb, D] layout attention reads, from the
   * projections of two token groups (text, then image), with per-head RMSNorm and rotary embedding
   * applied on the way (docs/kernels.md section 8). All tensors CPU fp32.
   *
   * @param a [B, Sa, H * D], the first tokens
   * @param b [B, Sb, H * D], the following tokens, or null
   * @param heads H
   * @param wa RMSNorm weight [D] of a's tokens, or null for no norm (then wb null too)
   * @param wb RMSNorm weight [D] of b's tokens (required with wa when b is given)
   * @param eps RMSNorm epsilon
   * @param cos rotary table [Sa + Sb, D], or null for no rotation (then sin null too)
   * @param sin rotary table [Sa + Sb, D]
   */
  public Tensor headsNormRope(Tensor a, Tensor b, long heads, Tensor wa, Tensor wb, double eps, Tensor cos,
      Tensor sin) {
    requireDefined("a", a);
    if (a.dim() != 3 || heads < 1 || a.size(2) % heads != 0) {
      throw new IllegalArgumentException("a must be [B, S, H * D] with H = " + heads + ", got "
          + Arrays.toString(a.sizes().vec().get()));
    }
    long batch = a.size(0);
    long hd = a.size(2);
    long dim = hd / heads;
    if (b != null && (b.dim() != 3 || b.size(0) != batch || b.size(2) != hd)) {
      throw new IllegalArgumentException("b must be [" + batch + ", S, " + hd + "] like a, got "
          + Arrays.toString(b.sizes().vec().get()));
    }
    long sa = a.size(1);
    long sb = b == null ? 0 : b.size(1);
    Tensor ac = cpuFp32("a", a);
    Tensor bc = b == null ? null : cpuFp32("b", b);
    Tensor wac = wa == null ? null : cpuFp32Sized("wa", wa, dim);
    Tensor wbc = wb == null ? null : cpuFp32Sized("wb", wb, dim);
    Tensor cc = cos == null ? null : cpuFp32Sized("cos", cos, (sa + sb) * dim);
    Tensor sc = sin == null ? null : cpuFp32Sized("sin", sin, (sa + sb) * dim);
    Tensor out = torch.empty(new long[] {batch, heads, sa + sb, dim}, a.options(), new MemoryFormatOptional());
    check(NativeKernels.headsNormRope(address(ac), sa, bc == null ? 0L : address(bc), sb, batch, heads, dim,
        wac == null ? 0L : address(wac), wbc == null ? 0L : address(wbc), (float) eps, cc == null ? 0L : address(cc),
        sc == null ? 0L : address(sc), address(out), threads), "headsNormRope");
    return out;
  }

  /** The longest sequence {@link #attentionTokenMajor} takes (the C kernel's CDIT_ATTENTION_MAX_TOKENS). */
  public static final long ATTENTION_MAX_TOKENS = 4096;

  /**
   * {@code softmax(q k^T / sqrt(D)) v} for CPU fp32 q, k, v [B, H, S, D], returned token-major and split
   * at token {@code split}: {[B, split, H * D], [B, S - split, H * D]} (an empty part is null). For short
   * sequences (docs/kernels.md section 9); fixed summation order, so the same bits on any thread count.
   */
  public Tensor[] attentionTokenMajor(Tensor q, Tensor k, Tensor v, long split) {
    requireDefined("q", q);
    if (q.dim() != 4 || !Arrays.equals(q.sizes().vec().get(), k.sizes().vec().get())
        || !Arrays.equals(q.sizes().vec().get(), v.sizes().vec().get())) {
      throw new IllegalArgumentException("q, k and v must be [B, H, S, D] of one shape, got "
          + Arrays.toString(q.sizes().vec().get()) + ", " + Arrays.toString(k.sizes().vec().get()) + ", "
          + Arrays.toString(v.sizes().vec().get()));
    }
    long batch = q.size(0);
    long heads = q.size(1);
    long tokens = q.size(2);
    long dim = q.size(3);
    if (split < 0 || split > tokens || tokens > ATTENTION_MAX_TOKENS) {
      throw new IllegalArgumentException("split must be 0.." + tokens + " and S <= " + ATTENTION_MAX_TOKENS + ", got split "
          + split + ", S " + tokens);
    }
    Tensor qc = cpuFp32("q", q);
    Tensor kc = cpuFp32("k", k);
    Tensor vc = cpuFp32("v", v);
    Tensor a = split == 0 ? null
        : torch.empty(new long[] {batch, split, heads * dim}, q.options(), new MemoryFormatOptional());
    Tensor b = split == tokens ? null
        : torch.empty(new long[] {batch, tokens - split, heads * dim}, q.options(), new MemoryFormatOptional());
    check(NativeKernels.attentionF32(address(qc), address(kc), address(vc), batch, heads, tokens, dim,
        (float) (1.0 / Math.sqrt(dim)), split, a == null ? 0L : address(a), b == null ? 0L : address(b), threads),
        "attentionTokenMajor");
    return new Tensor[] {a, b};
  }

  private static Tensor cpuFp32(String name, Tensor t) {
    if (!Tensors.cpuFloat(t)) {
      throw new IllegalArgumentException(name + " must be a CPU fp32 tensor, got " + t.scalar_type().intern()
          + (t.is_cuda() ? " on CUDA" : ""));
    }
    return t.contiguous();
  }

  private static Tensor cpuFp32Sized(String name, Tensor t, long numel) {
    if (t.numel() != numel) {
      throw new IllegalArgumentException(name + " must hold " + numel + " values, got " + t.numel() + " "
          + Arrays.toString(t.sizes().vec().get()));
    }
    return cpuFp32(name, t);
  }

  /** One call of a C linear kernel on raw addresses: x, its rows, bias (0 = none), y; returns a status. */
  @FunctionalInterface
  private interface LinearCall {
    int run(long x, long rows, long bias, long y);
  }

  private static void requireCpuFp32Weight(String what, Tensor w) {
    requireDefined("w", w);
    if (w.dim() != 2 || w.scalar_type().intern() != ScalarType.Float || w.is_cuda()) {
      throw new IllegalArgumentException(what + " is a CPU fp32 [out, in] matrix, got " + w.scalar_type().intern() + " "
          + Arrays.toString(w.sizes().vec().get()) + (w.is_cuda() ? " on CUDA" : ""));
    }
  }

  /** Checks x [..., in] (CPU fp32) and bias [out], allocates y [..., out] and runs {@code call}. */
  private static Tensor cpuFp32Linear(String op, Tensor x, long out, long in, Tensor bias, LinearCall call) {
    requireDefined("x", x);
    int dims = (int) x.dim();
    if (x.is_cuda() || x.scalar_type().intern() != ScalarType.Float || dims < 1 || x.size(dims - 1) != in) {
      throw new IllegalArgumentException("x must be a CPU fp32 tensor ending in the layer's " + in + " inputs, got "
          + x.scalar_type().intern() + " " + Arrays.toString(x.sizes().vec().get()));
    }
    Tensor b = null;
    if (bias != null) {
      if (bias.numel() != out) {
        throw new IllegalArgumentException("bias must hold " + out + " values, got " + bias.numel());
      }
      b = bias.to(ScalarType.Float).contiguous();
    }
    Tensor xc = x.contiguous();
    long[] shape = x.sizes().vec().get();
    shape[dims - 1] = out;
    Tensor y = torch.empty(shape, x.options(), new MemoryFormatOptional());
    check(call.run(address(xc), x.numel() / in, b == null ? 0L : address(b), address(y)), op);
    return y;
  }

  /** The instruction set {@link #bf16Linear} uses here: {@code avx512bf16} or {@code default}. */
  public static String bf16LinearIsa() {
    return NativeKernels.linearBf16Isa();
  }

  /**
   * {@code y = x W^T + bias} for {@code x} [..., in] (fp32, bf16 or fp16) with W given by its packed
   * copy and scales; the input is quantised as {@code activation} says on every call. On a CUDA
   * tensor it runs cachedit's CUDA kernel (bit-identical to the CPU one); packed, scales and bias
   * must then be on x's device.
   *
   * @param bias [out] in x's dtype, or null
   */
  public Tensor quantLinear(Tensor x, QuantActivation activation, QuantFormat format, Tensor packed, Tensor scales,
      long out, long in, int group, boolean perTensor, Tensor bias) {
    requireDefined("x", x);
    Device dev = device("x", x);
    if (dev.cuda) {
      requireCuda();
    }
    for (Map.Entry<String, Tensor> e : Map.of("packed", packed, "scales", scales).entrySet()) {
      if (!device(e.getKey(), e.getValue()).equals(dev)) {
        throw new IllegalArgumentException(e.getKey() + " is on " + describe(device(e.getKey(), e.getValue()))
            + " but x on " + describe(dev) + "; move the quantised weight to x's device");
      }
    }
    int dims = (int) x.dim();
    if (dims < 1 || x.size(dims - 1) != in) {
      throw new IllegalArgumentException("x must end in the layer's " + in + " inputs, got "
          + Arrays.toString(x.sizes().vec().get()));
    }
    int dtype = dtypeCode("x", x);
    if (scales.numel() != format.scaleCount(out, in, group, perTensor)
        || scales.scalar_type().intern() != ScalarType.Float) {
      throw new IllegalArgumentException("scales must be " + format.scaleCount(out, in, group, perTensor)
          + " fp32 values, got " + scales.numel() + " " + scales.scalar_type().intern());
    }
    Tensor xc = x.contiguous();
    long m = x.numel() / in;
    long[] shape = x.sizes().vec().get();
    shape[dims - 1] = out;
    Tensor y = torch.empty(shape, x.options(), new MemoryFormatOptional());
    Tensor b = null;
    if (bias != null) {
      if (bias.numel() != out) {
        throw new IllegalArgumentException("bias must hold " + out + " values, got " + bias.numel());
      }
      b = bias.scalar_type().intern() == x.scalar_type().intern() ? bias.contiguous()
          : bias.to(x.scalar_type().intern()).contiguous();
    }
    if (dev.cuda) {
      checkCuda(CudaNativeKernels.qlinear(dtype, activation.code, format.code, address(xc), m, in, address(packed),
          address(scales), out, group, perTensor ? 1 : 0, b == null ? 0L : address(b), address(y),
          CudaStreams.current(dev.index)), "quantLinear");
      return y;
    }
    check(NativeKernels.qlinear(dtype, activation.code, format.code, address(xc), m, in, address(packed),
        address(scales), out, group, perTensor ? 1 : 0, b == null ? 0L : address(b), address(y), threads),
        "quantLinear");
    return y;
  }

  private static Device device(String name, Tensor t) {
    requireDefined(name, t);
    if (t.is_cuda()) {
      return new Device(true, t.device().index());
    }
    if (t.device().type().intern() != torch.DeviceType.CPU) {
      throw new IllegalArgumentException(name + " is on an unsupported device " + t.device().type()
          + "; cachedit kernels run on CPU and CUDA tensors");
    }
    return new Device(false, -1);
  }

  private static Device checkPair(String nameA, Tensor a, String nameB, Tensor b) {
    Device da = device(nameA, a);
    Device db = device(nameB, b);
    if (!da.equals(db)) {
      throw new IllegalArgumentException(nameA + " and " + nameB + " are on different devices ("
          + describe(da) + " vs " + describe(db) + ")");
    }
    ScalarType ta = a.scalar_type().intern();
    ScalarType tb = b.scalar_type().intern();
    if (ta != tb) {
      throw new IllegalArgumentException(nameA + " is " + ta + " but " + nameB + " is " + tb
          + "; convert one with .to(...) first");
    }
    long[] sa = a.sizes().vec().get();
    long[] sb = b.sizes().vec().get();
    if (!Arrays.equals(sa, sb)) {
      throw new IllegalArgumentException(nameA + " has shape " + Arrays.toString(sa) + " but " + nameB
          + " has shape " + Arrays.toString(sb));
    }
    return da;
  }

  private static String describe(Device d) {
    return d.cuda ? "cuda:" + d.index : "cpu";
  }

  private static void requireDefined(String name, Tensor t) {
    if (t == null || t.isNull() || !t.defined()) {
      throw new IllegalArgumentException(name + " is null or an undefined tensor");
    }
  }

  private static void requireContiguous(String name, Tensor t) {
    if (!t.is_contiguous()) {
      throw new IllegalArgumentException(name + " is written in place and must be contiguous; pass "
          + name + ".contiguous() and use that tensor afterwards");
    }
  }

  private static void requireDims(String name, Tensor t, int dims) {
    requireDefined(name, t);
    if (t.dim() != dims) {
      throw new IllegalArgumentException(name + " must have " + dims + " dimensions, got shape "
          + Arrays.toString(t.sizes().vec().get()));
    }
  }

  private static void checkTerms(String name, List<Tensor> terms, int max) {
    if (terms == null || terms.isEmpty() || terms.size() > max) {
      throw new IllegalArgumentException(name + " must hold 1.." + max + " tensors, got "
          + (terms == null ? "null" : terms.size()));
    }
    for (int i = 1; i < terms.size(); i++) {
      checkPair(name + "[0]", terms.get(0), name + "[" + i + "]", terms.get(i));
    }
  }

  static int dtypeCode(ScalarType type) {
    if (type == null) {
      throw new IllegalArgumentException("dtype is null");
    }
    return switch (type.intern()) {
      case Float -> 0;
      case BFloat16 -> 1;
      case Half -> 2;
      default -> throw new IllegalArgumentException("unsupported dtype " + type
          + "; cachedit kernels take Float (fp32), BFloat16 or Half (fp16)");
    };
  }

  private static int dtypeCode(String name, Tensor t) {
    ScalarType type = t.scalar_type().intern();
    try {
      return dtypeCode(type);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException(name + " has " + e.getMessage(), e);
    }
  }

  private static long elementSize(ScalarType type) {
    return type.intern() == ScalarType.Float ? 4 : 2;
  }

  private static Tensor wireTensor(Tensor like, long[] rows, Wire wire, long headDim) {
    long[] shape = Arrays.copyOf(rows, rows.length + 1);
    ScalarType type = like.scalar_type().intern();
    ScalarType wireType = wire == Wire.RAW ? type : ScalarType.Byte;
    shape[rows.length] = wire == Wire.RAW ? headDim : wire.rowBytes(headDim, elementSize(type));
    return torch.empty(shape, like.options().dtype(new ScalarTypeOptional(wireType)), new MemoryFormatOptional());
  }

  /** Validates a packed buffer against its wire format and returns the head dimension it encodes. */
  private static long checkWireTensor(String name, Tensor packed, Wire wire, ScalarType dtype) {
    dtypeCode(dtype);
    ScalarType actual = packed.scalar_type().intern();
    ScalarType expected = wire == Wire.RAW ? dtype.intern() : ScalarType.Byte;
    if (actual != expected) {
      throw new IllegalArgumentException(name + " is " + actual + " but wire " + wire + " with dtype " + dtype
          + " travels as " + expected);
    }
    long last = packed.size(packed.dim() - 1);
    long d = wire.headDim(last);
    if (d < 0) {
      throw new IllegalArgumentException(name + "'s last dimension " + last + " is too small for wire " + wire);
    }
    return d;
  }

  private static long address(Tensor t) {
    return t.numel() == 0 ? 0L : t.data_ptr().address();
  }

  private static void requireCuda() {
    if (!cudaAvailable()) {
      throw new IllegalStateException(cudaBuilt()
          ? "a CUDA tensor was passed but no CUDA device is usable: " + CudaNativeKernels.lastError()
          : "a CUDA tensor was passed but cachedit's CUDA kernels were not built (nvcc was missing at build time)");
    }
  }

  private static void check(int status, String op) {
    if (status != 0) {
      // the message was set by this thread's failing call just now (it is per thread)
      throw new KernelException(op + " failed: " + NativeKernels.statusString(status) + " ("
          + NativeKernels.lastError() + ")");
    }
  }

  private static void checkCuda(int status, String op) {
    if (status != 0) {
      String detail = status == 4 ? ": " + CudaNativeKernels.lastError() : "";
      throw new KernelException(op + " (CUDA) failed: " + NativeKernels.statusString(status) + detail);
    }
  }
}
