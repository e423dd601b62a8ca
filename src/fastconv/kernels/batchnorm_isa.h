/* The per-instruction-set batch-norm kernels (batchnorm_impl.h compiled by
 * batchnorm_generic.c, batchnorm_avx2.c and batchnorm_avx512.c): same signatures as
 * batchnorm.h, names suffixed with the element type and the ISA. Only batchnorm.c calls them. */
#ifndef FASTCONV_BATCHNORM_ISA_H
#define FASTCONV_BATCHNORM_ISA_H

#include "batchnorm.h"

#define FC_BN_NAME_(name, type, isa) name##_##type##_##isa
#define FC_BN_NAME(name, type, isa) FC_BN_NAME_(name, type, isa) /* expands isa first */

FC_DECLARE_BATCHNORM(float, f32_generic)
FC_DECLARE_BATCHNORM(double, f64_generic)
FC_DECLARE_BATCHNORM(float, f32_avx2)
FC_DECLARE_BATCHNORM(double, f64_avx2)
FC_DECLARE_BATCHNORM(float, f32_avx512)
FC_DECLARE_BATCHNORM(double, f64_avx512)

#endif /* FASTCONV_BATCHNORM_ISA_H */
