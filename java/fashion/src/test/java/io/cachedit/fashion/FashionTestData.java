package io.cachedit.fashion;

import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.zip.GZIPOutputStream;
import org.bytedeco.pytorch.Generator;
import org.bytedeco.pytorch.GeneratorOptional;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/** Synthetic Fashion-MNIST-shaped data: class k is a bright horizontal band at rows 2k..2k+7, plus noise. */
public final class FashionTestData {
  private FashionTestData() {}

  public static final String TINY_FLUX = """
      {"_class_name": "FluxTransformer2DModel", "patch_size": 1, "in_channels": 16, "out_channels": 16,
       "num_layers": 1, "num_single_layers": 2, "attention_head_dim": 8, "num_attention_heads": 2,
       "joint_attention_dim": 12, "pooled_projection_dim": 6, "guidance_embeds": false, "axes_dims_rope": [2, 2, 4]}
      """;

  public static FashionMnist bands(int n, long seed) {
    Generator g = torch.createCPUGenerator(seed);
    Tensor labels = torch.arange(new Scalar(n)).remainder(new Scalar(10)).to(ScalarType.Long);
    Tensor rows = torch.arange(new Scalar(28)).view(1, 28, 1);
    Tensor start = labels.mul(new Scalar(2)).view(n, 1, 1);
    Tensor band = rows.ge(start).logical_and(rows.lt(start.add(new Scalar(8)))).to(ScalarType.Float)
        .expand(n, 28, 28).mul(new Scalar(200.0));
    Tensor noise = torch.rand(new long[] {n, 28, 28}, new GeneratorOptional(g), new TensorOptions(ScalarType.Float))
        .mul(new Scalar(40.0));
    return new FashionMnist(band.add(noise).clamp_max(new Scalar(255.0)).to(ScalarType.Byte).contiguous(), labels);
  }

  /** Writes {@code data} as gzipped IDX files with the {@code prefix} ("train" or "t10k"). */
  public static void writeIdx(FashionMnist data, Path dir, String prefix) throws IOException {
    Files.createDirectories(dir);
    int n = (int) data.size();
    byte[] images = new byte[n * 28 * 28];
    new org.bytedeco.javacpp.BytePointer(data.images().contiguous().data_ptr_byte()).capacity(images.length).get(images);
    try (DataOutputStream out = new DataOutputStream(new GZIPOutputStream(
        Files.newOutputStream(dir.resolve(prefix + "-images-idx3-ubyte.gz"))))) {
      out.writeInt(0x803);
      out.writeInt(n);
      out.writeInt(28);
      out.writeInt(28);
      out.write(images);
    }
    try (DataOutputStream out = new DataOutputStream(new GZIPOutputStream(
        Files.newOutputStream(dir.resolve(prefix + "-labels-idx1-ubyte.gz"))))) {
      out.writeInt(0x801);
      out.writeInt(n);
      for (int i = 0; i < n; i++) {
        out.writeByte((int) data.labels().get(i).item_long());
      }
    }
  }
}
