/* 2-D max/average pooling and global pooling on NHWC arrays (float32 and float64).
 *
 * All arrays are C-contiguous; outputs may be uninitialised: every element is written.
 * The kernels assume validated arguments (see src/fastconv/pool.pyx): positive sizes,
 * 0 <= padding < pool size on each side (so every window holds at least one real pixel) and
 * out_h/out_w consistent with the padding. Results do not depend on num_threads.
 *
 * Semantics are those of fastconv/reference/pooling.py: max pooling propagates NaN and
 * sends each output's gradient to the first maximal element of its window (row-major),
 * average pooling divides by the number of real (unpadded) pixels of the window.
 *
 * Max pooling can also record, per output element, where its window's first maximum is
 * (fc_max_pool2d_forward_argmax) so that the backward pass reads that byte instead of x
 * (fc_max_pool2d_backward_argmax). The byte is the tap index (row - top) * pool_w +
 * (col - left) counted from the window's nominal, padded corner (top, left) =
 * (oh * stride_h - pad_top, ow * stride_w - pad_left), or FC_POOL_NO_ARGMAX when the
 * maximum is NaN (no element then takes the gradient, as in the reference). Windows may have
 * at most FC_POOL_MAX_ARGMAX_TAPS taps.
 *
 * Every kernel exists once per instruction set (pool2d_impl.h); these names call the one
 * that dispatch.c selected (FASTCONV_ISA forces one).
 */
#ifndef FASTCONV_POOL2D_H
#define FASTCONV_POOL2D_H

#include <stddef.h>

#include "kernel_common.h" /* FC_STREAM_MIN_BYTES */

/* The backwards write a dx of at least this many bytes (FC_STREAM_MIN_BYTES by default) with
 * non-temporal stores where every pixel's channels are whole 64-byte lines from a line (the
 * same values): with AVX-512 those of windows that do not overlap (2x2/2: max from the
 * argmax, average), on every x86 ISA those of overlapping windows (3x3/2), which accumulate a
 * few rows at a time in a per-thread stage and stream the finished rows. Sets the threshold
 * (0: every such dx; for tests and benchmarks) and returns the previous one; set it only
 * while no pooling runs. */
ptrdiff_t fc_pool2d_set_stream_min_bytes(ptrdiff_t bytes);
extern ptrdiff_t fc_pool_stream_min_bytes; /* (read by the kernels) */

typedef struct {
    ptrdiff_t n, h, w, c;         /* input shape (N, H, W, C) */
    ptrdiff_t out_h, out_w;       /* output spatial shape */
    ptrdiff_t pool_h, pool_w;     /* window size */
    ptrdiff_t stride_h, stride_w;
    ptrdiff_t pad_top, pad_left;  /* bottom/right padding is implied by out_h/out_w */
} fc_pool2d_geometry;

#define FC_POOL_NO_ARGMAX 255       /* argmax of a window whose maximum is NaN */
#define FC_POOL_MAX_ARGMAX_TAPS 255 /* largest pool_h * pool_w the argmax kernels accept */

#define FC_DECLARE_POOL2D(T, SFX)                                                              \
    void fc_max_pool2d_forward_##SFX(const T *x, T *out, const fc_pool2d_geometry *g,         \
                                     int num_threads);                                         \
    void fc_max_pool2d_backward_##SFX(const T *dy, const T *x, T *dx,                         \
                                      const fc_pool2d_geometry *g, int num_threads);           \
    /* out and argmax (both (n, out_h, out_w, c)); dx from dy and that argmax. */             \
    void fc_max_pool2d_forward_argmax_##SFX(const T *x, T *out, unsigned char *argmax,        \
                                            const fc_pool2d_geometry *g, int num_threads);     \
    void fc_max_pool2d_backward_argmax_##SFX(const T *dy, const unsigned char *argmax, T *dx, \
                                             const fc_pool2d_geometry *g, int num_threads);    \
    /* fc_max_pool2d_forward_argmax of max((x - shift) * scale + bias, 0) (per channel: the   \
     * batch norm + ReLU before the pooling, whose output is not written). */                  \
    void fc_max_pool2d_forward_argmax_bn_relu_##SFX(const T *x, const T *shift,                \
                                                    const T *scale, const T *bias, T *out,     \
                                                    unsigned char *argmax,                     \
                                                    const fc_pool2d_geometry *g,               \
                                                    int num_threads);                          \
    void fc_avg_pool2d_forward_##SFX(const T *x, T *out, const fc_pool2d_geometry *g,         \
                                     int num_threads);                                         \
    void fc_avg_pool2d_backward_##SFX(const T *dy, T *dx, const fc_pool2d_geometry *g,        \
                                      int num_threads);                                        \
    /* Global pooling: x/dx (n, h, w, c), out/dy (n, c). */                                    \
    void fc_global_avg_pool2d_forward_##SFX(const T *x, T *out, ptrdiff_t n, ptrdiff_t h,     \
                                            ptrdiff_t w, ptrdiff_t c, int num_threads);        \
    void fc_global_avg_pool2d_backward_##SFX(const T *dy, T *dx, ptrdiff_t n, ptrdiff_t h,    \
                                             ptrdiff_t w, ptrdiff_t c, int num_threads);       \
    void fc_global_max_pool2d_forward_##SFX(const T *x, T *out, ptrdiff_t n, ptrdiff_t h,     \
                                            ptrdiff_t w, ptrdiff_t c, int num_threads);        \
    void fc_global_max_pool2d_backward_##SFX(const T *dy, const T *x, T *dx, ptrdiff_t n,     \
                                             ptrdiff_t h, ptrdiff_t w, ptrdiff_t c,            \
                                             int num_threads);

FC_DECLARE_POOL2D(float, f32)
FC_DECLARE_POOL2D(double, f64)

#endif /* FASTCONV_POOL2D_H */
