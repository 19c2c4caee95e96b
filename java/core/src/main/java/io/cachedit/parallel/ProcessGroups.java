package io.cachedit.parallel;

import io.cachedit.error.DistributedException;
import io.cachedit.kernels.NativeRuntime;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.bytedeco.javacpp.chrono.Milliseconds;
import org.bytedeco.pytorch.Backend;
import org.bytedeco.pytorch.GlooDeviceVector;
import org.bytedeco.pytorch.PrefixStore;
import org.bytedeco.pytorch.ProcessGroupGloo;
import org.bytedeco.pytorch.TCPStore;
import org.bytedeco.pytorch.TCPStoreOptions;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * This process's membership of a group of processes, on torch.distributed's c10d: a TCPStore
 * rendezvous hosted by rank 0, a Gloo group over all ranks for CPU tensors (NCCL for CUDA tensors,
 * created on first use), a second Gloo group for small host-side exchanges (sequence lengths), and
 * subgroups for meshes. Every rank creates it at the same point; it returns once all ranks joined.
 *
 * <p>A heartbeat thread bumps this rank's counter in the store; when a collective fails, the ranks
 * whose counters stopped are named in the error. Operations time out after the configured timeout
 * (the Gloo timeout), so a lost rank makes the others fail, never hang. Close it to leave the group.
 */
