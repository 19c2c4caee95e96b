// Minimal test harness shared by the CPU and CUDA kernel tests: named cases, NMSE checks
// (after ggml's test-backend-ops), deterministic inputs.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <cstdlib>
#include <string>
#include <vector>

namespace cdit_test {

struct Registry {
  std::vector<std::pair<std::string, std::function<void()>>> cases;
  int failures = 0;
  int checks = 0;
  std::string current;
  static Registry& get() {
    static Registry r;
    return r;
  }
};

inline void fail(const std::string& what) {
  auto& r = Registry::get();
  ++r.failures;
  std::fprintf(stderr, "FAIL [%s] %s\n", r.current.c_str(), what.c_str());
}

#define CDIT_CHECK(cond, ...)                                       \
  do {                                                              \
    ++cdit_test::Registry::get().checks;                            \
    if (!(cond)) {                                                  \
      char _buf[512];                                               \
      std::snprintf(_buf, sizeof _buf, __VA_ARGS__);                \
      cdit_test::fail(std::string(#cond) + ": " + _buf);            \
    }                                                               \
  } while (0)

struct Case {
  Case(const char* name, std::function<void()> fn) { Registry::get().cases.emplace_back(name, std::move(fn)); }
};
#define CDIT_CASE(name) \
  static void name();   \
  static cdit_test::Case name##_case(#name, name); \
  static void name()

// Normalised mean squared error of `got` against `want`.
inline double nmse(const std::vector<double>& want, const std::vector<double>& got) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = want[i] - got[i];
    num += d * d;
    den += want[i] * want[i];
  }
  return den == 0 ? num : num / den;
}

inline std::vector<float> randn(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Sets (isa != NULL) or clears an ISA-override variable such as CACHEDIT_LINEAR_ISA for the next calls.
inline void set_env_isa(const char* variable, const char* isa) {
  if (isa) {
    setenv(variable, isa, 1);
  } else {
    unsetenv(variable);
  }
}

inline int run_all(int argc, char** argv) {
  auto& r = Registry::get();
  const char* filter = argc > 1 ? argv[1] : nullptr;
  int ran = 0;
  for (auto& [name, fn] : r.cases) {
    if (filter && name.find(filter) == std::string::npos) continue;
    r.current = name;
    const int before = r.failures;
    fn();
    ++ran;
    std::printf("%s %s\n", r.failures == before ? "ok  " : "FAIL", name.c_str());
  }
  std::printf("%d cases, %d checks, %d failures\n", ran, r.checks, r.failures);
  return r.failures == 0 ? 0 : 1;
}

}  // namespace cdit_test
