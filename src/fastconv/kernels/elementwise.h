/* Elementwise kernels: activation gradients, ReLU, dropout and optimizer updates
 * (float32 and float64).
 *
 * All arrays are C-contiguous and hold `n` elements; outputs may be uninitialised: every
 * element is written. Arguments are validated by the caller (src/fastconv/elementwise.pyx):
 * no output overlaps an input, except that the optimizer updates work in place on their
 * state arrays (which must not overlap each other or the gradient).
 *
 * Each element is computed by the same operations, in the same order and in the same
 * precision as the NumPy code of fastconv/reference/elementwise.py, so the results are
 * bit-identical to it (and independent of num_threads). The kernels that do arithmetic
 * (tanh/sigmoid gradients, Adam, SGD) flush denormals to zero as the other compiled kernels
 * do; there a denormal operand or result becomes a signed zero. ReLU, leaky ReLU and dropout
 * only select, or multiply by an exact 1, 0, slope or dropout scale, and keep denormals exactly.
 */
#ifndef FASTCONV_ELEMENTWISE_H
#define FASTCONV_ELEMENTWISE_H

#include <stddef.h>
#include <stdint.h>

#define FC_DECLARE_ELEMENTWISE(T, SFX)                                                         \
    /* y = max(x, 0) as numpy.maximum(x, 0): NaN propagates (payload kept), -0.0 gives +0.0. */ \
    void fc_relu_forward_##SFX(const T *x, T *y, ptrdiff_t n, int num_threads);               \
    /* dx = dy * (x >= threshold ? 1 : 0): NaN/inf in dy times 0 give NaN, as in numpy. */    \
    void fc_relu_backward_##SFX(const T *dy, const T *x, T threshold, T *dx, ptrdiff_t n,      \
                                int num_threads);                                              \
    /* Leaky ReLU: y = x >= 0 ? x : slope * x; dx = x >= 0 ? dy : slope * dy. */            \
    void fc_leaky_relu_forward_##SFX(const T *x, T slope, T *y, ptrdiff_t n, int num_threads); \
    void fc_leaky_relu_backward_##SFX(const T *dy, const T *x, T slope, T *dx, ptrdiff_t n,    \
                                      int num_threads);                                        \
    /* dx = dy * (1 - y * y), the gradient of tanh given its output y. */                     \
    void fc_tanh_backward_##SFX(const T *dy, const T *y, T *dx, ptrdiff_t n, int num_threads); \
    /* dx = (dy * y) * (1 - y), the gradient of the sigmoid given its output y. */            \
    void fc_sigmoid_backward_##SFX(const T *dy, const T *y, T *dx, ptrdiff_t n,                \
                                   int num_threads);                                           \
    /* One Adam step in place on `count` parameters (entry k: param[k], grad[k], m[k], v[k]   \
     * and v_hat[k] if v_hat is not NULL, of n[k] elements; no output overlaps any other       \
     * array), in one parallel region over all their elements: m += (g - m) * one_minus_beta_1; \
     * v += (g * g - v) * one_minus_beta_2; with v_hat (AMSGrad): v_hat = max(v_hat, v) and    \
     * v_hat replaces v below; param -= (m * alpha) / (sqrt(v) + eps). */                      \
    void fc_adam_update_many_##SFX(ptrdiff_t count, T *const *param, const T *const *grad,     \
                                   T *const *m, T *const *v, T *const *v_hat,                  \
                                   const ptrdiff_t *n, T one_minus_beta_1, T one_minus_beta_2, \
                                   T alpha, T epsilon, int num_threads);                       \
    /* One SGD step in place. velocity NULL: param -= lr * g. Else                             \
     * velocity = velocity * momentum - lr * g, then param += velocity, or with nesterov        \
     * param += momentum * velocity - lr * g. */                                               \
    void fc_sgd_update_##SFX(T *param, const T *grad, T *velocity, T learning_rate,           \
                             T momentum, int nesterov, ptrdiff_t n, int num_threads);          \
    /* Inverted dropout: keep[i] = bits[i] >= drop_below (drop_below <= 2^32; 2^32 drops       \
     * everything), y = x * (keep ? scale : 0). */                                             \
    void fc_dropout_forward_##SFX(const T *x, const uint32_t *bits, uint64_t drop_below,      \
                                  T scale, T *y, uint8_t *keep, ptrdiff_t n, int num_threads); \
    /* dx = dy * (keep ? scale : 0) for keep[i] in {0, 1}. */                                  \
    void fc_dropout_backward_##SFX(const T *dy, const uint8_t *keep, T scale, T *dx,           \
                                   ptrdiff_t n, int num_threads);                              \
    /* Softmax crossentropy of integer labels from logits z (rows x classes, rows >= 1): per  \
     * row, in double around its maximum m, s = sum_j exp(z_j - m); the row's loss is          \
     * m + log(s) - z[label] and grad[j] = (exp(z_j - m) / s - [j == label]) / rows. Returns   \
     * -1 with *loss_sum = the sum of the rows' losses, or the first row whose label lies      \
     * outside [0, classes) (then nothing is written). One thread: a batch's logits are small. */ \
    ptrdiff_t fc_sparse_softmax_xent_##SFX(const T *z, const int64_t *labels, ptrdiff_t rows,  \
                                           ptrdiff_t classes, T *grad, double *loss_sum);

FC_DECLARE_ELEMENTWISE(float, f32)
FC_DECLARE_ELEMENTWISE(double, f64)

#undef FC_DECLARE_ELEMENTWISE

/* Counter-based uniform random bits: word j = splitmix64_mix(seed + (j + 1) * 0x9E3779B97F4A7C15)
 * (SplitMix64's output function), bits[2j] = its low 32 bits, bits[2j + 1] its high 32 bits,
 * for 0 <= i < n. Element i depends only on seed and i: the same bits for any thread count,
 * and fastconv/reference/elementwise.py (random_bits) computes the same. */
void fc_random_bits(uint64_t seed, uint32_t *bits, ptrdiff_t n, int num_threads);

#endif /* FASTCONV_ELEMENTWISE_H */
