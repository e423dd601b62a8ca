/* Batch normalization over the rows of an (M, C) array, per column (channel), float32/float64.
 *
 * All arrays are C-contiguous; outputs may be uninitialised: every element is written. The
 * kernels assume validated arguments (see src/fastconv/batchnorm.pyx): M, C >= 1, epsilon > 0.
 * Column statistics are reduced over a fixed tiling of the rows that depends on (M, C) only
 * and merged in a fixed order, so results are bit-identical for any num_threads.
 *
 * Semantics are those of fastconv/reference/normalization.py (biased variance). The
 * functions return 0, or -1 when their scratch memory (about 16 bytes per channel per
 * FC_BN_MIN_CHUNK_ROWS rows at most) cannot be allocated; nothing is written then.
 *
 * Every kernel exists once per instruction set (batchnorm_impl.h); these names call the one
 * that dispatch.c selected (FASTCONV_ISA forces one).
 */
#ifndef FASTCONV_BATCHNORM_H
#define FASTCONV_BATCHNORM_H

#include <stddef.h>

#include "kernel_common.h" /* FC_STREAM_MIN_BYTES */

/* Outputs of at least this many bytes (FC_STREAM_MIN_BYTES, kernel_common.h, by default) are
 * written with non-temporal stores by the elementwise passes where their rows are whole
 * 64-byte lines (the same values). Sets the threshold (0: every such output; for tests and
 * benchmarks) and returns the previous one; set it only while no batch norm runs. */
ptrdiff_t fc_batch_norm_set_stream_min_bytes(ptrdiff_t bytes);
extern ptrdiff_t fc_bn_stream_min_bytes; /* (read by the kernels) */

#define FC_DECLARE_BATCHNORM(T, SFX)                                                            \
    /* y = (x - mean) / sqrt(var + eps) * gamma + beta with the batch mean and biased var. */  \
    int fc_batch_norm_forward_training_##SFX(const T *x, const T *gamma, const T *beta,       \
                                             double epsilon, T *y, T *mean, T *var,            \
                                             ptrdiff_t rows, ptrdiff_t cols, int num_threads); \
    /* Same with given (moving) mean and var. */                                               \
    int fc_batch_norm_forward_inference_##SFX(const T *x, const T *gamma, const T *beta,      \
                                              const T *mean, const T *var, double epsilon,     \
                                              T *y, ptrdiff_t rows, ptrdiff_t cols,            \
                                              int num_threads);                                \
    /* dx, dgamma, dbeta of training-mode batch norm whose batch statistics were mean/var. */  \
    int fc_batch_norm_backward_##SFX(const T *dy, const T *x, const T *gamma, const T *mean,  \
                                     const T *var, double epsilon, T *dx, T *dgamma,           \
                                     T *dbeta, ptrdiff_t rows, ptrdiff_t cols,                 \
                                     int num_threads);                                         \
    /* Fused with a following ReLU: y = max(batch norm, 0), the value of the plain forward    */ \
    /* passed through fc_relu_forward, written in the same pass.                              */ \
    int fc_batch_norm_relu_forward_training_##SFX(const T *x, const T *gamma, const T *beta,  \
                                                  double epsilon, T *y, T *mean, T *var,       \
                                                  ptrdiff_t rows, ptrdiff_t cols,              \
                                                  int num_threads);                            \
    int fc_batch_norm_relu_forward_inference_##SFX(const T *x, const T *gamma, const T *beta, \
                                                   const T *mean, const T *var,                \
                                                   double epsilon, T *y, ptrdiff_t rows,       \
                                                   ptrdiff_t cols, int num_threads);           \
    /* Backward of relu(batch norm) with batch statistics: dy is the ReLU output's gradient;  */ \
    /* equals fc_relu_backward then fc_batch_norm_backward bit for bit.                       */ \
    int fc_batch_norm_relu_backward_##SFX(const T *dy, const T *x, const T *gamma,            \
                                          const T *beta, const T *mean, const T *var,          \
                                          double epsilon, T *dx, T *dgamma, T *dbeta,          \
                                          ptrdiff_t rows, ptrdiff_t cols, int num_threads);    \
    /* dx of relu(batch norm with given statistics): (dy * (y_bn >= 0)) * factor.            */ \
    int fc_batch_norm_relu_backward_inference_##SFX(const T *dy, const T *x, const T *gamma,  \
                                                    const T *beta, const T *mean,              \
                                                    const T *var, double epsilon,              \
                                                    const T *factor, T *dx, ptrdiff_t rows,    \
                                                    ptrdiff_t cols, int num_threads);

FC_DECLARE_BATCHNORM(float, f32)
FC_DECLARE_BATCHNORM(double, f64)

#endif /* FASTCONV_BATCHNORM_H */
