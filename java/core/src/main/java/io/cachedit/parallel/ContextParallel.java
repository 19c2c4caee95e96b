package io.cachedit.parallel;

import io.cachedit.error.ConfigException;
import io.cachedit.error.UnsupportedModelException;
import io.cachedit.kernels.Kernels;
import io.cachedit.models.common.AttentionBackend;
import io.cachedit.models.common.BlockList;
import io.cachedit.models.common.BlockRunner;
import io.cachedit.models.common.DiffusersTransformer;
import io.cachedit.models.common.SequenceParallel;
import io.cachedit.models.common.Transformer;
import java.util.ArrayList;
import java.util.List;
import org.bytedeco.pytorch.global.torch;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Context parallelism installed on model instances (docs/parallelism.md): each model's attention is
 * replaced by Ulysses, ring or USP attention over the group, and its sequence is split and gathered
 * where its {@link io.cachedit.models.common.ContextParallelPlan} says. Nothing else changes: every
 * rank runs the whole pipeline on the same latents, each transformer forward computes this rank's
 * tokens, and its output is whole again on every rank.
 *
 * <p>The ranks form a {@link ParallelMesh}: within one CFG branch and one weight shard, rank
 * {@code r} of the context group holds part {@code r} of the sequence, exchanges heads with the
 * {@code ulysses_size} ranks of its Ulysses group and rotates keys and values around the
 * {@code ring_size} ranks of its ring. Models loaded tensor-parallel (hybrid) split the heads they
 * hold. {@link #close()} restores the models' own attention.
 */
public final class ContextParallel implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(ContextParallel.class);

  private record Installed(DiffusersTransformer model, AttentionBackend attention, SequenceParallel previous) {}

  private final ParallelismConfig config;
  private final ProcessGroups groups;
  private final CommGroup contextGroup;
  private final List<Installed> installed;
  private final WireBytes wireBytes;
  private boolean closed;

  private ContextParallel(ParallelismConfig config, ProcessGroups groups, CommGroup contextGroup,
      List<Installed> installed, WireBytes wireBytes) {
    this.wireBytes = wireBytes;
    this.config = config;
    this.groups = groups;
    this.contextGroup = contextGroup;
    this.installed = List.copyOf(installed);
  }

  /**
   * Checks, without any communication, that {@code config} can run context-parallel on
   * {@code worldSize} ranks for {@code models}: the sizes fit the world, tensor and CFG parallelism
   * are not asked for, every model declares a plan and none is cached yet (caching goes on after
   * parallelism, so that it decides for the whole group). Errors name the field or the model.
   */
  public static void validate(ParallelismConfig config, int worldSize, List<? extends Transformer> models) {
    config.validateFor(worldSize);
    if (!config.extraParallelModules().isEmpty()) {
      throw new ConfigException("extra_parallel_modules", config.extraParallelModules(), "is not available in this "
          + "version of cachedit: text encoders and VAEs run whole on every rank; remove the setting");
    }
    if (!config.contextParallel()) {
      throw new ConfigException("ulysses_size and ring_size are both 1: nothing to split the sequence over");
    }
    if (models.isEmpty()) {
      throw new IllegalArgumentException("no transformer to run context-parallel");
    }
    Parallelism.requireLoadedFor(config, models);
    for (Transformer t : models) {
      if (!(t instanceof DiffusersTransformer d)) {
        throw new UnsupportedModelException(t.getClass().getSimpleName() + " cannot run context-parallel: only "
            + "diffusers transformers declare where their sequence is split");
      }
      for (BlockList<?> list : d.blockLists()) {
        // a cache enabled before would decide from this rank's shard alone: ranks would diverge and hang
        if (list.runner() != BlockRunner.SEQUENTIAL) {
          throw new IllegalStateException("caching is already enabled on " + d.className() + "." + list.name()
              + ": enable context parallelism first and caching after it (or pass the parallelism with the cache "
              + "options), so that every rank takes the same cache decisions");
        }
      }
      if (d.contextParallelPlan().isEmpty()) {
        throw new UnsupportedModelException(d.className() + " has no context-parallel plan (where its sequence "
            + "is split and gathered), so it cannot run with ulysses_size or ring_size; models with plans: "
            + "FluxTransformer2DModel, QwenImageTransformer2DModel, ZImageTransformer2DModel, "
            + "WanTransformer3DModel, SD3Transformer2DModel and the bundled model");
      }
    }
  }

  /**
   * Installs context parallelism on {@code models} (all ranks call it, with the same config and
   * models). Validation comes first; then the subgroups of the mesh are created, which every rank of
   * each joins. Fails if a model already runs context-parallel.
   */
  public static ContextParallel apply(List<? extends Transformer> models, ParallelismConfig config,
      ProcessGroups groups) {
    validate(config, groups.worldSize(), models);
    for (Transformer t : models) {
      if (((DiffusersTransformer) t).sequenceParallel().active()) {
        throw new IllegalStateException(t.getClass().getSimpleName() + " already runs context-parallel; close "
            + "its ContextParallel first");
      }
    }
    int rank = groups.rank();
    int u = config.ulysses();
    int r = config.ring();
    ParallelMesh mesh = new ParallelMesh(config, rank);
    CommGroup cp = ParallelMesh.group(groups, mesh, "cp", mesh.contextRanks());
    CommGroup host = cp == groups.world() ? groups.host()
        : groups.subgroup(mesh.name() + "/cp-host" + mesh.contextRanks().get(0), mesh.contextRanks());
    CommGroup ulysses = u == 1 ? null : u == cp.size() ? cp : ParallelMesh.group(groups, mesh, "ulysses", mesh.ulyssesRanks());
    CommGroup ring = r == 1 ? null : r == cp.size() ? cp : ParallelMesh.group(groups, mesh, "ring", mesh.ringRanks());
    SequenceSplitter splitter = new SequenceSplitter(cp, host, config.ulyssesAnything());
    Kernels kernels = Kernels.forComputePool();
    List<Installed> installed = new ArrayList<>();
    WireBytes wireBytes = new WireBytes();
    for (Transformer t : models) {
      DiffusersTransformer m = (DiffusersTransformer) t;
      AttentionBackend own = m.attention();
      AttentionBackend backend = own;
      if (r > 1) {
        backend = new RingAttention(ring, splitter, backend, config.ringRotateMethod(), config.ringConvertToFp32());
      }
      if (u > 1) {
        backend = new UlyssesAttention(ulysses, splitter, backend, kernels, config.ulyssesFloat8(),
            config.ulyssesAsync(), wireBytes);
      }
      installed.add(new Installed(m, own, m.sequenceParallel()));
      m.setAttention(backend);
      m.setSequenceParallel(splitter);
      LOG.info("rank {}: {} runs context-parallel ({}) with {}", rank, m.className(), config.strify(), backend);
    }
    return new ContextParallel(config, groups, cp, installed, wireBytes);
  }

  /** Installs context parallelism on one model. */
  public static ContextParallel apply(DiffusersTransformer model, ParallelismConfig config, ProcessGroups groups) {
    return apply(List.of(model), config, groups);
  }

  public ParallelismConfig config() {
    return config;
  }

  public ProcessGroups groups() {
    return groups;
  }

  /** The ranks that share one sequence: cache decisions are all-reduced over them. */
  public CommGroup contextGroup() {
    return contextGroup;
  }

  /** Bytes this rank sent in Ulysses exchanges, per tensor, since this was applied. */
  public WireBytes wireBytes() {
    return wireBytes;
  }

  /** The models this runs on. */
  public List<DiffusersTransformer> models() {
    return installed.stream().map(Installed::model).toList();
  }

  /** Restores each model's own attention and sequence (one rank again). Idempotent. */
  @Override
  public synchronized void close() {
    if (closed) {
      return;
    }
    closed = true;
    for (Installed i : installed) {
      i.model().setAttention(i.attention());
      i.model().setSequenceParallel(i.previous());
    }
  }

  @Override
  public String toString() {
    return "ContextParallel[" + config.strify() + " on " + groups + "]";
  }
}
