package io.cachedit.server;

import java.time.OffsetDateTime;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * One queued request: its state, its progress and, when done, its result. Thread-safe: the worker
 * thread moves it forward, HTTP threads read it and may cancel it.
 */
final class Job {
  /** Where a job is. */
  enum State {
    QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED;

    String json() {
      return name().toLowerCase(java.util.Locale.ROOT);
    }

    boolean done() {
      return this == SUCCEEDED || this == FAILED || this == CANCELLED;
    }
  }

  /**
   * A finished job's images and what the generation did.
   *
   * @param output the images and cache statistics of its generation
   * @param start when its generation started
   * @param end when it ended
   * @param batchRequests how many requests shared the generation
   */
  record Result(ModelInstance.Output output, OffsetDateTime start, OffsetDateTime end, int batchRequests) {}

  private final String id;
  private final ImageRequest request;
  private final String route;
  private final long createdNanos = System.nanoTime();
  private final CompletableFuture<Result> future = new CompletableFuture<>();
  private State state = State.QUEUED;
  private int step;
  private String error;
  private long finishedNanos;

  Job(String id, ImageRequest request, String route) {
    this.id = id;
    this.request = request;
    this.route = route;
  }

  String id() {
    return id;
  }

  ImageRequest request() {
    return request;
  }

  /** The route that created it (for metrics). */
  String route() {
    return route;
  }

  long createdNanos() {
    return createdNanos;
  }

  CompletableFuture<Result> future() {
    return future;
  }

  synchronized State state() {
    return state;
  }

  /** Steps done so far. */
  synchronized int step() {
    return step;
  }

  synchronized String error() {
    return error;
  }

  synchronized long finishedNanos() {
    return finishedNanos;
  }

  /** QUEUED -> RUNNING; false when it was cancelled first. */
  synchronized boolean start() {
    if (state != State.QUEUED) {
      return false;
    }
    state = State.RUNNING;
    return true;
  }

  synchronized void progress(int stepsDone) {
    step = stepsDone;
  }

  synchronized boolean cancelled() {
    return state == State.CANCELLED;
  }

  /** Cancels a queued or running job; false when it had already finished. */
  boolean cancel(String why) {
    synchronized (this) {
      if (state.done()) {
        return false;
      }
      state = State.CANCELLED;
      error = why;
      finishedNanos = System.nanoTime();
    }
    future.completeExceptionally(new HttpError(409, null, why));
    return true;
  }

  void succeed(Result result) {
    synchronized (this) {
      if (state.done()) {
        return;  // cancelled while its batch ran on: the result is dropped
      }
      state = State.SUCCEEDED;
      step = request.steps();
      finishedNanos = System.nanoTime();
    }
    future.complete(result);
  }

  void fail(RuntimeException e) {
    synchronized (this) {
      if (state.done()) {
        return;
      }
      state = State.FAILED;
      error = e.getMessage();
      finishedNanos = System.nanoTime();
    }
    future.completeExceptionally(e);
  }

  /** The result of a succeeded job, or null. */
  Result result() {
    return future.isDone() && !future.isCompletedExceptionally() ? future.join() : null;
  }

  static List<ImageRequest> requests(List<Job> jobs) {
    return jobs.stream().map(Job::request).toList();
  }
}
