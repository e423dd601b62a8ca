/* Elementwise kernels (ReLU, leaky ReLU, activation gradients, dropout, optimizer updates): see
 * elementwise.h.
 *
 * Each kernel is one pass over its arrays. The range [0, n) is cut into one contiguous block
 * per thread (block edges on multiples of FC_EW_ALIGN elements); every element is computed by
 * the same scalar expression whatever block it falls in, so results never depend on the
 * thread count. The per-block loops take restrict pointers and have no data-dependent
 * branches, so gcc vectorises them at the baseline ISA. The expressions follow the NumPy
 * reference operation by operation; nothing may fuse a multiply and an add (no FMA on the
 * baseline ISA, and floating-point contraction is switched off below for other targets).
 *
 * This file is a template: it includes itself twice, once for float and once for double,
 * with T the element type, SFX(name) adding the type suffix to a function name and
 * FC_SQRT the square root of that type.
 */
#ifndef FC_ELEMENTWISE_TEMPLATE

/* a * b + c must round twice, as NumPy's separate passes do: no contraction into FMA on ISAs
 * that have it in their baseline (aarch64, say). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#elif defined(_MSC_VER)
#pragma fp_contract(off)
#endif

#include "elementwise.h"
#include "kernel_common.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* Thread blocks start on multiples of this many elements (whole cache lines). */
#define FC_EW_ALIGN 64

/* The block [*lo, *hi) of [0, n) that the calling thread of the current team handles. */
static inline void fc_ew_block(ptrdiff_t n, ptrdiff_t *lo, ptrdiff_t *hi)
{
#if defined(_OPENMP)
    ptrdiff_t team = omp_get_num_threads(), me = omp_get_thread_num();
#else
    ptrdiff_t team = 1, me = 0;
#endif
    ptrdiff_t units = (n + FC_EW_ALIGN - 1) / FC_EW_ALIGN;
    ptrdiff_t per = (units + team - 1) / team;
    ptrdiff_t start = me * per * FC_EW_ALIGN, stop = (me + 1) * per * FC_EW_ALIGN;
    *lo = start < n ? start : n;
    *hi = stop < n ? stop : n;
}

#if !defined(_OPENMP)
#define FC_EW_OMP_PARALLEL /* built without OpenMP: one thread */
#elif defined(_MSC_VER)
#define FC_EW_OMP_PARALLEL __pragma(omp parallel num_threads(fc_nt_) if(fc_nt_ > 1))
#else
#define FC_EW_OMP_PARALLEL _Pragma("omp parallel num_threads(fc_nt_) if(fc_nt_ > 1)")
#endif

/* Run `call` (a statement using lo and hi) on each thread's block of [0, n); `flush` (0/1)
 * sets FTZ/DAZ around it. Small arrays stay on the calling thread (fc_threads_for). */
#define FC_EW_PARALLEL(n, num_threads, flush, call) FC_EW_PARALLEL_COST(n, 1, num_threads, flush, call)

/* The same for a kernel that costs `cost` times a copy per element (the thread count follows
 * n * cost elements' worth of work). */
#define FC_EW_PARALLEL_COST(n, cost, num_threads, flush, call)                              \
    do {                                                                                    \
        int fc_nt_ = fc_threads_for((n) * (cost), (num_threads));                           \
        (void)fc_nt_;                                                                       \
        FC_EW_OMP_PARALLEL                                                                  \
        {                                                                                   \
            ptrdiff_t lo, hi;                                                               \
            fc_ew_block((n), &lo, &hi);                                                     \
            if (flush) {                                                                    \
                FC_FTZ_BEGIN();                                                             \
                call;                                                                       \
                FC_FTZ_END();                                                               \
            } else {                                                                        \
                call;                                                                       \
            }                                                                               \
        }                                                                                   \
    } while (0)

/* SplitMix64's output function (Steele, Lea & Flood 2014). */
static inline uint64_t fc_splitmix64_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* Elements [lo, hi) (lo even: block edges are multiples of FC_EW_ALIGN): one mix per word,
 * its two halves stored. */
