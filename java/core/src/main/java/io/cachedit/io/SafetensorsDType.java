package io.cachedit.io;

import java.util.Locale;
import org.bytedeco.pytorch.global.torch.ScalarType;

/** The element types of the safetensors format and their libtorch counterparts. */
public enum SafetensorsDType {
  F64(8, ScalarType.Double),
  F32(4, ScalarType.Float),
  F16(2, ScalarType.Half),
  BF16(2, ScalarType.BFloat16),
  I64(8, ScalarType.Long),
  I32(4, ScalarType.Int),
  I16(2, ScalarType.Short),
  I8(1, ScalarType.Char),
  U8(1, ScalarType.Byte),
  BOOL(1, ScalarType.Bool),
  F8_E4M3(1, ScalarType.Float8_e4m3fn),
  F8_E5M2(1, ScalarType.Float8_e5m2);

  public final int size;
  public final ScalarType scalarType;

  SafetensorsDType(int size, ScalarType scalarType) {
    this.size = size;
    this.scalarType = scalarType;
  }

  /** The dtype named in a header, or null if unknown. */
  public static SafetensorsDType parse(String name) {
    try {
      return valueOf(name.toUpperCase(Locale.ROOT));
    } catch (IllegalArgumentException e) {
      return null;
    }
  }

  /** The safetensors dtype of a libtorch scalar type. */
  public static SafetensorsDType of(ScalarType type) {
    ScalarType t = type.intern();
    for (SafetensorsDType d : values()) {
      if (d.scalarType == t) {
        return d;
      }
    }
    throw new IllegalArgumentException("dtype " + type + " cannot be stored in safetensors");
  }
}
