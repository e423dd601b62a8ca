/* Pooling kernels for any x86-64 (SSE2) or other CPU: pool2d_impl.h at the baseline ISA. */
#define FC_POOL_ISA generic
#include "pool2d_impl.h"
