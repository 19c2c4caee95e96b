package io.cachedit.models.common;

import java.util.List;

/**
 * A pipeline that owns one or more transformers (Wan 2.2 MoE has two) and calls them with a
 * {@link StepContext} per call; a new {@link StepContext#generation()} starts fresh caches.
 */
public interface DiffusionPipeline {
  List<? extends Transformer> transformers();
}
