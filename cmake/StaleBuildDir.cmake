# cmake -DSOURCE_DIR=<src> -DBUILD_DIR=<build> -P StaleBuildDir.cmake
#
# A CMake build folder records absolute paths (CMakeCache.txt, generated makefiles). After a checkout is
# copied or moved, CMake refuses the old cache ("CMakeCache.txt directory ... is different"), so the
# Maven build would fail until someone deletes java/core/target. This script runs before configuring:
# if the cache belongs to another source or build folder, it removes the build folder so the
# configure step starts fresh, and says why.
if(NOT DEFINED SOURCE_DIR OR NOT DEFINED BUILD_DIR)
  message(FATAL_ERROR "StaleBuildDir.cmake needs -DSOURCE_DIR=... -DBUILD_DIR=...")
endif()
set(cache "${BUILD_DIR}/CMakeCache.txt")
if(NOT EXISTS "${cache}")
  return()
endif()
file(STRINGS "${cache}" home REGEX "^CMAKE_HOME_DIRECTORY:INTERNAL=")
file(STRINGS "${cache}" cachedir REGEX "^CMAKE_CACHEFILE_DIR:INTERNAL=")
string(REGEX REPLACE "^[^=]*=" "" home "${home}")
string(REGEX REPLACE "^[^=]*=" "" cachedir "${cachedir}")
get_filename_component(src_real "${SOURCE_DIR}" REALPATH)
get_filename_component(build_real "${BUILD_DIR}" REALPATH)
set(stale "")
if(home)
  get_filename_component(home_real "${home}" REALPATH)
  if(NOT home_real STREQUAL src_real)
    set(stale "it was configured for sources in ${home}, these are in ${src_real}")
  endif()
endif()
if(NOT stale AND cachedir)
  get_filename_component(cachedir_real "${cachedir}" REALPATH)
  if(NOT cachedir_real STREQUAL build_real)
    set(stale "it was created in ${cachedir}, not here")
  endif()
endif()
if(stale)
  message(STATUS "cachedit: removing the stale CMake build folder ${BUILD_DIR} (${stale}; the checkout was "
    "copied or moved); configuring afresh")
  file(REMOVE_RECURSE "${BUILD_DIR}")
endif()
