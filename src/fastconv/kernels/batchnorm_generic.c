/* Batch-norm kernels for any x86-64 (SSE2) or other CPU: batchnorm_impl.h at the baseline ISA. */
#define FC_BN_ISA generic
#include "batchnorm_impl.h"
