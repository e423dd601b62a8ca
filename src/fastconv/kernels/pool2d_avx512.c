/* Pooling kernels compiled with AVX-512 F/VL/BW/DQ (setup.py adds the flags for *_avx512.c
 * files); called only when dispatch.c selected the avx512 path. Without those flags this is
 * the baseline code under the avx512 names, never selected. */
#define FC_POOL_ISA avx512
#include "pool2d_impl.h"
