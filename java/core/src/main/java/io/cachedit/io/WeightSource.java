package io.cachedit.io;

import java.util.Set;
import org.bytedeco.pytorch.Tensor;

/** Named tensors to build a model from: one or several safetensors files, or generated weights. */
public interface WeightSource extends AutoCloseable {
  /** Every tensor name available. */
  Set<String> keys();

  /** Shape of a tensor, or null if absent. */
  long[] shape(String name);

  /** The tensor (CPU, its stored dtype), owned by the caller's scope. */
  Tensor load(String name);

  /** The files the tensors are read (memory-mapped) from; empty for generated weights. */
  default java.util.List<java.nio.file.Path> files() {
    return java.util.List.of();
  }

  /** Where a tensor comes from, for error messages (a file name). */
  String origin(String name);

  @Override
  void close();
}