static void fc_random_bits_block(uint64_t seed, uint32_t *restrict bits, ptrdiff_t lo, ptrdiff_t hi)
{
    for (ptrdiff_t i = lo; i < hi; i += 2) {
        const uint64_t word = fc_splitmix64_mix(seed + (uint64_t)(i / 2 + 1) * UINT64_C(0x9E3779B97F4A7C15));
        bits[i] = (uint32_t)word;
        if (i + 1 < hi) bits[i + 1] = (uint32_t)(word >> 32);
    }
}

void fc_random_bits(uint64_t seed, uint32_t *bits, ptrdiff_t n, int num_threads)
{
    FC_EW_PARALLEL(n, num_threads, 0, fc_random_bits_block(seed, bits, lo, hi));
}

#define FC_ELEMENTWISE_TEMPLATE
#define T float
#define SFX(name) name##_f32
#define FC_SQRT sqrtf
#include "elementwise.c"
#undef T
#undef SFX
#undef FC_SQRT
#define T double
#define SFX(name) name##_f64
#define FC_SQRT sqrt
#include "elementwise.c"
#undef T
#undef SFX
#undef FC_SQRT
#undef FC_ELEMENTWISE_TEMPLATE

#else /* FC_ELEMENTWISE_TEMPLATE: the body below is compiled once per element type T. */

/* ---- per-block loops ----------------------------------------------------------------------- */

static void SFX(fc_relu_forward_block)(const T *restrict x, T *restrict y, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        T v = x[i];
        /* numpy.maximum(v, 0): v when v > 0 or v is NaN, else +0 (also for v = -0.0). */
        y[i] = (v > (T)0 || v != v) ? v : (T)0;
    }
}

static void SFX(fc_relu_backward_block)(const T *restrict dy, const T *restrict x, T threshold,
                                        T *restrict dx, ptrdiff_t n)
{
    /* A multiplication, not a select: dy * 0 keeps dy's sign and turns inf/NaN into NaN. */
    for (ptrdiff_t i = 0; i < n; i++) dx[i] = dy[i] * (T)(x[i] >= threshold);
}

static void SFX(fc_leaky_relu_forward_block)(const T *restrict x, T slope, T *restrict y,
                                            ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        T v = x[i];
        y[i] = v >= (T)0 ? v : slope * v;
    }
}

static void SFX(fc_leaky_relu_backward_block)(const T *restrict dy, const T *restrict x, T slope,
                                             T *restrict dx, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        T g = dy[i];
        dx[i] = x[i] >= (T)0 ? g : slope * g;
    }
}

static void SFX(fc_tanh_backward_block)(const T *restrict dy, const T *restrict y,
                                        T *restrict dx, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        T v = y[i];
        dx[i] = dy[i] * ((T)1 - v * v);
    }
}

static void SFX(fc_sigmoid_backward_block)(const T *restrict dy, const T *restrict y,
                                           T *restrict dx, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        T v = y[i];
        dx[i] = (dy[i] * v) * ((T)1 - v);
    }
}

static void SFX(fc_adam_block)(T *restrict param, const T *restrict grad, T *restrict m,
                               T *restrict v, T b1, T b2, T alpha, T eps, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        T g = grad[i];
        T mi = m[i] + (g - m[i]) * b1;
        T vi = v[i] + (g * g - v[i]) * b2;
        m[i] = mi;
        v[i] = vi;
        param[i] = param[i] - (mi * alpha) / (FC_SQRT(vi) + eps);
    }
}

static void SFX(fc_adam_amsgrad_block)(T *restrict param, const T *restrict grad,
                                       T *restrict m, T *restrict v, T *restrict v_hat, T b1,
                                       T b2, T alpha, T eps, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        T g = grad[i];
        T mi = m[i] + (g - m[i]) * b1;
        T vi = v[i] + (g * g - v[i]) * b2;
        T h = v_hat[i];
        /* numpy.maximum(v_hat, v): NaN from either side propagates. */
        h = (h >= vi || h != h) ? h : vi;
        m[i] = mi;
        v[i] = vi;
        v_hat[i] = h;
        param[i] = param[i] - (mi * alpha) / (FC_SQRT(h) + eps);
    }
}

static void SFX(fc_sgd_block)(T *restrict param, const T *restrict grad, T lr, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) param[i] = param[i] - lr * grad[i];
}

