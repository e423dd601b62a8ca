/* Pooling kernels compiled with AVX2 + FMA (setup.py adds the flags for *_avx2.c files);
 * called only when dispatch.c selected the avx2 path. Without those flags (a compiler or
 * platform that lacks them) this is the baseline code under the avx2 names, never selected. */
#define FC_POOL_ISA avx2
#include "pool2d_impl.h"
