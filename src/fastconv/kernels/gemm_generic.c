/* Baseline kernels, usable on any CPU. On x86-64 they use SSE2 (part of the x86-64 baseline,
 * so no extra flags) through the vector template of gemm_simd_impl.h: 6 x 8 tile for
 * float32, 6 x 4 for float64. Elsewhere they are portable C (4 x 8 / 4 x 4) that the
 * compiler may vectorise.
 */
#include "gemm.h"

#if (defined(__SSE2__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 2)) \
    && !defined(FASTCONV_PORTABLE_C) /* -DFASTCONV_PORTABLE_C: test the plain C path */
#include <emmintrin.h>

#define FC_FLAT_REGS 16 /* xmm0-15 */
#define GENERIC_FLAT_VL_F32 4
#define GENERIC_FLAT_VL_F64 2

#include "simd_tail.h"

/* Partial vectors in pieces (simd_tail.h; SSE2 has no masked loads and stores); a double is a
 * pair of floats. */
static inline __m128 sse_load_n_ps(const float *p, int n) { return fc_load_low_ps(p, n); }
static inline void sse_store_n_ps(float *p, __m128 v, int n) { fc_store_low_ps(p, v, n); }
static inline __m128d sse_load_n_pd(const double *p, int n)
{
    return _mm_castps_pd(fc_load_low_ps((const float *)p, 2 * n));
}
static inline void sse_store_n_pd(double *p, __m128d v, int n)
{
    fc_store_low_ps((float *)p, _mm_castpd_ps(v), 2 * n);
}

/* max(a, m) is a where a > m, else m (ties, NaNs); a NaN a is then taken by mask */
static inline __m128 sse_max_nan_ps(__m128 m, __m128 a)
{
    const __m128 nan = _mm_cmpunord_ps(a, a);
    return _mm_or_ps(_mm_and_ps(nan, a), _mm_andnot_ps(nan, _mm_max_ps(a, m)));
}
static inline __m128d sse_max_nan_pd(__m128d m, __m128d a)
{
    const __m128d nan = _mm_cmpunord_pd(a, a);
    return _mm_or_pd(_mm_and_pd(nan, a), _mm_andnot_pd(nan, _mm_max_pd(a, m)));
}

#define FC_T float
#define FC_SFX f32
#define FC_VT __m128
#define FC_VLEN 4
#define FC_MR 6
#define FC_NV 2
#define FC_VZERO() _mm_setzero_ps()
#define FC_VLOAD(p) _mm_loadu_ps(p)
#define FC_VSET1(x) _mm_set1_ps(x)
#define FC_VFMA(a, b, c) _mm_add_ps(_mm_mul_ps(a, b), c)
#define FC_VADD(a, b) _mm_add_ps(a, b)
#define FC_VSUB(a, b) _mm_sub_ps(a, b)
#define FC_VSTORE(p, v) _mm_storeu_ps(p, v)
#define FC_VLOAD_N(p, n) sse_load_n_ps(p, n)
#define FC_VSTORE_N(p, v, n) sse_store_n_ps(p, v, n)
/* (SSE2 has no blendv: the later value where greater or NaN, by and/andnot/or) */
#define FC_VMAX_NAN(m, a) sse_max_nan_ps(m, a)
#include "gemm_simd_impl.h"
#include "conv2d_depthwise_impl.h"
#include "conv2d_dot_impl.h"
#include "winograd_simd_impl.h"
#include "conv2d_flat_simd_impl.h"
#include "gemm_simd_undef.h"

