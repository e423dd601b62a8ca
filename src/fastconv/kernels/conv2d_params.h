/* Geometry of one 2-D convolution on NHWC input with an HWIO kernel.
 *
 * Shared by the convolution driver (conv2d.c) and the per-ISA kernel files (gemm_*.c), which
 * compile the depthwise kernels of conv2d_depthwise_impl.h once per instruction set.
 */
#ifndef FASTCONV_CONV2D_PARAMS_H
#define FASTCONV_CONV2D_PARAMS_H

#include <stddef.h>

typedef struct {
    ptrdiff_t n, h, w, c;           /* input (N, H, W, C) */
    ptrdiff_t kh, kw, f;            /* kernel (KH, KW, C / groups, F) */
    ptrdiff_t out_h, out_w;         /* output (N, OH, OW, F) */
    ptrdiff_t stride_h, stride_w;
    ptrdiff_t pad_top, pad_bottom, pad_left, pad_right;
    ptrdiff_t dil_h, dil_w;
    ptrdiff_t groups;
} fc_conv2d_params;

#endif /* FASTCONV_CONV2D_PARAMS_H */
