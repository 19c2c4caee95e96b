/**
 * cachedit's exceptions: {@link io.cachedit.error.CacheDitException} and one subclass per kind of
 * problem (configuration, weights, unsupported model, native kernels, distributed groups). Depends on
 * nothing else in cachedit, so every package may throw them.
 */
package io.cachedit.error;
