package io.cachedit.cache.engine;

import io.cachedit.cache.DMDCalibratorConfig;
import io.cachedit.kernels.NativeScope;
import io.cachedit.kernels.Tensors;
import java.util.ArrayList;
import java.util.List;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.GeneratorOptional;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.StringViewOptional;
import org.bytedeco.pytorch.T_TensorTensorTensor_T;
import org.bytedeco.pytorch.T_TensorTensor_T;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * Dynamic Mode Decomposition (docs/algorithms.md section 6.3). Keeps the last {@code history} computed
 * values with their steps. On a cached step it takes the longest evenly spaced run of them ending at
 * the newest; with 4 or more it fits, per batch item and in float64, the linear map that advances one
 * snapshot to the next (economy SVD of the snapshot matrix, truncated by rank, then an
 * eigendecomposition of the reduced map) and forecasts {@code Phi (lambda^k b)} at the fractional
 * horizon {@code k = elapsed steps / spacing}. The fit depends only on the window, so it is computed
 * once per new snapshot and reused on every cached step until the next. A degenerate fit or a
 * non-finite forecast reuses the newest value; with fewer than 4 evenly spaced values it extrapolates
 * linearly as the reference's fallback does.
 */
final class DMDState extends CalibratorState {
  private record Snapshot(int step, Tensor value) {}

  /** One batch item's fit: modes, eigenvalues, amplitudes (complex128, owned). */
  private record ItemFit(Tensor modes, Tensor eigenvalues, Tensor amplitudes) {}

  private final int history;
  private final int rank;
  private final double ridge;
  private final DMDCalibratorConfig.SvdPrecision precision;
  private final List<Snapshot> snapshots = new ArrayList<>();
  // the first-order fallback ladder, as the reference keeps it: [value, first difference]
  private Tensor[] ladderPrev = new Tensor[2];
  private Tensor[] ladderCur = new Tensor[2];
  private List<ItemFit> fit;  // null: none or degenerate
  private long[] fitKey;      // newest step, tail length, spacing

  DMDState(DMDCalibratorConfig config, NativeScope owner) {
    super(owner);
    this.history = config.history();
    this.rank = config.rank();
    this.ridge = config.ridge();
    this.precision = config.svdPrecision();
  }

  @Override
  void update(Tensor value) {
    if (!snapshots.isEmpty() && !Tensors.sameShape(snapshots.get(snapshots.size() - 1).value(), value)) {
      reset();
    }
    updateLadder(value);
    snapshots.add(new Snapshot(currentStep, owner.keep(value.clone())));
    while (snapshots.size() > history) {
      owner.release(snapshots.remove(0).value());
    }
    lastComputeStep = currentStep;
    dropFit();
  }

  /**
   * The reference's fallback ladder: the new difference is taken against the ladder of the update
   * before the previous one (its code reads the older ladder before rotating), over the latest gap.
   */
  private void updateLadder(Tensor y) {
    Tensor[] next = new Tensor[2];
    next[0] = owner.keep(y);
    int window = currentStep - lastComputeStep;
    if (ladderPrev[0] != null && currentStep > 1 && window > 0) {
      try (PointerScope scope = new PointerScope()) {
        next[1] = owner.keep(y.sub(ladderPrev[0]).div(new Scalar((double) window)));
      }
    }
    release(ladderPrev);
    ladderPrev = ladderCur;
    ladderCur = next;
  }

  @Override
  boolean has() {
    return !snapshots.isEmpty();
  }

  @Override
  Tensor approximate() {
    if (snapshots.isEmpty()) {
      return null;
    }
    Snapshot newest = snapshots.get(snapshots.size() - 1);
    List<Tensor> tail = new ArrayList<>();
    int spacing = uniformTail(tail);
    if (tail.size() >= 4) {
      double k = (double) (currentStep - newest.step()) / spacing;
      long[] key = {newest.step(), tail.size(), spacing};
      if (fitKey == null || !java.util.Arrays.equals(fitKey, key)) {
        dropFit();
        fit = fit(tail);
        fitKey = key;
      }
      if (fit != null) {
        Tensor pred = evaluate(fit, k, newest.value());
        if (pred != null) {
          return pred;
        }
      }
      return newest.value().clone();
    }
    return taylor();
  }

