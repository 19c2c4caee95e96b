package io.cachedit.models.vae;

import io.cachedit.models.common.ForwardInputs;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Function;
import java.util.function.UnaryOperator;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

/** The VAEs' {@code decode} / {@code encode} calls under diffusers' output names. */
final class VaeCalls {
  private VaeCalls() {}

  static Map<String, Tensor> call(String className, String method, ForwardInputs inputs, ScalarType dtype,
      UnaryOperator<Tensor> decode, Function<Tensor, AutoencoderKL.LatentDistribution> encode) {
    inputs.value("return_dict", true);
    Map<String, Tensor> out = new LinkedHashMap<>();
    switch (method) {
      case "decode" -> {
        Tensor z = inputs.tensor("z");
        inputs.checkAllUsed(className);
        out.put("sample", decode.apply(z.to(dtype)));
      }
      case "encode" -> {
        Tensor x = inputs.tensor("x");
        inputs.checkAllUsed(className);
        AutoencoderKL.LatentDistribution d = encode.apply(x.to(dtype));
        out.put("latent_dist.mean", d.mean());
        out.put("latent_dist.logvar", d.logvar());
        out.put("latent_dist.std", d.std());
      }
      default -> throw new IllegalArgumentException(className + " runs decode or encode, not " + method);
    }
    return out;
  }
}
