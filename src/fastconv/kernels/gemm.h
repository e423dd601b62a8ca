/* Register-blocked GEMM microkernels and depthwise kernels, one table per instruction set.
 *
 * Each ISA file (gemm_generic.c, gemm_avx2.c, gemm_avx512.c) keeps its kernels static and
 * exports only a getter for its table; dispatch.c picks one table at run time.
 *
 * Microkernel contract (T = float or double, MR x NR = the table's mr_* x nr_* for T):
 *   acc[i][j] = sum_{kk < k} A(i, kk) * B[kk * ldb + j]     for i < MR, j < NR
 *   c[i * ldc + j] = (accumulate ? c[i * ldc + j] : 0) + acc[i][j] + (bias ? bias[j] : 0)
 *                                                            for i < m <= MR, j < n <= NR
 * with accumulate = flags & FC_GEMM_ACCUMULATE; with flags & FC_GEMM_RELU, that value is then
 * rectified before it is stored: +0 where it is not greater than 0, NaN kept (the bits of
 * fc_relu_forward), so that a fused ReLU costs no pass over the output. With
 * flags & FC_GEMM_STREAM, whole tiles whose rows are whole 64-byte lines (c, ldc and the
 * tile's width) are written with non-temporal stores (the values are the same): for outputs
 * too large to stay in cache, the store then skips reading each line first. Only with a
 * tile's last values (never with a later ACCUMULATE on the same c), and the caller runs an
 * sfence (fc_store_fence) before any other thread reads C.
 * B holds k rows of NR readable values, ldb apart: a packed panel (ldb = NR, zero-padded past
 * the real columns, aligned to 64 bytes), or NR whole columns of a row-major matrix read in
 * place (ldb = its row length; no copy). (gemm_ind reads packed panels only.) The two
 * kernels differ in how A is read:
 *   gemm_rowa: A(i, kk) = a[i * lda + kk]  (rows of A, e.g. image patches, contiguous in kk);
 *              rows i >= m are never read.
 *   gemm_cola: A(i, kk) = a[kk * lda + i]  (MR contiguous values per step, e.g. a slice of
 *              a patch row); a[kk * lda + i] must be readable for all i < MR.
 *   gemm_ind:  indirect (no im2col copy): the reduction runs over `taps` segments of kc steps;
 *              A(i, t * kc + kk) = ind[t * MR + i][a_offset + kk], and segment t multiplies
 *              the B rows at b + t * b_tap_stride. All MR pointers of every segment must be
 *              readable (rows >= m repeat a real row; padding points at zeros). It computes
 *              `tiles` such tiles (m rows each): tile q with a_offset + q * a_step, its C
 *              rows from c + q * MR * ldc (tiles whose pointers differ by a fixed offset:
 *              consecutive pixels of a framed image, conv2d_impl.h).
 * Results for row i depend only on row i's data and k, never on m, n or the thread.
 */
#ifndef FASTCONV_GEMM_H
#define FASTCONV_GEMM_H

#include <stddef.h>
#include <stdint.h>

#include "conv2d_params.h"

/* The microkernels' `flags` (contract above). */
enum { FC_GEMM_ACCUMULATE = 1, FC_GEMM_RELU = 2, FC_GEMM_STREAM = 4 };

