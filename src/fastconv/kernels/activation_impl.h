/* Fused output activations of the convolution kernels (conv2d.h: FC_ACT_*), included by
 * each ISA file (gemm_generic.c, gemm_avx2.c, gemm_avx512.c), which builds its table's
 * act_tanh_f32 on these definitions.
 *
 * float32 tanh: tanh(x) = x P(x^2) / Q(x^2) with P, Q of degree 4 (a rational fit of tanh
 * on [0, 9] made for fastconv by iteratively reweighted least squares on the relative error:
 * 2.1e-8 in exact arithmetic), capped at 1; 1 for |x| >= 9 (tanh(9) is within 2 float32 ulp
 * of 1), the sign of x, NaN kept. Evaluated in float32: at most 6.3 ulp from the true tanh on 11 million
 * points of [-10, 10] (NumPy's own float32 tanh: 1.4 ulp; the largest errors, and a few-ulp
 * wobble instead of strict monotony, are near saturation, 6 < |x| < 9), ~18 vector
 * operations instead of the ~30 of an exp-based formula. float64 tanh: the C library's (used as written; the
 * layers fuse tanh for float32 only, see fastconv/layers/_common.py).
 */
#ifndef FASTCONV_ACTIVATION_IMPL_H
#define FASTCONV_ACTIVATION_IMPL_H

#include <math.h>
#include <stddef.h>

#define FC_TANH_P1 1.338102221e-01f
#define FC_TANH_P2 3.495583311e-03f
#define FC_TANH_P3 2.060900624e-05f
#define FC_TANH_P4 1.335456457e-08f
#define FC_TANH_Q1 4.671433568e-01f
#define FC_TANH_Q2 2.587696351e-02f
#define FC_TANH_Q3 3.285627172e-04f
#define FC_TANH_Q4 7.776516782e-07f
#define FC_TANH_ONE_AT 9.0f

/* p = P(u), q = Q(u) by Horner's rule, written once for the vector kernels: FMADD(a, b, c) =
 * a * b + c and SET1(v) a vector of v, in the ISA's intrinsics. */
#define FC_TANH_PQ(FMADD, SET1, u, p, q)                                                       \
    do {                                                                                       \
        p = FMADD(FMADD(FMADD(FMADD(SET1(FC_TANH_P4), u, SET1(FC_TANH_P3)), u,                 \
                              SET1(FC_TANH_P2)), u, SET1(FC_TANH_P1)), u, SET1(1.0f));         \
        q = FMADD(FMADD(FMADD(FMADD(SET1(FC_TANH_Q4), u, SET1(FC_TANH_Q3)), u,                 \
                              SET1(FC_TANH_Q2)), u, SET1(FC_TANH_Q1)), u, SET1(1.0f));         \
    } while (0)

static inline float fc_tanh_rational(float x)
{
    const float a = fabsf(x);
    if (a >= FC_TANH_ONE_AT) return copysignf(1.0f, x);
    const float u = a * a;
    const float p = (((FC_TANH_P4 * u + FC_TANH_P3) * u + FC_TANH_P2) * u + FC_TANH_P1) * u + 1.0f;
    const float q = (((FC_TANH_Q4 * u + FC_TANH_Q3) * u + FC_TANH_Q2) * u + FC_TANH_Q1) * u + 1.0f;
    const float t = a * p / q;
    return copysignf(t > 1.0f ? 1.0f : t, x); /* at most 1 (it exceeds 1 by 1 ulp near 9); NaN kept */
}

/* y[i] = tanh(y[i]), i < n, in place. */
static void act_tanh_portable_f32(float *y, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) y[i] = fc_tanh_rational(y[i]);
}

static void act_tanh_f64(double *y, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) y[i] = tanh(y[i]);
}

#endif /* FASTCONV_ACTIVATION_IMPL_H */
