package io.cachedit.parallel;

import io.cachedit.error.ConfigException;
import java.util.Map;

/**
 * Where this process sits in a group, from the variables torchrun, Slurm scripts and Kubernetes set:
 * {@code RANK}, {@code WORLD_SIZE}, {@code LOCAL_RANK} (defaults to {@code RANK}), {@code MASTER_ADDR}
 * (defaults to 127.0.0.1) and {@code MASTER_PORT} (defaults to 29500). Rank 0 hosts the rendezvous
 * store on {@code MASTER_ADDR:MASTER_PORT}; the others connect to it.
 *
 * @param rank this process's rank, 0 .. worldSize-1
 * @param worldSize number of processes
 * @param localRank this process's index on its machine (device index)
 * @param masterAddr host of rank 0
 * @param masterPort port of the rendezvous store
 */
public record DistributedEnvironment(int rank, int worldSize, int localRank, String masterAddr, int masterPort) {
  public static final int DEFAULT_PORT = 29500;

  public DistributedEnvironment {
    if (worldSize < 1) {
      throw new ConfigException("WORLD_SIZE", worldSize, "must be >= 1");
    }
    if (rank < 0 || rank >= worldSize) {
      throw new ConfigException("RANK", rank, "must be in 0.." + (worldSize - 1) + " (WORLD_SIZE " + worldSize + ")");
    }
    if (localRank < 0) {
      throw new ConfigException("LOCAL_RANK", localRank, "must be >= 0");
    }
    if (masterAddr == null || masterAddr.isBlank()) {
      throw new ConfigException("MASTER_ADDR", masterAddr, "must name the host of rank 0");
    }
    if (masterPort < 1 || masterPort > 65535) {
      throw new ConfigException("MASTER_PORT", masterPort, "must be a TCP port, 1..65535");
    }
  }

  /** One process, no group. */
  public static DistributedEnvironment single() {
    return new DistributedEnvironment(0, 1, 0, "127.0.0.1", DEFAULT_PORT);
  }

  /** This process's environment; {@link #single()} when {@code WORLD_SIZE} is not set. */
  public static DistributedEnvironment fromEnvironment() {
    return from(System.getenv());
  }

  /** The environment described by {@code env}; errors name the variable. */
  public static DistributedEnvironment from(Map<String, String> env) {
    if (env.get("WORLD_SIZE") == null) {
      return single();
    }
    int world = integer(env, "WORLD_SIZE", -1);
    int rank = integer(env, "RANK", -1);
    if (env.get("RANK") == null) {
      throw new ConfigException("RANK", null, "must be set with WORLD_SIZE (torchrun and cachedit launch set both)");
    }
    return new DistributedEnvironment(rank, world, integer(env, "LOCAL_RANK", rank),
        env.getOrDefault("MASTER_ADDR", "127.0.0.1"), integer(env, "MASTER_PORT", DEFAULT_PORT));
  }

  private static int integer(Map<String, String> env, String key, int defaultValue) {
    String v = env.get(key);
    if (v == null) {
      return defaultValue;
    }
    try {
      return Integer.parseInt(v.trim());
    } catch (NumberFormatException e) {
      throw new ConfigException(key, v, "must be a whole number");
    }
  }

  public boolean distributed() {
    return worldSize > 1;
  }
}
