/* Batch-norm entry points (batchnorm.h): each calls the kernel of the instruction set that
 * dispatch.c selected once per process (the best the CPU and OS support, or FASTCONV_ISA).
 * The kernels themselves are in batchnorm_impl.h, compiled once per ISA. */
#include "batchnorm_isa.h"
#include "dispatch.h"
#include "kernel_common.h"

ptrdiff_t fc_bn_stream_min_bytes = FC_STREAM_MIN_BYTES;

ptrdiff_t fc_batch_norm_set_stream_min_bytes(ptrdiff_t bytes)
{
    return fc_swap_stream_min_bytes(&fc_bn_stream_min_bytes, bytes);
}

/* Return name_<type>_<isa>(args...) for the selected ISA. */
#define FC_BN_CALL(name, type, ...)                                                \
    do {                                                                           \
        switch (fc_isa_selected()) {                                               \
        case FC_ISA_AVX512: return name##_##type##_avx512(__VA_ARGS__);            \
        case FC_ISA_AVX2: return name##_##type##_avx2(__VA_ARGS__);                \
        default: return name##_##type##_generic(__VA_ARGS__);                      \
        }                                                                          \
    } while (0)

#define FC_DEFINE_BATCHNORM(T, TY)                                                               \
    int fc_batch_norm_forward_training_##TY(const T *x, const T *gamma, const T *beta,          \
                                            double epsilon, T *y, T *mean, T *var,               \
                                            ptrdiff_t rows, ptrdiff_t cols, int nt)              \
    {                                                                                            \
        FC_BN_CALL(fc_batch_norm_forward_training, TY, x, gamma, beta, epsilon, y, mean, var,    \
                   rows, cols, nt);                                                              \
    }                                                                                            \
    int fc_batch_norm_forward_inference_##TY(const T *x, const T *gamma, const T *beta,         \
                                             const T *mean, const T *var, double epsilon, T *y,  \
                                             ptrdiff_t rows, ptrdiff_t cols, int nt)             \
    {                                                                                            \
        FC_BN_CALL(fc_batch_norm_forward_inference, TY, x, gamma, beta, mean, var, epsilon, y,   \
                   rows, cols, nt);                                                              \
    }                                                                                            \
    int fc_batch_norm_backward_##TY(const T *dy, const T *x, const T *gamma, const T *mean,     \
                                    const T *var, double epsilon, T *dx, T *dgamma, T *dbeta,    \
                                    ptrdiff_t rows, ptrdiff_t cols, int nt)                      \
    {                                                                                            \
        FC_BN_CALL(fc_batch_norm_backward, TY, dy, x, gamma, mean, var, epsilon, dx, dgamma,     \
                   dbeta, rows, cols, nt);                                                       \
    }                                                                                            \
    int fc_batch_norm_relu_forward_training_##TY(const T *x, const T *gamma, const T *beta,     \
                                                 double epsilon, T *y, T *mean, T *var,          \
                                                 ptrdiff_t rows, ptrdiff_t cols, int nt)         \
    {                                                                                            \
        FC_BN_CALL(fc_batch_norm_relu_forward_training, TY, x, gamma, beta, epsilon, y, mean,   \
                   var, rows, cols, nt);                                                         \
    }                                                                                            \
    int fc_batch_norm_relu_forward_inference_##TY(const T *x, const T *gamma, const T *beta,    \
                                                  const T *mean, const T *var, double epsilon,   \
                                                  T *y, ptrdiff_t rows, ptrdiff_t cols, int nt)  \
    {                                                                                            \
        FC_BN_CALL(fc_batch_norm_relu_forward_inference, TY, x, gamma, beta, mean, var,         \
                   epsilon, y, rows, cols, nt);                                                  \
    }                                                                                            \
    int fc_batch_norm_relu_backward_##TY(const T *dy, const T *x, const T *gamma,               \
                                         const T *beta, const T *mean, const T *var,             \
                                         double epsilon, T *dx, T *dgamma, T *dbeta,             \
                                         ptrdiff_t rows, ptrdiff_t cols, int nt)                 \
    {                                                                                            \
        FC_BN_CALL(fc_batch_norm_relu_backward, TY, dy, x, gamma, beta, mean, var, epsilon, dx, \
                   dgamma, dbeta, rows, cols, nt);                                               \
    }                                                                                            \
    int fc_batch_norm_relu_backward_inference_##TY(const T *dy, const T *x, const T *gamma,     \
                                                   const T *beta, const T *mean, const T *var,   \
                                                   double epsilon, const T *factor, T *dx,       \
                                                   ptrdiff_t rows, ptrdiff_t cols, int nt)       \
    {                                                                                            \
        FC_BN_CALL(fc_batch_norm_relu_backward_inference, TY, dy, x, gamma, beta, mean, var,    \
                   epsilon, factor, dx, rows, cols, nt);                                         \
    }

FC_DEFINE_BATCHNORM(float, f32)
FC_DEFINE_BATCHNORM(double, f64)