static void SFX(fc_sgd_momentum_block)(T *restrict param, const T *restrict grad,
                                       T *restrict velocity, T lr, T momentum, int nesterov,
                                       ptrdiff_t n)
{
    if (nesterov) {
        for (ptrdiff_t i = 0; i < n; i++) {
            T step = lr * grad[i];
            T vel = velocity[i] * momentum - step;
            velocity[i] = vel;
            param[i] = param[i] + (momentum * vel - step);
        }
    } else {
        for (ptrdiff_t i = 0; i < n; i++) {
            T vel = velocity[i] * momentum - lr * grad[i];
            velocity[i] = vel;
            param[i] = param[i] + vel;
        }
    }
}

static void SFX(fc_dropout_forward_block)(const T *restrict x, const uint32_t *restrict bits,
                                          uint64_t drop_below, T scale, T *restrict y,
                                          uint8_t *restrict keep, ptrdiff_t n)
{
    if (drop_below > UINT32_MAX) { /* rate so close to 1 that nothing is kept */
        for (ptrdiff_t i = 0; i < n; i++) {
            keep[i] = 0;
            y[i] = x[i] * (T)0;
        }
        return;
    }
    uint32_t threshold = (uint32_t)drop_below;
    for (ptrdiff_t i = 0; i < n; i++) {
        uint8_t k = bits[i] >= threshold;
        keep[i] = k;
        y[i] = x[i] * (k ? scale : (T)0);
    }
}

static void SFX(fc_dropout_backward_block)(const T *restrict dy, const uint8_t *restrict keep,
                                           T scale, T *restrict dx, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) dx[i] = dy[i] * (keep[i] ? scale : (T)0);
}

/* ---- entry points -------------------------------------------------------------------------- */

void SFX(fc_relu_forward)(const T *x, T *y, ptrdiff_t n, int num_threads)
{
    FC_EW_PARALLEL(n, num_threads, 0, SFX(fc_relu_forward_block)(x + lo, y + lo, hi - lo));
}

void SFX(fc_relu_backward)(const T *dy, const T *x, T threshold, T *dx, ptrdiff_t n,
                           int num_threads)
{
    FC_EW_PARALLEL(n, num_threads, 0,
                   SFX(fc_relu_backward_block)(dy + lo, x + lo, threshold, dx + lo, hi - lo));
}

void SFX(fc_leaky_relu_forward)(const T *x, T slope, T *y, ptrdiff_t n, int num_threads)
{
    FC_EW_PARALLEL(n, num_threads, 0,
                   SFX(fc_leaky_relu_forward_block)(x + lo, slope, y + lo, hi - lo));
}

void SFX(fc_leaky_relu_backward)(const T *dy, const T *x, T slope, T *dx, ptrdiff_t n,
                                 int num_threads)
{
    FC_EW_PARALLEL(n, num_threads, 0,
                   SFX(fc_leaky_relu_backward_block)(dy + lo, x + lo, slope, dx + lo, hi - lo));
}

void SFX(fc_tanh_backward)(const T *dy, const T *y, T *dx, ptrdiff_t n, int num_threads)
{
    FC_EW_PARALLEL(n, num_threads, 1,
                   SFX(fc_tanh_backward_block)(dy + lo, y + lo, dx + lo, hi - lo));
}

void SFX(fc_sigmoid_backward)(const T *dy, const T *y, T *dx, ptrdiff_t n, int num_threads)
{
    FC_EW_PARALLEL(n, num_threads, 1,
                   SFX(fc_sigmoid_backward_block)(dy + lo, y + lo, dx + lo, hi - lo));
}

/* Elements [lo, hi) of the concatenation of the `count` arrays (entry k: n[k] elements). */
static void SFX(fc_adam_range)(ptrdiff_t count, T *const *param, const T *const *grad,
                               T *const *m, T *const *v, T *const *v_hat, const ptrdiff_t *n,
                               T b1, T b2, T alpha, T eps, ptrdiff_t lo, ptrdiff_t hi)
{
    ptrdiff_t base = 0;
    for (ptrdiff_t k = 0; k < count && base < hi; base += n[k], k++) {
        const ptrdiff_t a = (lo > base ? lo : base) - base;
        const ptrdiff_t b = (hi < base + n[k] ? hi : base + n[k]) - base;
        if (a >= b) continue;
        if (v_hat == NULL)
            SFX(fc_adam_block)(param[k] + a, grad[k] + a, m[k] + a, v[k] + a, b1, b2, alpha, eps,
                               b - a);
        else
            SFX(fc_adam_amsgrad_block)(param[k] + a, grad[k] + a, m[k] + a, v[k] + a,
                                       v_hat[k] + a, b1, b2, alpha, eps, b - a);
    }
}

