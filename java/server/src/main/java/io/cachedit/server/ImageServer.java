package io.cachedit.server;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.cachedit.cache.CacheStats;
import io.cachedit.image.Images;
import io.javalin.Javalin;
import io.javalin.http.Context;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code cachedit serve}: the HTTP server (Javalin on Jetty) in front of a {@link Scheduler}. It binds
 * at once and answers {@code /health} with 503 until the model instances are loaded and warmed up,
 * then 200. Routes, fields, limits and metrics: docs/serving.md.
 *
 * <pre>{@code
 * try (ImageServer server = ImageServer.start(ServerOptions.defaults(Path.of("models/fashion-flux")))) {
 *   server.awaitReady(Duration.ofMinutes(2));
 *   ...  // POST http://127.0.0.1:8000/generate {"prompt": "sneaker"}
 * }
 * }</pre>
 */
public final class ImageServer implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(ImageServer.class);
  private static final Pattern FILE_NAME = Pattern.compile("[0-9a-f-]{36}-\\d{1,2}\\.png");
  private static final String OPENAI = "/v1/images/generations";

  private final ServerOptions options;
  private final String modelId;
  private final ObjectMapper json = new ObjectMapper()
      .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
      .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);
  private final ServerMetrics metrics = new ServerMetrics();
  private final Map<String, Job> jobs = new LinkedHashMap<>();  // async jobs, oldest first (guarded by itself)
  private final Javalin app;
  private final Thread loader;
  private final long created = System.currentTimeMillis() / 1000;
  private volatile Scheduler scheduler;
  private volatile RequestParser parser;
  private volatile String loadError;
  private volatile boolean stopping;

  private ImageServer(ServerOptions options) {
    this.options = options;
    Path dir = options.modelDir().toAbsolutePath().normalize();
    this.modelId = dir.getFileName() == null ? "model" : dir.getFileName().toString();
    this.app = Javalin.create(config -> {
      config.showJavalinBanner = false;
      config.http.maxRequestSize = options.maxBodyBytes();
      config.router.ignoreTrailingSlashes = true;
    });
    routes();
    app.start(options.host(), options.port());
    this.loader = new Thread(this::load, "cachedit-loader");
    loader.setDaemon(true);
    loader.start();
  }

  /** Binds the port, then loads the model in the background ({@code /health} says when it is ready). */
  public static ImageServer start(ServerOptions options) {
    try {
      Files.createDirectories(options.outputDir());
    } catch (IOException e) {
      throw io.cachedit.error.ConfigException.forField("--output-dir", "cannot create --output-dir "
          + options.outputDir() + ": " + e.getMessage());
    }
    return new ImageServer(options);
  }

  /** The bound port (useful with port 0). */
  public int port() {
    return app.port();
  }

  /** {@code http://host:port}. */
  public URI uri() {
    return URI.create("http://" + options.host() + ":" + port());
  }

  public boolean ready() {
    return scheduler != null;
  }

  /** Waits until the model is loaded; throws if loading failed or took longer than {@code timeout}. */
  public void awaitReady(Duration timeout) throws InterruptedException {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (!ready()) {
      if (loadError != null) {
        throw new IllegalStateException("the model did not load: " + loadError);
      }
      if (System.nanoTime() > deadline) {
        throw new IllegalStateException("the model did not load within " + timeout);
      }
      Thread.sleep(20);
    }
  }

  private void load() {
    List<ModelInstance> instances = new ArrayList<>();
    try {
      for (int i = 0; i < options.workers(); i++) {
        ModelInstance m = ModelInstance.load(options.modelDir());
        instances.add(m);
      }
      ModelLimits limits = instances.get(0).limits();
      RequestParser p = new RequestParser(limits, options.defaultCache(), modelId);
      for (ModelInstance m : instances) {  // JIT, allocator and thread pools settle before the first request
        ImageRequest warm = new ImageRequest(limits.prompts().get(0), "", limits.defaultSide(), limits.defaultSide(),
            2, RequestParser.DEFAULT_GUIDANCE, 0, 1, p.defaultCache(), false, false, ImageRequest.Output.BASE64, "");
        m.generate(List.of(warm), null);
      }
      parser = p;
      Scheduler s = new Scheduler(instances, options.maxQueue(), options.maxBatch(), options.batchWindow(), metrics);
      metrics.watchRunning(s::running);
      scheduler = s;
      LOG.info("model {} loaded: {} worker(s)", options.modelDir(), instances.size());
    } catch (RuntimeException e) {
      loadError = e.getMessage();
      LOG.error("loading {} failed: {}", options.modelDir(), e.getMessage());
      instances.forEach(ModelInstance::close);
    }
  }

  /** Why the model did not load, or null. */
  public String loadError() {
    return loadError;
  }

  private void routes() {
    app.before(ctx -> ctx.attribute("t0", System.nanoTime()));
    app.after(ctx -> {
      Long t0 = ctx.attribute("t0");
      String route;
      try {
        route = ctx.endpointHandlerPath();
      } catch (RuntimeException e) {
        route = "unmatched";
      }
      if (route == null || route.isEmpty() || route.equals("*")) {
        route = "unmatched";
      }
      metrics.request(route, ctx.statusCode(), t0 == null ? 0 : (System.nanoTime() - t0) / 1e9);
    });
    app.exception(HttpError.class, (e, ctx) -> error(ctx, e));
    app.exception(Exception.class, (e, ctx) -> {
      LOG.error("{} {} failed", ctx.method(), ctx.path(), e);
      error(ctx, new HttpError(500, null, "internal error: " + e));
    });
    app.error(404, ctx -> {
      String type = ctx.res().getContentType();
      if (type == null || !type.startsWith("application/json")) {  // Javalin's own text 404: ours names the routes
        error(ctx, new HttpError(404, null, "no route " + ctx.method() + " " + ctx.path()
            + "; see docs/serving.md for the routes"));
      }
    });

    app.get("/health", ctx -> {
      if (ready()) {
        ctx.result("OK");
      } else {
        ctx.status(503).result(loadError != null ? "Model failed to load: " + loadError : "Model not loaded");
      }
    });
    app.get("/get_model_info", ctx -> {
      ObjectNode o = json.createObjectNode();
      o.put("model_path", options.modelDir().toString());
      o.put("model_id", modelId);
      o.put("device", "cpu");
      o.put("torch_dtype", "float32");
      o.put("enable_cache", options.defaultCache() != null && !options.defaultCache().equals("none"));
      if (options.defaultCache() != null) {
        o.put("default_cache", options.defaultCache());
      }
      o.put("is_loaded", ready());
      o.put("workers", options.workers());
      o.put("max_queue", options.maxQueue());
      o.put("max_batch", options.maxBatch());
      send(ctx, 200, o);
    });
    app.get("/v1/models", ctx -> {
      ObjectNode o = json.createObjectNode();
      o.put("object", "list");
      ObjectNode m = o.putArray("data").addObject();
      m.put("id", modelId);
      m.put("object", "model");
      m.put("created", created);
      m.put("owned_by", "cachedit");
      send(ctx, 200, o);
    });
    app.post("/flush_cache", ctx -> {  // the reference's route: every generation owns a fresh cache context already
      send(ctx, 200, json.createObjectNode().put("message", "Cache flushed successfully"));
    });
    app.get("/metrics", ctx -> ctx.contentType(ServerMetrics.contentType()).result(metrics.scrape()));

    app.post("/generate", ctx -> {
      String accept = ctx.header("Accept");
      boolean png = accept != null && accept.trim().equalsIgnoreCase("image/png");
      Job job = submit(ctx, "/generate", false, r -> {
        if (png && (r.numImages() != 1 || r.output() != ImageRequest.Output.BASE64)) {
          throw HttpError.badField("num_images", "Accept: image/png returns one PNG: use num_images 1 and the default "
              + "output_format, or accept application/json");
        }
      });
      ctx.future(() -> png ? respondPng(ctx, job) : respond(ctx, job, j -> nativeAnswer(j)));
    });
    app.post(OPENAI, ctx -> {
      Job job = submit(ctx, OPENAI, true, r -> { });
      ctx.future(() -> respond(ctx, job, j -> openAiAnswer(j)));
    });
    app.post("/v1/jobs", ctx -> {
      Job job = submit(ctx, "/v1/jobs", false, r -> { });
      synchronized (jobs) {
        jobs.put(job.id(), job);
        trimJobs();
      }
      send(ctx, 202, jobJson(job));
    });
    app.get("/v1/jobs/{id}", ctx -> send(ctx, 200, jobJson(job(ctx.pathParam("id")))));
    app.delete("/v1/jobs/{id}", ctx -> {
      Job job = job(ctx.pathParam("id"));
      Scheduler s = scheduler;
      boolean cancelled = s != null ? s.cancel(job, "cancelled by DELETE /v1/jobs/" + job.id())
          : job.cancel("cancelled");
      if (!cancelled) {
        throw new HttpError(409, null, "job " + job.id() + " has already " + job.state().json()
            + "; only queued or running jobs can be cancelled");
      }
      send(ctx, 200, jobJson(job));
    });
    app.get("/v1/images/files/{name}", ctx -> {
      String name = ctx.pathParam("name");
      Path file = options.outputDir().resolve(name);
      if (!FILE_NAME.matcher(name).matches() || !Files.isRegularFile(file)) {
        throw new HttpError(404, null, "no image " + name);
      }
      ctx.contentType("image/png").result(Files.readAllBytes(file));
    });
  }

  /** Parses, checks ({@code check} may refuse what only this route cannot answer) and queues a request. */
  private Job submit(Context ctx, String route, boolean openAi, java.util.function.Consumer<ImageRequest> check) {
    if (stopping) {
      throw new HttpError(503, null, "the server is shutting down", 1);
    }
    Scheduler s = scheduler;
    RequestParser p = parser;
    if (s == null || p == null) {
      throw new HttpError(503, null, loadError != null ? "Model failed to load: " + loadError : "Model not loaded",
          5);
    }
    JsonNode body = body(ctx);
    ImageRequest request = openAi ? p.parseOpenAi(body) : p.parseGenerate(body);
    check.accept(request);
    Job job = new Job(UUID.randomUUID().toString(), request, route);
    s.submit(job);
    return job;
  }

  /** The body as JSON, refused with 413 past --max-body-bytes (checked as it is read, not only by its header). */
  private JsonNode body(Context ctx) {
    long max = options.maxBodyBytes();
    long declared = ctx.req().getContentLengthLong();
    if (declared > max) {
      throw new HttpError(413, null, "the request body has " + declared + " bytes; the limit is " + max
          + " (--max-body-bytes)");
    }
    byte[] bytes;
    try (InputStream in = ctx.req().getInputStream()) {
      bytes = in.readNBytes((int) Math.min(Integer.MAX_VALUE - 8, max + 1));
    } catch (IOException e) {
      throw new HttpError(400, null, "cannot read the request body: " + e.getMessage());
    }
    if (bytes.length > max) {
      throw new HttpError(413, null, "the request body is over the limit of " + max + " bytes (--max-body-bytes)");
    }
    if (bytes.length == 0) {
      throw new HttpError(400, null, "the request body must be a JSON object");
    }
    try {
      return json.readTree(bytes);
    } catch (JsonProcessingException e) {
      throw new HttpError(400, null, "the request body is not valid JSON (line "
          + (e.getLocation() == null ? "?" : e.getLocation().getLineNr()) + "): " + e.getOriginalMessage());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private CompletableFuture<Void> respond(Context ctx, Job job, java.util.function.Function<Job, ObjectNode> answer) {
    return job.future().handle((result, failure) -> {
      if (failure == null) {
        send(ctx, 200, answer.apply(job));
      } else {
        error(ctx, failureError(failure));
      }
      return null;
    });
  }

  /** What a synchronous client gets for a job that did not succeed (a cancelled one: 503, the server stopped it). */
  private static HttpError failureError(Throwable failure) {
    Throwable t = failure instanceof CompletionException && failure.getCause() != null ? failure.getCause() : failure;
    return t instanceof HttpError h ? (h.status() == 409 ? new HttpError(503, null, h.getMessage(), 1) : h)
        : new HttpError(500, null, "generation failed: " + t.getMessage());
  }

  /** {@code Accept: image/png}: the image itself, its seed in {@code X-Seed}. */
  private CompletableFuture<Void> respondPng(Context ctx, Job job) {
    return job.future().handle((result, failure) -> {
      if (failure == null) {
        ctx.status(200).contentType("image/png").header("X-Seed", Long.toString(job.request().seed()))
            .result(result.output().pngs().get(0));
      } else {
        error(ctx, failureError(failure));
      }
      return null;
    });
  }

  /** The answer of {@code /generate} (and a succeeded job's result). */
  private ObjectNode nativeAnswer(Job job) {
    Job.Result r = job.result();
    ImageRequest req = job.request();
    ObjectNode o = json.createObjectNode();
    ArrayNode images = o.putArray("images");
    for (String s : images(job, req.output())) {
      images.add(s);
    }
    o.put("seed", req.seed());
    if (req.includeStats()) {
      ObjectNode stats = o.putObject("stats");
      ArrayNode list = stats.putArray("cache_stats");
      for (CacheStats s : r.output().stats()) {
        ObjectNode c = list.addObject();
        c.set("cache_options", json.valueToTree(s.cacheOptions()));
        c.set("cached_steps", json.valueToTree(s.cachedSteps()));
        c.put("cache", s.cacheTag() + "_" + s.calibratorTag());
        c.put("blocks_computed", s.blocksComputed());
        c.put("blocks_total", s.blocksTotal());
        if (req.includeTrace()) {
          ArrayNode d = c.putArray("decisions");
          s.decisions().forEach(x -> d.add(json.valueToTree(x.toMap())));
        }
      }
      stats.put("cache", req.cache().key());
      stats.put("batch_requests", r.batchRequests());
      stats.put("batch_images", r.output().batchImages());
    }
    o.put("time_cost", r.output().seconds());
    o.put("inference_start_time", r.start().toString());
    o.put("inference_end_time", r.end().toString());
    return o;
  }

  private ObjectNode openAiAnswer(Job job) {
    ObjectNode o = json.createObjectNode();
    o.put("created", job.result().end().toEpochSecond());
    ArrayNode data = o.putArray("data");
    boolean url = job.request().output() == ImageRequest.Output.URL;
    for (String s : images(job, job.request().output())) {
      data.addObject().put(url ? "url" : "b64_json", s);
    }
    return o;
  }

  /** The job's images as base64, written file paths, or URLs of this server. */
  private List<String> images(Job job, ImageRequest.Output output) {
    List<byte[]> pngs = job.result().output().pngs();
    List<String> out = new ArrayList<>();
    for (int i = 0; i < pngs.size(); i++) {
      switch (output) {
        case BASE64 -> out.add(Base64.getEncoder().encodeToString(pngs.get(i)));
        case PATH -> {
          Path dir = options.outputDir().resolve(job.request().outputDir()).normalize();
          Path file = dir.resolve(job.id() + "-" + i + ".png");
          write(pngs.get(i), dir, file);
          out.add(file.toAbsolutePath().toString());
        }
        case URL -> {
          String name = job.id() + "-" + i + ".png";
          write(pngs.get(i), options.outputDir(), options.outputDir().resolve(name));
          out.add(uri() + "/v1/images/files/" + name);
        }
        default -> throw new IllegalStateException();
      }
    }
    return out;
  }

  private static void write(byte[] png, Path dir, Path file) {
    try {
      Files.createDirectories(dir);
      Images.writeAtomically(png, file);
    } catch (IOException | UncheckedIOException e) {
      throw new HttpError(500, "output_dir", "cannot write " + file + ": " + e.getMessage());
    }
  }

  private Job job(String id) {
    synchronized (jobs) {
      Job j = jobs.get(id);
      if (j == null) {
        throw new HttpError(404, null, "no job " + id + " (finished jobs are kept: the last " + options.jobsKept()
            + ")");
      }
      return j;
    }
  }

  /** Drops the oldest finished jobs past --jobs-kept (live ones are bounded by the queue and the workers). */
  private void trimJobs() {
    int done = 0;
    for (Job j : jobs.values()) {
      done += j.state().done() ? 1 : 0;
    }
    for (Iterator<Job> it = jobs.values().iterator(); it.hasNext() && done > options.jobsKept(); ) {
      if (it.next().state().done()) {
        it.remove();
        done--;
      }
    }
  }

  private ObjectNode jobJson(Job job) {
    ObjectNode o = json.createObjectNode();
    o.put("id", job.id());
    o.put("object", "job");
    Job.State state = job.state();
    o.put("status", state.json());
    ObjectNode progress = o.putObject("progress");
    progress.put("step", job.step());
    progress.put("total", job.request().steps());
    if (job.error() != null) {
      o.put("error", job.error());
    }
    if (state == Job.State.SUCCEEDED) {
      o.set("result", nativeAnswer(job));
    }
    return o;
  }

  private void send(Context ctx, int status, ObjectNode body) {
    try {
      ctx.status(status).contentType("application/json").result(json.writeValueAsBytes(body));
    } catch (JsonProcessingException e) {
      throw new UncheckedIOException(e);
    }
  }

  private void error(Context ctx, HttpError e) {
    ObjectNode o = json.createObjectNode();
    if (ctx.path().equals(OPENAI)) {  // OpenAI's error shape, so its clients raise their usual exceptions
      ObjectNode err = o.putObject("error");
      err.put("message", e.getMessage());
      err.put("type", e.status() >= 500 ? "server_error" : "invalid_request_error");
      if (e.field() != null) {
        err.put("param", e.field());
      } else {
        err.putNull("param");
      }
      err.putNull("code");
    } else {
      o.put("detail", e.getMessage());
      if (e.field() != null) {
        o.put("field", e.field());
      }
    }
    if (e.retryAfterSeconds() > 0) {
      ctx.header("Retry-After", Long.toString(e.retryAfterSeconds()));
    }
    send(ctx, e.status(), o);
  }

  /**
   * Graceful stop: refuses new requests (503), cancels queued ones, lets running generations finish
   * within the shutdown grace, stops the HTTP server, frees the models.
   */
  @Override
  public void close() {
    stopping = true;
    try {
      loader.join();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    Scheduler s = scheduler;
    if (s != null) {
      s.shutdown(options.shutdownGrace());
    }
    app.stop();
    if (s != null) {
      s.close();
    }
  }

  /** The state of async job {@code id} (for tests: it stays readable after {@link #close()}). */
  Job.State jobState(String id) {
    return job(id).state();
  }
}
