package io.cachedit.pipeline;

import io.cachedit.io.JsonConfig;
import io.cachedit.io.WeightScope;
import io.cachedit.models.common.DiffusersModel;

/** Builds one model class from its config.json and its weights. */
@FunctionalInterface
public interface ModelFactory {
  DiffusersModel create(JsonConfig config, WeightScope weights);
}