  /** The longest evenly spaced run of snapshots ending at the newest (oldest first); returns the spacing. */
  private int uniformTail(List<Tensor> out) {
    int n = snapshots.size();
    if (n < 2) {
      return 0;
    }
    int spacing = snapshots.get(n - 1).step() - snapshots.get(n - 2).step();
    if (spacing <= 0) {
      return 0;
    }
    int first = n - 2;
    while (first - 1 >= 0 && snapshots.get(first).step() - snapshots.get(first - 1).step() == spacing) {
      first--;
    }
    for (int i = first; i < n; i++) {
      out.add(snapshots.get(i).value());
    }
    return spacing;
  }

  private Tensor taylor() {
    int elapsed = currentStep - lastComputeStep;
    Tensor out = null;
    double factorial = 1;
    for (int i = 0; i < ladderCur.length && ladderCur[i] != null; i++) {
      factorial *= Math.max(1, i);
      Tensor term = ladderCur[i].mul(new Scalar(1.0 / factorial)).mul(new Scalar(Math.pow(elapsed, i)));
      out = out == null ? term : out.add(term);
    }
    return out;
  }

  /** One fit per batch item, or null if any item is degenerate. */
  private List<ItemFit> fit(List<Tensor> tail) {
    Tensor newest = tail.get(tail.size() - 1);
    long batch = newest.dim() > 1 ? newest.size(0) : 1;
    List<ItemFit> fits = new ArrayList<>();
    try (PointerScope scope = new PointerScope()) {
      TensorVector columns = new TensorVector();
      for (Tensor s : tail) {
        columns.push_back(s.reshape(batch, -1));
      }
      Tensor v = torch.stack(columns, -1).to(ScalarType.Double);  // [B, d, n]
      for (long i = 0; i < batch; i++) {
        ItemFit f = fitOne(v.select(0, i));
        if (f == null) {
          fits.forEach(this::release);
          return null;
        }
        fits.add(f);
      }
    }
    return fits;
  }

  /** The fit of one {@code [d, n]} trajectory (columns oldest to newest), or null when degenerate. */
  private ItemFit fitOne(Tensor traj) {
    long n = traj.size(1);
    Tensor x = traj.narrow(1, 0, n - 1);
    Tensor xp = traj.narrow(1, 1, n - 1);
    Tensor u;
    Tensor s;
    Tensor vh;
    try {
      Tensor[] usv = svd(x);
      u = usv[0];
      s = usv[1];
      vh = usv[2];
    } catch (RuntimeException e) {
      return null;
    }
    long r = rank;
    if (r <= 0) {
      r = Math.max(1, s.gt(new Scalar(s.get(0).item_double() * 1e-4)).sum().item_long());
    }
    r = Math.max(1, Math.min(r, s.numel()));
    Tensor ur = u.narrow(1, 0, r);
    Tensor sr = s.narrow(0, 0, r);
    Tensor vr = vh.narrow(0, 0, r).mH();
    Tensor sinv = sr.add(new Scalar(ridge)).reciprocal().to(ScalarType.ComplexDouble).unsqueeze(0);
    try {
      Tensor reduced = ur.mH().matmul(xp).matmul(vr).to(ScalarType.ComplexDouble).mul(sinv);
      T_TensorTensor_T eig = torch.linalg_eig(reduced);
      Tensor eigenvalues = eig.get0();
      Tensor w = eig.get1();
      Tensor modes = xp.matmul(vr).to(ScalarType.ComplexDouble).mul(sinv).matmul(w);
      Tensor target = traj.select(1, n - 1).to(ScalarType.ComplexDouble).unsqueeze(1);
      Tensor amplitudes = torch.linalg_lstsq(modes, target).get0().squeeze(1);
      return new ItemFit(owner.keep(modes), owner.keep(eigenvalues), owner.keep(amplitudes));
    } catch (RuntimeException e) {
      return null;
    }
  }

