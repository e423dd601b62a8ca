/* Portable C kernels: the baseline path on any CPU (SSE2 on x86-64, whatever the compiler
 * vectorises elsewhere). Tile: 4 x 8 for float32, 4 x 4 for float64.
 */
#include "gemm.h"

#define GENERIC_MR 4

#define FC_DEFINE_GENERIC_GEMM(T, SFX, NR)                                                     \
    static void store_tile_##SFX(T acc[GENERIC_MR][NR], T *c, ptrdiff_t ldc, int m, int n,     \
                                 int accumulate, const T *bias)                                \
    {                                                                                          \
        for (int i = 0; i < m; i++) {                                                          \
            T *row = c + (ptrdiff_t)i * ldc;                                                   \
            for (int j = 0; j < n; j++) {                                                      \
                T r = acc[i][j];                                                               \
                if (accumulate) r = row[j] + r;                                                \
                if (bias != NULL) r = r + bias[j];                                             \
                row[j] = r;                                                                    \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    static void gemm_rowa_##SFX(ptrdiff_t k, const T *a, ptrdiff_t lda, const T *b, T *c,      \
                                ptrdiff_t ldc, int m, int n, int accumulate, const T *bias)    \
    {                                                                                          \
        T acc[GENERIC_MR][NR] = {{0}};                                                         \
        const T *rows[GENERIC_MR];                                                             \
        for (int i = 0; i < GENERIC_MR; i++) rows[i] = a + (ptrdiff_t)(i < m ? i : m - 1) * lda; \
        for (ptrdiff_t kk = 0; kk < k; kk++) {                                                 \
            const T *bk = b + kk * NR;                                                         \
            for (int i = 0; i < GENERIC_MR; i++) {                                             \
                T av = rows[i][kk];                                                            \
                for (int j = 0; j < NR; j++) acc[i][j] += av * bk[j];                          \
            }                                                                                  \
        }                                                                                      \
        store_tile_##SFX(acc, c, ldc, m, n, accumulate, bias);                                 \
    }                                                                                          \
    static void gemm_cola_##SFX(ptrdiff_t k, const T *a, ptrdiff_t lda, const T *b, T *c,      \
                                ptrdiff_t ldc, int m, int n, int accumulate, const T *bias)    \
    {                                                                                          \
        T acc[GENERIC_MR][NR] = {{0}};                                                         \
        for (ptrdiff_t kk = 0; kk < k; kk++) {                                                 \
            const T *ak = a + kk * lda, *bk = b + kk * NR;                                     \
            for (int i = 0; i < GENERIC_MR; i++) {                                             \
                T av = ak[i];                                                                  \
                for (int j = 0; j < NR; j++) acc[i][j] += av * bk[j];                          \
            }                                                                                  \
        }                                                                                      \
        store_tile_##SFX(acc, c, ldc, m, n, accumulate, bias);                                 \
    }                                                                                          \
    static void gemm_ind_##SFX(ptrdiff_t taps, ptrdiff_t kc, const T *const *ind,              \
                               ptrdiff_t a_offset, const T *b, ptrdiff_t b_tap_stride, T *c,   \
                               ptrdiff_t ldc, int m, int n, int accumulate, const T *bias)     \
    {                                                                                          \
        T acc[GENERIC_MR][NR] = {{0}};                                                         \
        for (ptrdiff_t t = 0; t < taps; t++) {                                                 \
            const T *bt = b + t * b_tap_stride;                                                \
            for (ptrdiff_t kk = 0; kk < kc; kk++) {                                            \
                const T *bk = bt + kk * NR;                                                    \
                for (int i = 0; i < GENERIC_MR; i++) {                                         \
                    T av = ind[t * GENERIC_MR + i][a_offset + kk];                             \
                    for (int j = 0; j < NR; j++) acc[i][j] += av * bk[j];                      \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
        store_tile_##SFX(acc, c, ldc, m, n, accumulate, bias);                                 \
    }

FC_DEFINE_GENERIC_GEMM(float, f32, 8)
FC_DEFINE_GENERIC_GEMM(double, f64, 4)

/* The depthwise kernels' vector abstraction, one element wide: plain C. */
#define FC_VLEN 1
#define FC_VZERO() ((FC_T)0)
#define FC_VLOAD(p) (*(p))
#define FC_VSET1(x) (x)
#define FC_VFMA(a, b, c) ((a) * (b) + (c))
#define FC_VADD(a, b) ((a) + (b))
#define FC_VSTORE(p, v) (*(p) = (v))
#define FC_VLOAD_N(p, n) ((void)(n), *(p)) /* never used: no partial vectors of one element */
#define FC_VSTORE_N(p, v, n) ((void)(n), *(p) = (v))

#define FC_T float
#define FC_VT float
#define FC_SFX f32
#include "conv2d_depthwise_impl.h"
#undef FC_T
#undef FC_VT
#undef FC_SFX
#define FC_T double
#define FC_VT double
#define FC_SFX f64
#include "conv2d_depthwise_impl.h"

static const fc_kernel_table generic_table = {
    "generic", GENERIC_MR, 8, GENERIC_MR, 4,
    gemm_rowa_f32, gemm_cola_f32, gemm_rowa_f64, gemm_cola_f64,
    gemm_ind_f32, gemm_ind_f64,
    dw_forward_f32, dw_forward_f64,
    dw_backward_data_f32, dw_backward_data_f64,
    dw_backward_weights_f32, dw_backward_weights_f64,
};

const fc_kernel_table *fc_kernels_generic(void) { return &generic_table; }
