package io.cachedit.kernels;

import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.annotation.Cast;
import org.bytedeco.javacpp.annotation.Name;
import org.bytedeco.javacpp.annotation.NoException;
import org.bytedeco.javacpp.annotation.Platform;

/**
 * The C library's environment, for settings that native libraries read once when they load (such
 * as libgomp's {@code OMP_WAIT_POLICY}). Its JNI library links nothing but libc, so it can load
 * before libtorch.
 */
@Platform(value = "linux-x86_64", include = "stdlib.h")
@NoException
final class NativeEnvironment {
  static {
    Loader.load(NativeEnvironment.class);
  }

  private NativeEnvironment() {}

  @Name("setenv")
  static native int setenv(String name, String value, int overwrite);

  @Name("getenv")
  static native @Cast("const char*") String getenv(String name);
}
