# Cross-compiling the C kernels for linux-arm64 (aarch64) from an x86-64 machine (docs/packaging.md, "Platforms"):
#   apt-get install g++-aarch64-linux-gnu qemu-user
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/linux-arm64.cmake -DCACHEDIT_CUDA=OFF
#   cmake --build build-arm64 -j && ctest --test-dir build-arm64   # the tests run under qemu-aarch64
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CACHEDIT_CROSS_PREFIX "aarch64-linux-gnu-" CACHE STRING "prefix of the cross toolchain's tools")
set(CMAKE_C_COMPILER ${CACHEDIT_CROSS_PREFIX}gcc)
set(CMAKE_CXX_COMPILER ${CACHEDIT_CROSS_PREFIX}g++)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
find_program(CACHEDIT_QEMU qemu-aarch64)
if(CACHEDIT_QEMU)
  # ctest runs the test binaries through qemu, with the cross toolchain's libc and libgomp
  set(CMAKE_CROSSCOMPILING_EMULATOR ${CACHEDIT_QEMU} -L /usr/aarch64-linux-gnu)
endif()