  /**
   * Economy SVD {@code U, S, Vh} of a tall matrix: randomised (one power iteration, seed 0) for LOW,
   * LAPACK's default otherwise (libtorch offers the gesvd driver only on CUDA, where HIGH uses it).
   */
  private Tensor[] svd(Tensor x) {
    if (precision == DMDCalibratorConfig.SvdPrecision.LOW) {
      return svdLowRank(x);
    }
    StringViewOptional driver = precision == DMDCalibratorConfig.SvdPrecision.HIGH && x.is_cuda()
        ? new StringViewOptional("gesvd") : new StringViewOptional();
    T_TensorTensorTensor_T usv = torch.linalg_svd(x, false, driver);
    return new Tensor[] {usv.get0(), usv.get1(), usv.get2()};
  }

  /** Halko et al.'s randomised SVD with q = columns and one power iteration, as {@code torch.svd_lowrank}. */
  private static Tensor[] svdLowRank(Tensor a) {
    long q = a.size(1);
    Tensor r = torch.randn(new long[] {a.size(1), q}, new GeneratorOptional(torch.createCPUGenerator(0)),
        new TensorOptions(ScalarType.Double)).to(a.device(), ScalarType.Double);
    Tensor basis = qr(a.matmul(r));
    basis = qr(a.mH().matmul(basis));
    basis = qr(a.matmul(basis));
    T_TensorTensorTensor_T usv = torch.linalg_svd(basis.mH().matmul(a), false, new StringViewOptional());
    return new Tensor[] {basis.matmul(usv.get0()), usv.get1(), usv.get2()};
  }

  private static Tensor qr(Tensor x) {
    return torch.linalg_qr(x).get0();
  }

  /** {@code Re(Phi (lambda^k b))} per item, in the values' dtype and shape; null if not finite. */
  private static Tensor evaluate(List<ItemFit> fits, double k, Tensor like) {
    TensorVector rows = new TensorVector();
    for (ItemFit f : fits) {
      rows.push_back(torch.real(f.modes().matmul(f.eigenvalues().pow(new Scalar(k)).mul(f.amplitudes()))));
    }
    Tensor pred = like.dim() > 1 ? torch.stack(rows, 0) : rows.get(0);
    Tensor out = pred.to(like.scalar_type()).reshape(like.sizes().vec().get());
    return out.isfinite().all().item_bool() ? out : null;
  }

  private void dropFit() {
    if (fit != null) {
      fit.forEach(this::release);
    }
    fit = null;
    fitKey = null;
  }

  private void release(ItemFit f) {
    owner.release(f.modes());
    owner.release(f.eigenvalues());
    owner.release(f.amplitudes());
  }

  private void release(Tensor[] ladder) {
    for (Tensor t : ladder) {
      owner.release(t);
    }
  }

  @Override
  long bytes() {
    List<Tensor> all = new ArrayList<>();
    snapshots.forEach(s -> all.add(s.value()));
    for (Tensor[] l : new Tensor[][] {ladderPrev, ladderCur}) {
      for (Tensor t : l) {
        all.add(t);
      }
    }
    if (fit != null) {
      for (ItemFit f : fit) {
        all.add(f.modes());
        all.add(f.eigenvalues());
        all.add(f.amplitudes());
      }
    }
    return bytesOf(all.toArray(new Tensor[0]));
  }

  @Override
  void drop() {
    snapshots.forEach(s -> owner.release(s.value()));
    snapshots.clear();
    release(ladderPrev);
    release(ladderCur);
    ladderPrev = new Tensor[2];
    ladderCur = new Tensor[2];
    dropFit();
  }

  @Override
  public String toString() {
    return "DMD(history " + history + ")";
  }
}
