/* kernels: attention's softmax, scalar reference — the exponentials (kernels.h,
 * ll_exp_sum_fn) and the passes before and after them (ll_att_scale_mask_fn,
 * ll_att_weights_fn). */
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

float ll_att_scale_mask_ref(float *s, const int32_t *pos, int64_t n, int32_t p, float scale, int64_t *hi) {
    float mx = -INFINITY;
    int64_t last = 0;
    for (int64_t i = 0; i < n; i++) {
        float v = s[i] * scale;
        if (pos[i] > p) {
            v = -INFINITY;
        } else {
            if (v > mx) mx = v;
            last = i + 1;
        }
        s[i] = v;
    }
    *hi = last;
    return mx;
}

void ll_att_weights_ref(float *s, int64_t hi, int64_t n, float inv, bool round16, uint16_t *h) {
    for (int64_t i = 0; i < n; i++) {
        float v = i < hi ? s[i] * inv : 0.0f;
        if (round16) {
            const uint16_t r = ll_fp32_to_fp16(v);
            if (h) h[i] = r;
            v = ll_fp16_to_fp32(r);
        }
        s[i] = v;
    }
}
