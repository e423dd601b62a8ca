/* The per-instruction-set pooling kernels (pool2d_impl.h compiled by pool2d_generic.c,
 * pool2d_avx2.c and pool2d_avx512.c): same signatures as pool2d.h, names suffixed with the
 * element type and the ISA, e.g. fc_max_pool2d_forward_f32_avx512. Only pool2d.c calls them. */
#ifndef FASTCONV_POOL2D_ISA_H
#define FASTCONV_POOL2D_ISA_H

#include "pool2d.h"

#define FC_POOL_NAME_(name, type, isa) name##_##type##_##isa
#define FC_POOL_NAME(name, type, isa) FC_POOL_NAME_(name, type, isa) /* expands isa first */

FC_DECLARE_POOL2D(float, f32_generic)
FC_DECLARE_POOL2D(double, f64_generic)
FC_DECLARE_POOL2D(float, f32_avx2)
FC_DECLARE_POOL2D(double, f64_avx2)
FC_DECLARE_POOL2D(float, f32_avx512)
FC_DECLARE_POOL2D(double, f64_avx512)

#endif /* FASTCONV_POOL2D_ISA_H */
