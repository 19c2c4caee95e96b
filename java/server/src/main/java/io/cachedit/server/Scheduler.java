package io.cachedit.server;

import java.time.Duration;
import java.time.OffsetDateTime;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.CancellationException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.IntConsumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The bounded queue in front of the model instances and the worker threads that drain it, one per
 * instance. A worker takes the oldest request, adds the queued requests that batch with it (same
 * shape and schedule, a cache setting whose decisions cannot depend on the batch) up to the batch
 * limit, waiting at most the batch window for more, and runs them as one generation on its own
 * instance.
 */
final class Scheduler implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(Scheduler.class);

  private final ReentrantLock lock = new ReentrantLock();
  private final Condition changed = lock.newCondition();
  private final ArrayDeque<Job> queue = new ArrayDeque<>();
  private final int maxQueue;
  private final int maxBatchImages;
  private final long batchWindowNanos;
  private final ServerMetrics metrics;
  private final List<Thread> workers = new ArrayList<>();
  private final List<ModelInstance> instances;
  private int running;
  private boolean accepting = true;
  private volatile boolean abort;
  private double meanSeconds = 1.0;  // mean generation time (EWMA), for Retry-After

  Scheduler(List<ModelInstance> instances, int maxQueue, int maxBatchImages, Duration batchWindow,
      ServerMetrics metrics) {
    this.instances = List.copyOf(instances);
    this.maxQueue = maxQueue;
    this.maxBatchImages = maxBatchImages;
    this.batchWindowNanos = batchWindow.toNanos();
    this.metrics = metrics;
    for (int i = 0; i < this.instances.size(); i++) {
      ModelInstance instance = this.instances.get(i);
      Thread t = new Thread(() -> work(instance), "cachedit-worker-" + i);
      t.setDaemon(true);
      workers.add(t);
      t.start();
    }
  }

  /** Queues {@code job}, or refuses it: 429 with a retry estimate when the queue is full, 503 when shutting down. */
  void submit(Job job) {
    lock.lock();
    try {
      if (!accepting) {
        throw new HttpError(503, null, "the server is shutting down", 1);
      }
      if (queue.size() >= maxQueue) {
        long retry = Math.max(1, (long) Math.ceil(meanSeconds * (1 + (double) queue.size() / instances.size())));
        throw new HttpError(429, null, "the queue is full (" + maxQueue + " requests waiting, --max-queue); retry"
            + " after " + retry + " s", retry);
      }
      queue.addLast(job);
      metrics.queueDepth(queue.size());
      changed.signalAll();
    } finally {
      lock.unlock();
    }
  }

  /** Cancels a queued job (removed at once) or a running one (its generation stops at the next step). */
  boolean cancel(Job job, String why) {
    lock.lock();
    try {
      if (queue.remove(job)) {
        metrics.queueDepth(queue.size());
      }
    } finally {
      lock.unlock();
    }
    return job.cancel(why);
  }

  int queued() {
    lock.lock();
    try {
      return queue.size();
    } finally {
      lock.unlock();
    }
  }

  int running() {
    lock.lock();
    try {
      return running;
    } finally {
      lock.unlock();
    }
  }

  private void work(ModelInstance instance) {
    while (true) {
      List<Job> batch;
      try {
        batch = take();
      } catch (InterruptedException e) {
        return;
      }
      if (batch == null) {
        return;
      }
      try {
        run(instance, batch);
      } finally {
        lock.lock();
        try {
          running -= batch.size();
          changed.signalAll();
        } finally {
          lock.unlock();
        }
      }
    }
  }

  /** The next batch, or null once the queue is closed and empty. */
  private List<Job> take() throws InterruptedException {
    lock.lock();
    try {
      while (queue.isEmpty()) {
        if (!accepting) {
          return null;
        }
        changed.await();
      }
      Job head = queue.pollFirst();
      List<Job> batch = new ArrayList<>(List.of(head));
      int images = head.request().numImages();
      if (head.request().cache().batchable()) {
        long deadline = System.nanoTime() + batchWindowNanos;
        while (true) {
          for (Iterator<Job> it = queue.iterator(); it.hasNext() && images < maxBatchImages; ) {
            Job j = it.next();
            if (head.request().batchesWith(j.request()) && images + j.request().numImages() <= maxBatchImages) {
              it.remove();
              batch.add(j);
              images += j.request().numImages();
            }
          }
          long left = deadline - System.nanoTime();
          if (images >= maxBatchImages || left <= 0 || !accepting) {
            break;
          }
          changed.awaitNanos(left);
        }
      }
      running += batch.size();
      metrics.queueDepth(queue.size());
      return batch;
    } finally {
      lock.unlock();
    }
  }

  private void run(ModelInstance instance, List<Job> batch) {
    List<Job> live = new ArrayList<>();
    for (Job j : batch) {
      if (j.start()) {
        live.add(j);
      }
    }
    if (live.isEmpty()) {
      return;
    }
    IntConsumer onStep = i -> {
      boolean anyLive = false;
      for (Job j : live) {
        j.progress(i + 1);
        anyLive |= !j.cancelled();
      }
      if (!anyLive || abort) {  // stop at this step: the loop frees what the generation held
        throw new CancellationException(abort ? "the server stopped" : "cancelled");
      }
    };
    OffsetDateTime start = OffsetDateTime.now();
    try {
      List<ModelInstance.Output> outputs = instance.generate(Job.requests(live), onStep);
      OffsetDateTime end = OffsetDateTime.now();
      double seconds = outputs.get(0).seconds();
      lock.lock();
      try {
        meanSeconds = 0.8 * meanSeconds + 0.2 * seconds;
      } finally {
        lock.unlock();
      }
      metrics.generation(live.size(), outputs.get(0).batchImages(), seconds, live.get(0).request().steps(),
          outputs.get(0).stats());
      for (int k = 0; k < live.size(); k++) {
        live.get(k).succeed(new Job.Result(outputs.get(k), start, end, live.size()));
      }
    } catch (CancellationException e) {
      for (Job j : live) {
        j.cancel(e.getMessage());
      }
      metrics.cancelledGeneration();
    } catch (RuntimeException e) {
      LOG.error("generation of {} failed", live.get(0).id(), e);
      for (Job j : live) {
        j.fail(e);
      }
    }
  }

  /**
   * Stops accepting, cancels what is queued, lets running generations finish for up to {@code grace},
   * then stops them at their next step; returns once every worker has ended.
   */
  void shutdown(Duration grace) {
    List<Job> dropped;
    lock.lock();
    try {
      accepting = false;
      dropped = new ArrayList<>(queue);
      queue.clear();
      metrics.queueDepth(0);
      changed.signalAll();
    } finally {
      lock.unlock();
    }
    for (Job j : dropped) {
      j.cancel("the server is shutting down");
    }
    long deadline = System.nanoTime() + grace.toNanos();
    for (Thread t : workers) {
      long left = deadline - System.nanoTime();
      try {
        t.join(Math.max(1, TimeUnit.NANOSECONDS.toMillis(left)));
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        break;
      }
    }
    abort = true;
    for (Thread t : workers) {
      try {
        t.join();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return;
      }
    }
  }

  @Override
  public void close() {
    shutdown(Duration.ZERO);
    for (ModelInstance m : instances) {
      m.close();
    }
  }
}