#define FC_T double
#define FC_SFX f64
#define FC_VT __m128d
#define FC_VLEN 2
#define FC_MR 6
#define FC_NV 2
#define FC_VZERO() _mm_setzero_pd()
#define FC_VLOAD(p) _mm_loadu_pd(p)
#define FC_VSET1(x) _mm_set1_pd(x)
#define FC_VFMA(a, b, c) _mm_add_pd(_mm_mul_pd(a, b), c)
#define FC_VADD(a, b) _mm_add_pd(a, b)
#define FC_VSUB(a, b) _mm_sub_pd(a, b)
#define FC_VSTORE(p, v) _mm_storeu_pd(p, v)
#define FC_VLOAD_N(p, n) sse_load_n_pd(p, n)
#define FC_VSTORE_N(p, v, n) sse_store_n_pd(p, v, n)
#define FC_VMAX_NAN(m, a) sse_max_nan_pd(m, a)
#include "gemm_simd_impl.h"
#include "conv2d_depthwise_impl.h"
#include "conv2d_dot_impl.h"
#include "winograd_simd_impl.h"
#include "conv2d_flat_simd_impl.h"

#define GENERIC_MR 6
#define GENERIC_NR_F32 8
#define GENERIC_NR_F64 4

#else /* portable C */

#define FC_FLAT_REGS 16 /* scalar accumulators */
#define GENERIC_FLAT_VL_F32 1
#define GENERIC_FLAT_VL_F64 1

#define GENERIC_MR 4
#define GENERIC_NR_F32 8
#define GENERIC_NR_F64 4

