/* Batch-norm kernels compiled with AVX-512 F/VL/BW/DQ flags (setup.py adds them for
 * *_avx512.c files); called only when dispatch.c selected the avx512 path. Without those flags
 * this is the baseline code under the avx512 names, never selected. */
#define FC_BN_ISA avx512
#include "batchnorm_impl.h"