#define FC_DECLARE_KERNEL_TYPES(T, SFX)                                                        \
    typedef void (*fc_gemm_##SFX##_fn)(ptrdiff_t k, const T *a, ptrdiff_t lda, const T *b,     \
                                       ptrdiff_t ldb, T *c, ptrdiff_t ldc, int m, int n,       \
                                       int flags, const T *bias);                              \
    typedef void (*fc_gemm_ind_##SFX##_fn)(ptrdiff_t taps, ptrdiff_t kc, const T *const *ind,  \
                                           ptrdiff_t a_offset, ptrdiff_t a_step,               \
                                           ptrdiff_t tiles, const T *b,                        \
                                           ptrdiff_t b_tap_stride, T *c, ptrdiff_t ldc, int m, \
                                           int n, int flags, const T *bias);                   \
    /* Depthwise (groups == C) forward: writes output row `row` = n * OH + oh (OW x F). */     \
    typedef void (*fc_dw_forward_##SFX##_fn)(const fc_conv2d_params *p, const T *x,            \
                                             const T *w, const T *bias, T *y, ptrdiff_t row);  \
    /* Depthwise input gradient: writes dx row `row` = n * H + h (W x C), by gathering. */     \
    typedef void (*fc_dw_backward_data_##SFX##_fn)(const fc_conv2d_params *p, const T *dy,     \
                                                   const T *w, T *dx, ptrdiff_t row);          \
    /* Depthwise weight gradient: adds the contributions of output pixels [m0, m1) in order   \
     * to dw (KH*KW x F) and, if db is not NULL, to db (F). */                                 \
    typedef void (*fc_dw_backward_weights_##SFX##_fn)(const fc_conv2d_params *p, const T *x,   \
                                                      const T *dy, T *dw, T *db, ptrdiff_t m0, \
                                                      ptrdiff_t m1);                           \
    /* Winograd F(m x m, 3x3) (m = 2: 4x4 blocks, m = 4: 6x6 blocks; a = m + 2) input         \
     * transform of one a x a block: v[xi * vstride + c] = (B^T d_c B)[xi] for c < C,          \
     * d_c[i][j] = src[i * a + j][c]. Output transform: y_rows[i][j * F + f] =                 \
     * (A^T m_f A)[i][j] + bias[f] (bias may be NULL) for i < out_rows, j < out_cols (<= m),   \
     * m_f[xi] = mt[xi * mstride + f]. */                                                      \
    typedef void (*fc_wino_input_##SFX##_fn)(const T *const *src, ptrdiff_t C, T *v,           \
                                             ptrdiff_t vstride);                               \
    typedef void (*fc_wino_output_##SFX##_fn)(const T *mt, ptrdiff_t mstride, ptrdiff_t F,    \
                                              const T *bias, T *const *y_rows, int out_rows,   \
                                              int out_cols);                                   \
    /* Weight-gradient transform of an m x m block of output gradients: d[xi * xi_stride +    \
     * (f / nr) * panel_stride + f % nr] = (A e_f A^T)[xi], e_f[i][j] = src[i * m + j][f]. */  \
    typedef void (*fc_wino_dy_##SFX##_fn)(const T *const *src, ptrdiff_t F, T *d,              \
                                          ptrdiff_t xi_stride, ptrdiff_t nr,                   \
                                          ptrdiff_t panel_stride);                              \
    /* Winograd kernel transforms, in double and rounded once (a = 4: F(2x2, 3x3), a = 6:      \
     * F(4x4, 3x3)). wino_kernel packs U = G g G^T of channel c, panel pj as the GEMMs' B      \
     * operands: upack[((xi * panels + pj) * C + c) * nr + j] = U_xi[c][pj * nr + j] (0 past   \
     * F), g the 3x3 slice w[i, j, c, f] (HWIO, C x F), or with `transposed` w[2 - i, 2 - j,   \
     * f, c] (w then 3 x 3 x F x C). wino_kernel_grad: dw[(i * 3 + j) * ds + e] = (G^T Q_e      \
     * G)[i][j] for e < n <= FC_WINO_RUN, Q_e[r][s] = q[(r * a + s) * qs + e]. */             \
    typedef void (*fc_wino_kernel_##SFX##_fn)(const T *w, int transposed, ptrdiff_t C,         \
                                              ptrdiff_t F, int a, ptrdiff_t nr,                \
                                              ptrdiff_t panels, ptrdiff_t c, ptrdiff_t pj,     \
                                              T *upack);                                       \
    typedef void (*fc_wino_kernel_grad_##SFX##_fn)(const T *q, ptrdiff_t qs, int a, T *dw,     \
                                                   ptrdiff_t ds, ptrdiff_t n);                 \
    /* Flat-row convolution (conv2d_flat_impl.h; VL = the table's flat_vl, PV = period * VL,  \
     * 1 <= period <= 8): out[e] = bpat[e % PV] (0 if bpat is NULL) + sum_{t < taps}         \
     * src[t][e] * wpat[t * PV + e % PV] for e < len; reads src[t][e] for e < len + 24 * VL  \
     * (slack). ld > 0 says the taps are kernel rows of row_taps whose \
     * sources lie one wide row of ld values apart (src[t + row_taps] == src[t] + ld) and len \
     * is whole rows: the kernel may then compute two rows at once (same bits). */             \
    typedef void (*fc_flat_conv_##SFX##_fn)(ptrdiff_t taps, const T *const *src,               \
                                            const T *wpat, int period, const T *bpat, T *out,  \
                                            ptrdiff_t len, ptrdiff_t row_taps, ptrdiff_t ld);  \
    /* acc[t * PV + i] += sum_{r < rows, e < len, e % PV == i} src[t][offset + r * src_ld + e] \
     * * dy[r * dy_ld + e] and, if db is not NULL, db[i] += the same sums of dy (reads      \
     * nothing of a row past len). */                                                          \
    typedef void (*fc_flat_dw_##SFX##_fn)(ptrdiff_t taps, const T *const *src,                 \
                                          ptrdiff_t offset, ptrdiff_t src_ld, const T *dy,     \
                                          ptrdiff_t dy_ld, ptrdiff_t rows, ptrdiff_t len,      \
                                          int period, T *acc, T *db);                          \
    /* dst[q * R + r] = src[q * stride] for q < n, r < R; may write VL - 1 values past. */    \
    typedef void (*fc_flat_expand_##SFX##_fn)(const T *src, ptrdiff_t stride, ptrdiff_t n,     \
                                              ptrdiff_t R, T *dst);                             \
    /* Few-filter convolution (conv2d_dot_impl.h): y[q * F + f] = sum_{t < runs}              \
     * sum_{k < len} src[t][q * step + k] * w[t][f * wstep + k] for q < m,                   \
     * f < F <= FC_DOT_MAX_F. */                                                              \
    typedef void (*fc_dot_runs_##SFX##_fn)(ptrdiff_t runs, ptrdiff_t len, const T *const *src, \
                                           const T *const *w, ptrdiff_t wstep, int F,          \
                                           ptrdiff_t step, ptrdiff_t m, T *y);                 \
    /* y[i] = tanh(y[i]) for i < n, in place (activation_impl.h: the fused activation). */   \
    typedef void (*fc_act_tanh_##SFX##_fn)(T *y, ptrdiff_t n);                                 \
    /* dst[i] += src[i] for i < n. */                                                          \
    typedef void (*fc_add_into_##SFX##_fn)(T *dst, const T *src, ptrdiff_t n);                 \
    /* dst[q * F + f] = the first maximum (NaN kept) of the ph x pw window q of src (rows lds  \
     * apart, pixels F apart), for q < windows, f < cols (a convolution's fused max pool).    */ \
    typedef void (*fc_pool_max_##SFX##_fn)(const T *src, ptrdiff_t lds, ptrdiff_t ph,          \
                                           ptrdiff_t pw, ptrdiff_t windows, ptrdiff_t F,       \
                                           ptrdiff_t cols, T *dst);                            \
    /* Weight gradient of a one-channel, stride-1, undilated convolution (conv2d_flat_simd_impl.h), \
     * F a multiple of the vector length: dw[(i * kw + j) * F + f] = the sum, pixel by pixel in  \
     * order, over output rows r0 <= r < r1 (r = n * oh_n + oh) and columns ow < ow_n of         \
     * xf[(n * hf + oh + i) * wpc + ow + j] * dy[(r * ow_n + ow) * F + f] (framed images), and \
     * if db is not NULL db[f] = the same pixels' sum of dy[(r * ow_n + ow) * F + f], in order. */ \
    typedef void (*fc_c1_dw_##SFX##_fn)(const T *xf, ptrdiff_t wpc, ptrdiff_t hf,               \
                                        ptrdiff_t oh_n, ptrdiff_t ow_n, ptrdiff_t kh,           \
                                        ptrdiff_t kw, const T *dy, ptrdiff_t F, ptrdiff_t r0,   \
                                        ptrdiff_t r1, T *dw, T *db);                            \
    /* dst[c] += sum over r < rows, in order, of src[r * cols + c], for c < cols. */            \
    typedef void (*fc_add_rows_##SFX##_fn)(T *dst, const T *src, ptrdiff_t rows, ptrdiff_t cols);

FC_DECLARE_KERNEL_TYPES(float, f32)
FC_DECLARE_KERNEL_TYPES(double, f64)
#undef FC_DECLARE_KERNEL_TYPES

typedef struct {
    const char *name; /* "generic", "avx2", "avx512" */
    int mr_f32, nr_f32, mr_f64, nr_f64;
    fc_gemm_f32_fn gemm_rowa_f32, gemm_cola_f32;
    fc_gemm_f64_fn gemm_rowa_f64, gemm_cola_f64;
    fc_gemm_ind_f32_fn gemm_ind_f32;
    fc_gemm_ind_f64_fn gemm_ind_f64;
    /* The same three kernels with one vector of columns and more rows, for GEMMs with few
     * columns (e.g. 6 or 16 filters), where most of an NR-wide tile would be padding. A table
     * without such kernels repeats the ones above. */
    int mr_n_f32, nr_n_f32, mr_n_f64, nr_n_f64;
    fc_gemm_f32_fn gemm_rowa_n_f32, gemm_cola_n_f32;
    fc_gemm_f64_fn gemm_rowa_n_f64, gemm_cola_n_f64;
    fc_gemm_ind_f32_fn gemm_ind_n_f32;
    fc_gemm_ind_f64_fn gemm_ind_n_f64;
    /* The same three kernels with more vectors of columns and fewer rows, for GEMMs with many
     * columns (>= 64 filters): each broadcast A value feeds more multiply-adds, and a tile
     * covers every filter of the layer in one pass over its input rows. A table without such
     * kernels repeats the wide ones. */
    int mr_b_f32, nr_b_f32, mr_b_f64, nr_b_f64;
    fc_gemm_f32_fn gemm_rowa_b_f32, gemm_cola_b_f32;
    fc_gemm_f64_fn gemm_rowa_b_f64, gemm_cola_b_f64;
    fc_gemm_ind_f32_fn gemm_ind_b_f32;
    fc_gemm_ind_f64_fn gemm_ind_b_f64;
    fc_dw_forward_f32_fn dw_forward_f32;
    fc_dw_forward_f64_fn dw_forward_f64;
    fc_dw_backward_data_f32_fn dw_backward_data_f32;
    fc_dw_backward_data_f64_fn dw_backward_data_f64;
    fc_dw_backward_weights_f32_fn dw_backward_weights_f32;
    fc_dw_backward_weights_f64_fn dw_backward_weights_f64;
    fc_dot_runs_f32_fn dot_runs_f32;
    fc_dot_runs_f64_fn dot_runs_f64;
    fc_wino_input_f32_fn wino_input_f32;
    fc_wino_input_f64_fn wino_input_f64;
    fc_wino_output_f32_fn wino_output_f32;
    fc_wino_output_f64_fn wino_output_f64;
    fc_wino_input_f32_fn wino4_input_f32;
    fc_wino_input_f64_fn wino4_input_f64;
    fc_wino_output_f32_fn wino4_output_f32;
    fc_wino_output_f64_fn wino4_output_f64;
    fc_wino_dy_f32_fn wino_dy_f32, wino4_dy_f32;
    fc_wino_dy_f64_fn wino_dy_f64, wino4_dy_f64;
    fc_wino_kernel_f32_fn wino_kernel_f32;
    fc_wino_kernel_f64_fn wino_kernel_f64;
    fc_wino_kernel_grad_f32_fn wino_kernel_grad_f32;
    fc_wino_kernel_grad_f64_fn wino_kernel_grad_f64;
    int flat_vl_f32, flat_vl_f64; /* the flat-row kernels' vector length (elements) */
    fc_flat_conv_f32_fn flat_conv_f32;
    fc_flat_conv_f64_fn flat_conv_f64;
    fc_flat_dw_f32_fn flat_dw_f32;
    fc_flat_dw_f64_fn flat_dw_f64;
    fc_flat_expand_f32_fn flat_expand_f32;
    fc_flat_expand_f64_fn flat_expand_f64;
    fc_add_into_f32_fn add_into_f32;
    fc_add_into_f64_fn add_into_f64;
    fc_add_rows_f32_fn add_rows_f32;
    fc_add_rows_f64_fn add_rows_f64;
    fc_act_tanh_f32_fn act_tanh_f32;
    fc_act_tanh_f64_fn act_tanh_f64;
    fc_pool_max_f32_fn pool_max_f32;
    fc_pool_max_f64_fn pool_max_f64;
    fc_c1_dw_f32_fn c1_dw_f32;
    fc_c1_dw_f64_fn c1_dw_f64;
} fc_kernel_table;

/* The table of an ISA file, whose kernels (gemm_simd_impl.h, conv2d_depthwise_impl.h,
 * conv2d_dot_impl.h, winograd_simd_impl.h and conv2d_flat_simd_impl.h, included once per
 * dtype, and activation_impl.h) carry the usual static names; the narrow kernels are those
 * with suffixes n32 / n64 (f32n / f64n, or f32 / f64 where there are none), the broad ones
 * b32 / b64 likewise. */
#define FC_KERNEL_TABLE(name, mr_f32, nr_f32, mr_f64, nr_f64, mr_n32, nr_n32, mr_n64, nr_n64,  \
                        n32, n64, mr_b32, nr_b32, mr_b64, nr_b64, b32, b64, vl32, vl64)        \
    {                                                                                           \
        name, mr_f32, nr_f32, mr_f64, nr_f64,                                                   \
        gemm_rowa_f32, gemm_cola_f32, gemm_rowa_f64, gemm_cola_f64,                             \
        gemm_ind_f32, gemm_ind_f64,                                                             \
        mr_n32, nr_n32, mr_n64, nr_n64,                                                         \
        gemm_rowa_##n32, gemm_cola_##n32, gemm_rowa_##n64, gemm_cola_##n64,                     \
        gemm_ind_##n32, gemm_ind_##n64,                                                         \
        mr_b32, nr_b32, mr_b64, nr_b64,                                                         \
        gemm_rowa_##b32, gemm_cola_##b32, gemm_rowa_##b64, gemm_cola_##b64,                     \
        gemm_ind_##b32, gemm_ind_##b64,                                                         \
        dw_forward_f32, dw_forward_f64,                                                         \
        dw_backward_data_f32, dw_backward_data_f64,                                             \
        dw_backward_weights_f32, dw_backward_weights_f64,                                       \
        dot_runs_f32, dot_runs_f64,                                                             \
        wino_input_f32, wino_input_f64, wino_output_f32, wino_output_f64,                       \
        wino4_input_f32, wino4_input_f64, wino4_output_f32, wino4_output_f64,                   \
        wino_dy_f32, wino4_dy_f32, wino_dy_f64, wino4_dy_f64,                                   \
        wino_kernel_f32, wino_kernel_f64, wino_kernel_grad_f32, wino_kernel_grad_f64,           \
        vl32, vl64, flat_conv_f32, flat_conv_f64, flat_dw_f32, flat_dw_f64,                     \
        flat_expand_f32, flat_expand_f64, add_into_f32, add_into_f64, add_rows_f32,             \
        add_rows_f64, act_tanh_f32, act_tanh_f64, pool_max_f32, pool_max_f64,                   \
        c1_dw_f32, c1_dw_f64,                                                                   \
    }

/* (c, f) values per call of wino_kernel_grad (vectorised over them) */
#define FC_WINO_RUN 64

/* Most filters of the few-filter kernel (dot_runs). */
#define FC_DOT_MAX_F 8

/* Largest MR and NR of any table: drivers size their scratch tiles with these. */
#define FC_MAX_MR 24
#define FC_MAX_NR 64

/* Table getters; the AVX ones return NULL when that file was compiled without the ISA flags
 * (non-x86 builds). They do not check the CPU: dispatch.c does. */
const fc_kernel_table *fc_kernels_generic(void);
const fc_kernel_table *fc_kernels_avx2(void);
const fc_kernel_table *fc_kernels_avx512(void);

#endif /* FASTCONV_GEMM_H */
