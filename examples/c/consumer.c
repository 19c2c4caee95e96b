/* A C99 consumer of the installed kernels: built by CI against `cmake --install` output, once through
 * find_package(cachedit CONFIG) and once through pkg-config (docs/kernels.md, "From C++"). */
#include <cachedit/cachedit_kernels.h>
#include <math.h>
#include <stdio.h>

int main(void) {
  float a[4] = {1.0f, 2.0f, 3.0f, 4.0f};
  float b[4] = {1.0f, 2.0f, 3.0f, 5.0f};
  double diff = 0.0;
  cdit_status st = cdit_rel_l1(CDIT_F32, a, b, 4, 1, &diff); /* mean |a - b| / mean |a| = 1 / 10 */
  if (st != CDIT_OK) {
    fprintf(stderr, "%s (%s)\n", cdit_last_error(), cdit_status_string(st));
    return 1;
  }
  /* a bad argument is a status and a message naming the function, the argument and its value */
  if (cdit_rel_l1(CDIT_F32, a, b, -1, 1, &diff) != CDIT_ERR_ARGUMENT || cdit_last_error()[0] == '\0') {
    fprintf(stderr, "n = -1 was not reported\n");
    return 1;
  }
  printf("expected error: %s\n", cdit_last_error());
  /* y = x W^T + b with the batch-invariant fp32 linear layer: 1 row, 2 inputs, 3 outputs */
  float w[6] = {1, 0, 0, 1, 1, 1}, x[2] = {2, 3}, bias[3] = {0.5f, 0.5f, 0.5f}, y[3];
  float packed[64];
  if (cdit_linear_f32_packed_floats(3, 2) > 64 || cdit_linear_f32_pack(w, 3, 2, packed, 1) != CDIT_OK ||
      cdit_linear_f32(x, 1, 2, packed, 3, bias, y, 1) != CDIT_OK) {
    fprintf(stderr, "%s\n", cdit_last_error());
    return 1;
  }
  printf("cachedit %s (%s): rel_l1 %.3f, linear [%.1f %.1f %.1f]\n", cdit_version(), cdit_cpu_isa(), diff, y[0], y[1],
         y[2]);
  return fabs(diff - 0.1) < 1e-6 && y[0] == 2.5f && y[1] == 3.5f && y[2] == 5.5f ? 0 : 1;
}
