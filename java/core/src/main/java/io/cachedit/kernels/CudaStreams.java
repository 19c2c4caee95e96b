package io.cachedit.kernels;

import org.bytedeco.pytorch.global.torch_cuda;

/**
 * The current libtorch CUDA stream of a device, as a raw {@code cudaStream_t}. Kept in its own class
 * so that the CUDA bindings of libtorch are only loaded when a CUDA tensor actually arrives.
 */
final class CudaStreams {
  private CudaStreams() {}

  static long current(int deviceIndex) {
    return torch_cuda.getCurrentCUDAStream((byte) deviceIndex).stream().address();
  }
}
