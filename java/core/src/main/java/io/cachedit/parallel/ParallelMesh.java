package io.cachedit.parallel;

import java.util.ArrayList;
import java.util.List;

/**
 * Where each rank sits when several kinds of parallelism combine (docs/parallelism.md, "Meshes"): the
 * world is a mesh of {@code cfg x ring x ulysses x tp} ranks, tensor parallelism innermost, so a
 * tensor-parallel group (the most talkative: two all-reduces per block) is always consecutive ranks,
 * one machine first. Rank {@code ((c * ring + r) * ulysses + u) * tp + t} computes CFG branch
 * {@code c}, sequence part {@code r * ulysses + u} and weight shard {@code t}.
 *
 * @param config the sizes
 * @param rank this rank's global rank
 */
public record ParallelMesh(ParallelismConfig config, int rank) {
  /** This rank's position along each axis. */
  public record Coordinates(int cfg, int ring, int ulysses, int tp) {}

  public ParallelMesh {
    if (rank < 0 || rank >= config.worldSize()) {
      throw new IllegalArgumentException("rank " + rank + " is outside the mesh of " + config.worldSize() + " ranks");
    }
  }

  public Coordinates coordinates() {
    int t = config.tp();
    int u = config.ulysses();
    int r = config.ring();
    return new Coordinates(rank / (t * u * r), rank / (t * u) % r, rank / t % u, rank % t);
  }

  private int rankAt(int c, int r, int u, int t) {
    return ((c * config.ring() + r) * config.ulysses() + u) * config.tp() + t;
  }

  /** The ranks holding the other weight shards of this rank's layers. */
  public List<Integer> tensorRanks() {
    Coordinates p = coordinates();
    List<Integer> l = new ArrayList<>();
    for (int t = 0; t < config.tp(); t++) {
      l.add(rankAt(p.cfg(), p.ring(), p.ulysses(), t));
    }
    return l;
  }

  /** The ranks this rank exchanges attention heads with (its Ulysses group). */
  public List<Integer> ulyssesRanks() {
    Coordinates p = coordinates();
    List<Integer> l = new ArrayList<>();
    for (int u = 0; u < config.ulysses(); u++) {
      l.add(rankAt(p.cfg(), p.ring(), u, p.tp()));
    }
    return l;
  }

  /** The ranks keys and values rotate around (its ring). */
  public List<Integer> ringRanks() {
    Coordinates p = coordinates();
    List<Integer> l = new ArrayList<>();
    for (int r = 0; r < config.ring(); r++) {
      l.add(rankAt(p.cfg(), r, p.ulysses(), p.tp()));
    }
    return l;
  }

  /** The ranks sharing this rank's sequence, in sequence order (its context-parallel group). */
  public List<Integer> contextRanks() {
    Coordinates p = coordinates();
    List<Integer> l = new ArrayList<>();
    for (int r = 0; r < config.ring(); r++) {
      for (int u = 0; u < config.ulysses(); u++) {
        l.add(rankAt(p.cfg(), r, u, p.tp()));
      }
    }
    return l;
  }

  /** The ranks computing the other CFG branch of this rank's work. */
  public List<Integer> cfgRanks() {
    Coordinates p = coordinates();
    List<Integer> l = new ArrayList<>();
    for (int c = 0; c < config.cfg(); c++) {
      l.add(rankAt(c, p.ring(), p.ulysses(), p.tp()));
    }
    return l;
  }

  /** Names subgroups by the mesh they belong to ({@code cfg2.ring1.ulysses2.tp2}). */
  public String name() {
    return "cfg" + config.cfg() + ".ring" + config.ring() + ".ulysses" + config.ulysses() + ".tp" + config.tp();
  }

  /** The group over {@code ranks}: the world itself when they are all of it, else a named subgroup. */
  static CommGroup group(ProcessGroups groups, ParallelMesh mesh, String axis, List<Integer> ranks) {
    if (ranks.size() == groups.worldSize()) {
      return groups.world();
    }
    return groups.subgroup(mesh.name() + "/" + axis + ranks.get(0), ranks);
  }
}