void SFX(fc_adam_update_many)(ptrdiff_t count, T *const *param, const T *const *grad,
                              T *const *m, T *const *v, T *const *v_hat, const ptrdiff_t *n,
                              T one_minus_beta_1, T one_minus_beta_2, T alpha, T epsilon,
                              int num_threads)
{
    ptrdiff_t total = 0;
    for (ptrdiff_t k = 0; k < count; k++) total += n[k];
    /* a square root and a division per element: worth a second thread from ~4 K elements
     * (LeNet-5's 61.7 K parameters, 2 threads: Adam.apply_gradients 60.5 -> 49.8 us p10) */
    FC_EW_PARALLEL_COST(total, 8, num_threads, 1,
                        SFX(fc_adam_range)(count, param, grad, m, v, v_hat, n, one_minus_beta_1,
                                           one_minus_beta_2, alpha, epsilon, lo, hi));
}

void SFX(fc_sgd_update)(T *param, const T *grad, T *velocity, T learning_rate, T momentum,
                        int nesterov, ptrdiff_t n, int num_threads)
{
    if (velocity == NULL)
        FC_EW_PARALLEL(n, num_threads, 1,
                       SFX(fc_sgd_block)(param + lo, grad + lo, learning_rate, hi - lo));
    else
        FC_EW_PARALLEL(n, num_threads, 1,
                       SFX(fc_sgd_momentum_block)(param + lo, grad + lo, velocity + lo,
                                                  learning_rate, momentum, nesterov, hi - lo));
}

void SFX(fc_dropout_forward)(const T *x, const uint32_t *bits, uint64_t drop_below, T scale,
                             T *y, uint8_t *keep, ptrdiff_t n, int num_threads)
{
    FC_EW_PARALLEL(n, num_threads, 0,
                   SFX(fc_dropout_forward_block)(x + lo, bits + lo, drop_below, scale, y + lo,
                                                 keep + lo, hi - lo));
}

void SFX(fc_dropout_backward)(const T *dy, const uint8_t *keep, T scale, T *dx, ptrdiff_t n,
                              int num_threads)
{
    FC_EW_PARALLEL(n, num_threads, 0,
                   SFX(fc_dropout_backward_block)(dy + lo, keep + lo, scale, dx + lo, hi - lo));
}

ptrdiff_t SFX(fc_sparse_softmax_xent)(const T *z, const int64_t *labels, ptrdiff_t rows,
                                      ptrdiff_t classes, T *grad, double *loss_sum)
{
    for (ptrdiff_t r = 0; r < rows; r++)
        if (labels[r] < 0 || labels[r] >= classes) return r;
    const double scale = 1.0 / (double)rows;
    double total = 0.0;
    for (ptrdiff_t r = 0; r < rows; r++) {
        const T *zr = z + r * classes;
        T *gr = grad + r * classes;
        double m = zr[0];
        for (ptrdiff_t j = 1; j < classes; j++) m = zr[j] > m ? zr[j] : m; /* (a NaN: NaN sums) */
        double s = 0.0;
        for (ptrdiff_t j = 0; j < classes; j++) s += exp((double)zr[j] - m);
        const double inv_s = 1.0 / s;
        /* exp again rather than kept: in T it would round before the division, and a double
         * buffer per row would be an allocation per call (a batch's logits: ~640 exp) */
        for (ptrdiff_t j = 0; j < classes; j++)
            gr[j] = (T)((exp((double)zr[j] - m) * inv_s - (j == labels[r] ? 1.0 : 0.0)) * scale);
        total += m + log(s) - (double)zr[labels[r]];
    }
    *loss_sum = total;
    return -1;
}

#endif /* FC_ELEMENTWISE_TEMPLATE */