#define FC_DEFINE_GENERIC_GEMM(T, SFX, NR)                                                     \
    static void store_tile_##SFX(T acc[GENERIC_MR][NR], T *c, ptrdiff_t ldc, int m, int n,     \
                                 int flags, const T *bias)                                     \
    {                                                                                          \
        for (int i = 0; i < m; i++) {                                                          \
            T *row = c + (ptrdiff_t)i * ldc;                                                   \
            for (int j = 0; j < n; j++) {                                                      \
                T r = acc[i][j];                                                               \
                if (flags & FC_GEMM_ACCUMULATE) r = row[j] + r;                                \
                if (bias != NULL) r = r + bias[j];                                             \
                if ((flags & FC_GEMM_RELU) && !(r > 0 || r != r)) r = 0; /* relu's bits */    \
                row[j] = r;                                                                    \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    static void gemm_rowa_##SFX(ptrdiff_t k, const T *a, ptrdiff_t lda, const T *b,             \
                                ptrdiff_t ldb, T *c, ptrdiff_t ldc, int m, int n,              \
                                int flags, const T *bias)                                      \
    {                                                                                          \
        T acc[GENERIC_MR][NR] = {{0}};                                                         \
        const T *rows[GENERIC_MR];                                                             \
        for (int i = 0; i < GENERIC_MR; i++) rows[i] = a + (ptrdiff_t)(i < m ? i : m - 1) * lda; \
        for (ptrdiff_t kk = 0; kk < k; kk++) {                                                 \
            const T *bk = b + kk * ldb;                                                        \
            for (int i = 0; i < GENERIC_MR; i++) {                                             \
                T av = rows[i][kk];                                                            \
                for (int j = 0; j < NR; j++) acc[i][j] += av * bk[j];                          \
            }                                                                                  \
        }                                                                                      \
        store_tile_##SFX(acc, c, ldc, m, n, flags, bias);                                      \
    }                                                                                          \
    static void gemm_cola_##SFX(ptrdiff_t k, const T *a, ptrdiff_t lda, const T *b,             \
                                ptrdiff_t ldb, T *c, ptrdiff_t ldc, int m, int n,              \
                                int flags, const T *bias)                                      \
    {                                                                                          \
        T acc[GENERIC_MR][NR] = {{0}};                                                         \
        for (ptrdiff_t kk = 0; kk < k; kk++) {                                                 \
            const T *ak = a + kk * lda, *bk = b + kk * ldb;                                    \
            for (int i = 0; i < GENERIC_MR; i++) {                                             \
                T av = ak[i];                                                                  \
                for (int j = 0; j < NR; j++) acc[i][j] += av * bk[j];                          \
            }                                                                                  \
        }                                                                                      \
        store_tile_##SFX(acc, c, ldc, m, n, flags, bias);                                      \
    }                                                                                          \
    static void gemm_ind_##SFX(ptrdiff_t taps, ptrdiff_t kc, const T *const *ind,              \
                               ptrdiff_t a_offset, ptrdiff_t a_step, ptrdiff_t tiles,          \
                               const T *b, ptrdiff_t b_tap_stride, T *c, ptrdiff_t ldc, int m, \
                               int n, int flags, const T *bias)                                \
    {                                                                                          \
        for (ptrdiff_t q = 0; q < tiles; q++, a_offset += a_step, c += GENERIC_MR * ldc) {     \
            T acc[GENERIC_MR][NR] = {{0}};                                                     \
            for (ptrdiff_t t = 0; t < taps; t++) {                                             \
                const T *bt = b + t * b_tap_stride;                                            \
                const T *rows[GENERIC_MR];                                                     \
                for (int i = 0; i < GENERIC_MR; i++) rows[i] = ind[t * GENERIC_MR + i] + a_offset; \
                for (ptrdiff_t kk = 0; kk < kc; kk++) {                                        \
                    const T *bk = bt + kk * NR;                                                \
                    for (int i = 0; i < GENERIC_MR; i++) {                                     \
                        T av = rows[i][kk];                                                    \
                        for (int j = 0; j < NR; j++) acc[i][j] += av * bk[j];                  \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
            store_tile_##SFX(acc, c, ldc, m, n, flags, bias);                                  \
        }                                                                                      \
    }

FC_DEFINE_GENERIC_GEMM(float, f32, GENERIC_NR_F32)
FC_DEFINE_GENERIC_GEMM(double, f64, GENERIC_NR_F64)

/* The depthwise kernels' vector abstraction, one element wide: plain C. */
#define FC_VLEN 1
#define FC_VZERO() ((FC_T)0)
#define FC_VLOAD(p) (*(p))
#define FC_VSET1(x) (x)
#define FC_VFMA(a, b, c) ((a) * (b) + (c))
#define FC_VADD(a, b) ((a) + (b))
#define FC_VSUB(a, b) ((a) - (b))
#define FC_VSTORE(p, v) (*(p) = (v))
#define FC_VLOAD_N(p, n) ((void)(n), *(p)) /* never used: no partial vectors of one element */
#define FC_VSTORE_N(p, v, n) ((void)(n), *(p) = (v))
#define FC_VMAX_NAN(m, a) (((a) > (m) || (a) != (a)) ? (a) : (m))

#define FC_T float
#define FC_VT float
#define FC_SFX f32
#include "conv2d_depthwise_impl.h"
#include "conv2d_dot_impl.h"
#include "winograd_simd_impl.h"
#include "conv2d_flat_simd_impl.h"
#undef FC_T
#undef FC_VT
#undef FC_SFX
#define FC_T double
#define FC_VT double
#define FC_SFX f64
#include "conv2d_depthwise_impl.h"
#include "conv2d_dot_impl.h"
#include "winograd_simd_impl.h"
#include "conv2d_flat_simd_impl.h"

#endif

#include "activation_impl.h"

static void act_tanh_f32(float *y, ptrdiff_t n) { act_tanh_portable_f32(y, n); }

static const fc_kernel_table generic_table =
    FC_KERNEL_TABLE("generic", GENERIC_MR, GENERIC_NR_F32, GENERIC_MR, GENERIC_NR_F64,
                    GENERIC_MR, GENERIC_NR_F32, GENERIC_MR, GENERIC_NR_F64, f32, f64,
                    GENERIC_MR, GENERIC_NR_F32, GENERIC_MR, GENERIC_NR_F64, f32, f64,
                    GENERIC_FLAT_VL_F32, GENERIC_FLAT_VL_F64);

const fc_kernel_table *fc_kernels_generic(void) { return &generic_table; }