public final class ProcessGroups implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(ProcessGroups.class);
  /** Default collective timeout. */
  public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(120);
  private static final long HEARTBEAT_MS = 250;
  private static final Duration PROBE_TIMEOUT = Duration.ofSeconds(3);

  private final DistributedEnvironment env;
  private final Duration timeout;
  private final TCPStore store;  // the server on rank 0, a client elsewhere
  private final CommGroup world;
  private final CommGroup host;
  private final Map<String, CommGroup> subgroups = new ConcurrentHashMap<>();
  private final Thread heartbeat;
  private volatile boolean closed;

  private ProcessGroups(DistributedEnvironment env, Duration timeout) {
    this.env = env;
    this.timeout = timeout;
    NativeRuntime.initialize();
    long t0 = System.nanoTime();
    try {
      this.store = owned(store(env.rank() == 0));
      this.world = new CommGroup(this, "world", range(env.worldSize()), env.rank());
      this.host = new CommGroup(this, "host", range(env.worldSize()), env.rank());
    } catch (RuntimeException e) {
      throw new DistributedException(env.rank(), "rank " + env.rank() + " of " + env.worldSize()
          + " could not join the group at " + env.masterAddr() + ":" + env.masterPort() + " within " + timeout.toSeconds()
          + " s: " + CommGroup.oneLine(e) + " (is every rank started with the same MASTER_ADDR, MASTER_PORT and "
          + "WORLD_SIZE?)", e);
    }
    this.heartbeat = new Thread(this::beat, "cachedit-heartbeat-" + env.rank());
    heartbeat.setDaemon(true);
    heartbeat.start();
    LOG.info("rank {} of {} joined the group at {}:{} in {} ms", env.rank(), env.worldSize(), env.masterAddr(),
        env.masterPort(), (System.nanoTime() - t0) / 1_000_000);
  }

  /** Environment variable with the collective timeout in seconds (default 120). */
  public static final String TIMEOUT_VARIABLE = "CACHEDIT_COLLECTIVE_TIMEOUT";

  /**
   * Joins the group this process's environment describes (torchrun's variables), with the timeout of
   * {@value #TIMEOUT_VARIABLE} or the default.
   */
  public static ProcessGroups fromEnvironment() {
    return create(DistributedEnvironment.fromEnvironment(), timeoutFromEnvironment());
  }

  /** The collective timeout {@value #TIMEOUT_VARIABLE} asks for (seconds), or {@link #DEFAULT_TIMEOUT}. */
  public static Duration timeoutFromEnvironment() {
    String v = System.getenv(TIMEOUT_VARIABLE);
    if (v == null || v.isBlank()) {
      return DEFAULT_TIMEOUT;
    }
    try {
      double seconds = Double.parseDouble(v.trim());
      if (!(seconds > 0) || Double.isInfinite(seconds)) {
        throw new NumberFormatException();
      }
      return Duration.ofMillis((long) Math.ceil(seconds * 1000));
    } catch (NumberFormatException e) {
      throw new io.cachedit.error.ConfigException(TIMEOUT_VARIABLE, v, "must be a positive number of seconds");
    }
  }

  /** Joins the group {@code env} describes; collectives fail after {@code timeout}. */
  public static ProcessGroups create(DistributedEnvironment env, Duration timeout) {
    if (timeout == null || timeout.isNegative() || timeout.isZero()) {
      throw new IllegalArgumentException("timeout must be positive, got " + timeout);
    }
    return new ProcessGroups(env, timeout);
  }

  public DistributedEnvironment environment() {
    return env;
  }

  public int rank() {
    return env.rank();
  }

  public int worldSize() {
    return env.worldSize();
  }

  public Duration timeout() {
    return timeout;
  }

  /** All ranks; tensors on the CPU go through Gloo, CUDA tensors through NCCL. */
  public CommGroup world() {
    ensureOpen();
    return world;
  }

  /** All ranks, a separate Gloo group for small host-side exchanges (so they never queue behind data). */
  public CommGroup host() {
    ensureOpen();
    return host;
  }

  /**
   * The subgroup {@code name} of {@code ranks} (ascending global ranks, this rank among them). Every
   * member must ask for it, with the same name and ranks; it is created once and then reused.
   */
  public CommGroup subgroup(String name, List<Integer> ranks) {
    ensureOpen();
    if (!ranks.contains(env.rank())) {
      throw new IllegalArgumentException("rank " + env.rank() + " is not in subgroup " + name + " " + ranks);
    }
    CommGroup g = subgroups.computeIfAbsent(name, n -> new CommGroup(this, n, List.copyOf(ranks), env.rank()));
    if (!g.ranks().equals(ranks)) {
      throw new IllegalArgumentException("subgroup " + name + " exists with ranks " + g.ranks() + ", not " + ranks);
    }
    return g;
  }

  /** A Gloo backend over {@code ranks}, rendezvous under the store prefix {@code name}. */
  Backend gloo(String name, int groupRank, int groupSize, List<org.bytedeco.javacpp.Pointer> stores) {
    ProcessGroupGloo.Options opts = ProcessGroupGloo.Options.create(new Milliseconds(timeout.toMillis()));
    opts.devices(new GlooDeviceVector(device()));
    opts.threads(2);
    // a store object is handed to c10d once: each group gets its own client connection. The stores'
    // handles are owned with the backend and released after it, whatever scope this runs in.
    TCPStore client = owned(store(false));
    PrefixStore prefixed = owned(new PrefixStore("cachedit/" + name, client));
    stores.add(prefixed);
    stores.add(client);
    return owned(new ProcessGroupGloo(prefixed, groupRank, groupSize, opts));
  }

  /**
   * {@code p} kept alive until released by its owner here: communicators are created lazily, possibly
   * inside a caller's {@link org.bytedeco.javacpp.PointerScope}, and must outlive it.
   */
  static <P extends org.bytedeco.javacpp.Pointer> P owned(P p) {
    p.retainReference();
    return p;
  }

  /** A NCCL backend over {@code ranks} (CUDA builds of the presets only). */
  Backend nccl(String name, int groupRank, int groupSize) {
    try {
      return owned(new org.bytedeco.pytorch.nccl.ProcessGroupNCCL(new PrefixStore("cachedit/" + name + "/nccl",
          store(false)), groupRank, groupSize));
    } catch (UnsatisfiedLinkError | RuntimeException e) {
      throw new DistributedException(env.rank(), "CUDA tensors need NCCL, which this libtorch build does not provide ("
          + CommGroup.oneLine(e) + "); use the presets' -gpu natives (-Djavacpp.platform.extension=-gpu)", e);
    }
  }

  private org.bytedeco.pytorch.gloo.Device device() {
    String iface = System.getenv("GLOO_SOCKET_IFNAME");
    if (iface != null && !iface.isBlank()) {
      return ProcessGroupGloo.createDeviceForInterface(iface.trim());
    }
    String addr = env.masterAddr();
    if (addr.equals("127.0.0.1") || addr.equals("localhost") || addr.equals("::1")) {
      return ProcessGroupGloo.createDeviceForHostname("127.0.0.1");  // one machine: no interface guessing
    }
    return ProcessGroupGloo.createDefaultDevice();
  }

  private TCPStore store(boolean server) {
    return store(server, timeout);
  }

  private TCPStore store(boolean server, Duration storeTimeout) {
    TCPStoreOptions o = new TCPStoreOptions();
    o.port((short) env.masterPort());  // uint16_t in C++: the cast keeps ports above 32767
    o.isServer(server);
    o.waitWorkers(false);
    o.timeout(new Milliseconds(storeTimeout.toMillis()));
    o.useLibUV(false);
    return new TCPStore(env.masterAddr(), o);
  }

  /** Heartbeats and the lost-rank probe give up quickly: a store that does not answer is itself the news. */
  private Duration probeTimeout() {
    return timeout.compareTo(PROBE_TIMEOUT) < 0 ? timeout : PROBE_TIMEOUT;
  }

  private static List<Integer> range(int n) {
    List<Integer> r = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      r.add(i);
    }
    return r;
  }

  private String heartbeatKey(int rank) {
    return "cachedit/heartbeat/" + rank;
  }

  private void beat() {
    TCPStore client = null;
    try {
      client = store(false, probeTimeout());
      while (!closed) {
        client.add(heartbeatKey(env.rank()), 1);
        Thread.sleep(HEARTBEAT_MS);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (RuntimeException e) {
      if (!closed) {
        LOG.debug("heartbeat of rank {} stopped: {}", env.rank(), CommGroup.oneLine(e));
      }
    } finally {
      if (client != null) {
        client.close();
      }
    }
  }

  /**
   * The ranks of {@code candidates} whose heartbeat stopped: counters read twice, a few beats apart.
   * If the store itself is gone, rank 0 (its host) is the lost one.
   */
  List<Integer> lostRanks(List<Integer> candidates) {
    List<Integer> lost = new ArrayList<>();
    TCPStore probe = null;
    try {
      probe = store(false, probeTimeout());
      long[] before = new long[candidates.size()];
      for (int i = 0; i < before.length; i++) {
        before[i] = probe.add(heartbeatKey(candidates.get(i)), 0);
      }
      Thread.sleep(4 * HEARTBEAT_MS);
      for (int i = 0; i < before.length; i++) {
        int r = candidates.get(i);
        if (r != env.rank() && probe.add(heartbeatKey(r), 0) == before[i]) {
          lost.add(r);
        }
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (RuntimeException e) {
      if (env.rank() != 0) {
        lost.add(0);  // the store lives in rank 0's process
      }
    } finally {
      if (probe != null) {
        probe.close();
      }
    }
    return lost;
  }

  private void ensureOpen() {
    if (closed) {
      throw new IllegalStateException("the process groups of rank " + env.rank() + " are closed");
    }
  }

  /** Leaves the group: stops the heartbeat and closes the communicators. Idempotent. */
  @Override
  public synchronized void close() {
    if (closed) {
      return;
    }
    closed = true;
    heartbeat.interrupt();
    try {
      // no native call of this group may still run when the process exits
      heartbeat.join(probeTimeout().toMillis() + 1000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    for (CommGroup g : subgroups.values()) {
      g.close();
    }
    host.close();
    world.close();
    store.releaseReference();
  }

  @Override
  public String toString() {
    return "ProcessGroups[rank " + env.rank() + " of " + env.worldSize() + " at " + env.masterAddr() + ":"
        + env.masterPort() + "]";
  }
}
