package io.cachedit.models.common;

import java.util.List;

/**
 * A diffusion transformer as the cache engine and adapters see it: its block lists, in
 * declaration order. Model classes implement this; they never depend on the engine.
 */
public interface Transformer {
  /** The block lists, in declaration order (the order of cache-dit's contexts). */
  List<BlockList<?>> blockLists();

  /** The list with this attribute name, or null. */
  default BlockList<?> blockList(String name) {
    for (BlockList<?> list : blockLists()) {
      if (list.name().equals(name)) {
        return list;
      }
    }
    return null;
  }
}
