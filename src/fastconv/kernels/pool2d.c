/* 2-D pooling entry points (pool2d.h): each calls the kernel of the instruction set that
 * dispatch.c selected once per process (the best the CPU and OS support, or FASTCONV_ISA).
 * The kernels themselves are in pool2d_impl.h, compiled once per ISA. */
#include "pool2d_isa.h"
#include "dispatch.h"

ptrdiff_t fc_pool_stream_min_bytes = FC_STREAM_MIN_BYTES;

ptrdiff_t fc_pool2d_set_stream_min_bytes(ptrdiff_t bytes)
{
    return fc_swap_stream_min_bytes(&fc_pool_stream_min_bytes, bytes);
}

/* Call name_<type>_<isa>(args...) for the selected ISA. */
#define FC_POOL_CALL(name, type, ...)                                              \
    do {                                                                           \
        switch (fc_isa_selected()) {                                               \
        case FC_ISA_AVX512: name##_##type##_avx512(__VA_ARGS__); break;            \
        case FC_ISA_AVX2: name##_##type##_avx2(__VA_ARGS__); break;                \
        default: name##_##type##_generic(__VA_ARGS__); break;                      \
        }                                                                          \
    } while (0)

#define FC_DEFINE_POOL2D(T, TY)                                                                  \
    void fc_max_pool2d_forward_##TY(const T *x, T *out, const fc_pool2d_geometry *g, int nt)    \
    {                                                                                            \
        FC_POOL_CALL(fc_max_pool2d_forward, TY, x, out, g, nt);                                  \
    }                                                                                            \
    void fc_max_pool2d_backward_##TY(const T *dy, const T *x, T *dx,                            \
                                     const fc_pool2d_geometry *g, int nt)                        \
    {                                                                                            \
        FC_POOL_CALL(fc_max_pool2d_backward, TY, dy, x, dx, g, nt);                              \
    }                                                                                            \
    void fc_max_pool2d_forward_argmax_##TY(const T *x, T *out, unsigned char *argmax,           \
                                           const fc_pool2d_geometry *g, int nt)                  \
    {                                                                                            \
        FC_POOL_CALL(fc_max_pool2d_forward_argmax, TY, x, out, argmax, g, nt);                   \
    }                                                                                            \
    void fc_max_pool2d_forward_argmax_bn_relu_##TY(const T *x, const T *shift, const T *scale, \
                                                   const T *bias, T *out, unsigned char *argmax,\
                                                   const fc_pool2d_geometry *g, int nt)         \
    {                                                                                            \
        FC_POOL_CALL(fc_max_pool2d_forward_argmax_bn_relu, TY, x, shift, scale, bias, out,       \
                     argmax, g, nt);                                                             \
    }                                                                                            \
    void fc_max_pool2d_backward_argmax_##TY(const T *dy, const unsigned char *argmax, T *dx,    \
                                            const fc_pool2d_geometry *g, int nt)                 \
    {                                                                                            \
        FC_POOL_CALL(fc_max_pool2d_backward_argmax, TY, dy, argmax, dx, g, nt);                  \
    }                                                                                            \
    void fc_avg_pool2d_forward_##TY(const T *x, T *out, const fc_pool2d_geometry *g, int nt)    \
    {                                                                                            \
        FC_POOL_CALL(fc_avg_pool2d_forward, TY, x, out, g, nt);                                  \
    }                                                                                            \
    void fc_avg_pool2d_backward_##TY(const T *dy, T *dx, const fc_pool2d_geometry *g, int nt)   \
    {                                                                                            \
        FC_POOL_CALL(fc_avg_pool2d_backward, TY, dy, dx, g, nt);                                 \
    }                                                                                            \
    void fc_global_avg_pool2d_forward_##TY(const T *x, T *out, ptrdiff_t n, ptrdiff_t h,        \
                                           ptrdiff_t w, ptrdiff_t c, int nt)                     \
    {                                                                                            \
        FC_POOL_CALL(fc_global_avg_pool2d_forward, TY, x, out, n, h, w, c, nt);                  \
    }                                                                                            \
    void fc_global_avg_pool2d_backward_##TY(const T *dy, T *dx, ptrdiff_t n, ptrdiff_t h,       \
                                            ptrdiff_t w, ptrdiff_t c, int nt)                    \
    {                                                                                            \
        FC_POOL_CALL(fc_global_avg_pool2d_backward, TY, dy, dx, n, h, w, c, nt);                 \
    }                                                                                            \
    void fc_global_max_pool2d_forward_##TY(const T *x, T *out, ptrdiff_t n, ptrdiff_t h,        \
                                           ptrdiff_t w, ptrdiff_t c, int nt)                     \
    {                                                                                            \
        FC_POOL_CALL(fc_global_max_pool2d_forward, TY, x, out, n, h, w, c, nt);                  \
    }                                                                                            \
    void fc_global_max_pool2d_backward_##TY(const T *dy, const T *x, T *dx, ptrdiff_t n,        \
                                            ptrdiff_t h, ptrdiff_t w, ptrdiff_t c, int nt)       \
    {                                                                                            \
        FC_POOL_CALL(fc_global_max_pool2d_backward, TY, dy, x, dx, n, h, w, c, nt);              \
    }

FC_DEFINE_POOL2D(float, f32)
FC_DEFINE_POOL2D(double, f64)
