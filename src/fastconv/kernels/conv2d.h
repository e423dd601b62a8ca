/* 2-D convolution on NHWC input with an HWIO kernel (float32 and float64), forward and backward.
 *
 * Semantics are those of fastconv/reference/conv.py: groups split the input channels and the
 * filters group-major, explicit asymmetric padding, dilation, strides. All arrays are
 * C-contiguous and the arguments validated (see src/fastconv/conv.pyx); outputs may be
 * uninitialised: every element is written. Results are bit-identical for any num_threads.
 *
 * Return value: FC_CONV_OK, or FC_CONV_NOMEM when a workspace could not be allocated
 * (outputs are then unspecified).
 */
#ifndef FASTCONV_CONV2D_H
#define FASTCONV_CONV2D_H

#include "conv2d_params.h"
#include "kernel_common.h" /* FC_STREAM_MIN_BYTES */

enum { FC_CONV_OK = 0, FC_CONV_NOMEM = 1 };

/* Output activations fused into the forward pass, applied to each block as it is written:
 * none; ReLU as numpy.maximum(y, 0) (NaN kept, -0 -> +0); tanh (activation_impl.h: float32
 * to within 6.3 ulp, float64 the C library's). */
enum { FC_ACT_NONE = 0, FC_ACT_RELU = 1, FC_ACT_TANH = 2 };

#define FC_DECLARE_CONV2D(T, SFX)                                                              \
    /* y = act(conv(x, w) + bias), act one of FC_ACT_* below; bias may be NULL. */            \
    int fc_conv2d_forward_##SFX(const fc_conv2d_params *p, const T *x, const T *w,             \
                                const T *bias, int act, T *y, int num_threads);                \
    /* y = the max pooling of act(conv(x, w) + bias) in pool_h x pool_w windows with equal    \
     * strides and no padding: y is (N, OH / pool_h, OW / pool_w, F) (rounded down). The same  \
     * bits as the forward pass then fc_max_pool2d_forward; where the path allows, the         \
     * unpooled output is never written (it is pooled block by block as it is computed).      \
     * pool_h <= 0: no pooling, as fc_conv2d_forward. */                                       \
    int fc_conv2d_forward_max_pool_##SFX(const fc_conv2d_params *p, const T *x, const T *w,    \
                                         const T *bias, int act, ptrdiff_t pool_h,             \
                                         ptrdiff_t pool_w, T *y, int num_threads);             \
    /* Gradients for the output gradient dy; dx, dw and db may be NULL (not wanted; db needs  \
     * dw, which it is summed with). */                                                        \
    int fc_conv2d_backward_##SFX(const fc_conv2d_params *p, const T *dy, const T *x,           \
                                 const T *w, T *dx, T *dw, T *db, int num_threads);

FC_DECLARE_CONV2D(float, f32)
FC_DECLARE_CONV2D(double, f64)
#undef FC_DECLARE_CONV2D

/* Which optional paths the drivers may choose (bit mask; default all): the narrow and broad
 * GEMM tiles besides the wide ones (same results with any of them), and Winograd for 3x3
 * stride-1 layers (same results to rounding): F(2x2, 3x3), and F(4x4, 3x3) where it pays
 * if WINOGRAD4 is set too; flat rows for few filters or input channels (conv2d_flat_impl.h;
 * same results to rounding); the single-filter kernel for one filter (conv2d_dot_impl.h; same
 * results to rounding). For tests and benchmarks; set it only while no convolution runs.
 * Returns the previous mask. */
enum { FC_PATH_NARROW = 1, FC_PATH_BROAD = 2, FC_PATH_WINOGRAD = 4, FC_PATH_WINOGRAD4 = 8,
       FC_PATH_FLAT = 16, FC_PATH_DOT = 32, FC_PATH_ALL = 63,
       FC_PATH_WINOGRAD4_ALWAYS = 64 /* with WINOGRAD4: 4x4 tiles wherever Winograd runs */ };
int fc_conv2d_set_paths(int mask);
/* Vector length (elements) of the selected ISA's flat-row kernels: the flat path serves
 * layers with fewer filters than this (and at most 8 input channels; conv2d_flat_impl.h). */
int fc_conv2d_flat_lanes(int double_precision);
/* Outputs of at least FC_STREAM_MIN_BYTES (kernel_common.h) that the implicit GEMM writes
 * directly (no activation pass or pool reading them back) are stored with non-temporal stores
 * (FC_GEMM_STREAM in gemm.h). fc_conv2d_set_stream_min_bytes changes the threshold (0: every
 * such output; for tests) and returns the previous one; set it only while no convolution
 * runs. */
ptrdiff_t fc_conv2d_set_stream_min_bytes(ptrdiff_t bytes);
/* Makes the scratch allocations that threads make inside a parallel region fail, for the
 * threads whose bit (1 << thread number) is set in mask (0: none, the default), so that tests
 * reach the failure path: a call where one failed returns FC_CONV_NOMEM (paths whose threads
 * allocate nothing in the region, e.g. the one-channel weight gradient, are not affected).
 * Set it only while no convolution runs; returns the previous mask. */
int fc_conv2d_fail_thread_allocs(int mask);
/* How many allocations that mask has made fail so far (tests). */
ptrdiff_t fc_conv2d_thread_allocs_denied(void);

#endif /* FASTCONV_CONV2D_H */
