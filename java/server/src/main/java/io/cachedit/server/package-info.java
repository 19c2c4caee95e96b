/** {@code cachedit serve}: the HTTP server around a pool of model instances (docs/serving.md). */
package io.cachedit.server;
