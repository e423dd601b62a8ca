/* Batch-norm kernels compiled with AVX2 + FMA flags (setup.py adds them for *_avx2.c files);
 * called only when dispatch.c selected the avx2 path. Without those flags this is the
 * baseline code under the avx2 names, never selected. */
#define FC_BN_ISA avx2
#include "batchnorm_impl.h"
