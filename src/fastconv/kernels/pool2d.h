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
 */
#ifndef FASTCONV_POOL2D_H
#define FASTCONV_POOL2D_H

#include <stddef.h>

typedef struct {
    ptrdiff_t n, h, w, c;         /* input shape (N, H, W, C) */
    ptrdiff_t out_h, out_w;       /* output spatial shape */
    ptrdiff_t pool_h, pool_w;     /* window size */
    ptrdiff_t stride_h, stride_w;
    ptrdiff_t pad_top, pad_left;  /* bottom/right padding is implied by out_h/out_w */
} fc_pool2d_geometry;

#define FC_DECLARE_POOL2D(T, SFX)                                                              \
    void fc_max_pool2d_forward_##SFX(const T *x, T *out, const fc_pool2d_geometry *g,         \
                                     int num_threads);                                         \
    void fc_max_pool2d_backward_##SFX(const T *dy, const T *x, T *dx,                         \
                                      const fc_pool2d_geometry *g, int num_threads);           \
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

#undef FC_DECLARE_POOL2D

#endif /* FASTCONV_POOL2D_H */
