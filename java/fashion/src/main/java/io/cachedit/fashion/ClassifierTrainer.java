package io.cachedit.fashion;

import java.util.function.Consumer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.AdamW;
import org.bytedeco.pytorch.AdamWOptions;
import org.bytedeco.pytorch.Generator;
import org.bytedeco.pytorch.GeneratorOptional;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/** Trains {@link FashionClassifier}: cross-entropy, AdamW with cosine decay, shuffled epochs. */
public final class ClassifierTrainer {
  public record Options(int epochs, int batch, double lr, long seed) {
    public static Options defaults() {
      return new Options(3, 128, 2e-3, 0);
    }
  }

  private ClassifierTrainer() {}

  /** Trains on {@code train}; {@code log} gets "epoch, mean loss" after each epoch. */
  public static FashionClassifier train(FashionMnist train, Options o, Consumer<double[]> log) {
    torch.manual_seed(o.seed());
    FashionClassifier model = FashionClassifier.random(o.seed());
    TensorVector params = new TensorVector();
    for (Tensor p : model.parameters().values()) {
      p.set_requires_grad(true);
      params.push_back(p);
    }
    AdamWOptions adam = new AdamWOptions(o.lr());
    adam.weight_decay().put(1e-4);
    AdamW optimizer = new AdamW(params, adam);
    Generator gen = torch.createCPUGenerator(o.seed());
    io.cachedit.kernels.NativeScope owner = io.cachedit.kernels.NativeScope.owner("classifier training");
    Tensor images = owner.keep(FlowMatchingTrainer.normalise(train.images()));
    long n = train.size();
    long stepsPerEpoch = n / o.batch();
    long total = stepsPerEpoch * o.epochs();
    long step = 0;
    try {
      for (int epoch = 1; epoch <= o.epochs(); epoch++) {
        double sum = 0;
        Tensor perm;
        try (PointerScope s = new PointerScope()) {
          perm = owner.keep(torch.randperm(n, new GeneratorOptional(gen), new TensorOptions(ScalarType.Long)));
        }
        for (long b = 0; b < stepsPerEpoch; b++, step++) {
          try (PointerScope scope = new PointerScope()) {
            double lr = o.lr() * 0.5 * (1 + Math.cos(Math.PI * step / total));
            optimizer.param_groups().get(0).options().set_lr(lr);
            Tensor idx = perm.narrow(0, b * o.batch(), o.batch());
            Tensor loss = torch.cross_entropy_loss(model.logits(images.index_select(0, idx)),
                train.labels().index_select(0, idx));
            optimizer.zero_grad();
            loss.backward();
            optimizer.step();
            sum += loss.item_double();
          }
        }
        owner.release(perm);
        log.accept(new double[] {epoch, sum / stepsPerEpoch});
      }
    } finally {
      owner.close();
    }
    for (Tensor p : model.parameters().values()) {
      p.set_requires_grad(false);
    }
    return model;
  }

  /** Test accuracy in [0, 1]. */
  public static double accuracy(FashionClassifier model, FashionMnist test) {
    try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
      Tensor pred = model.predict(FlowMatchingTrainer.normalise(test.images()));
      return pred.eq(test.labels()).to(ScalarType.Double).mean().item_double();
    }
  }
}
