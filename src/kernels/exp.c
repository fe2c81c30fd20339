/* kernels: the softmax's exponentials, scalar reference (kernels.h, ll_exp_sum_fn). */
#include "kernels/kernels.h"

#include <math.h>

double ll_exp_sum_ref(float *x, int64_t n, float max) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += (double)x[i];
    }
    return sum;
}
