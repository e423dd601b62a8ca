/* Run-time choice of the kernel table (generic / AVX2+FMA / AVX-512).
 *
 * The best path the CPU *and* the OS support (CPUID feature bits plus XGETBV for the saved
 * YMM/ZMM state) is chosen once. The environment variable FASTCONV_ISA forces a path:
 *   unset, "" or "auto"      -> best available
 *   "generic", "avx2", "avx512" -> that path; if the CPU/OS or the build lacks it,
 *                               fc_dispatch_init() reports FC_DISPATCH_UNSUPPORTED (the
 *                               Python modules then refuse to import with a RuntimeError:
 *                               a forced path is never silently replaced by another)
 *   anything else            -> FC_DISPATCH_BAD_NAME (ValueError at import)
 * Case and surrounding blanks are ignored.
 */
#ifndef FASTCONV_DISPATCH_H
#define FASTCONV_DISPATCH_H

#include "gemm.h"

enum { FC_ISA_GENERIC = 0, FC_ISA_AVX2 = 1, FC_ISA_AVX512 = 2, FC_ISA_COUNT = 3 };
enum { FC_DISPATCH_OK = 0, FC_DISPATCH_BAD_NAME = 1, FC_DISPATCH_UNSUPPORTED = 2 };

/* Resolve the table (idempotent; call once under the GIL at module import). */
int fc_dispatch_init(void);
/* The table in use (resolves on first use; the best available one if FASTCONV_ISA was bad). */
const fc_kernel_table *fc_get_kernels(void);
/* Index of the path in use, and whether a path is usable here (CPU + OS + build). */
int fc_isa_selected(void);
int fc_isa_supported(int isa);
const char *fc_isa_name(int isa);
/* The FASTCONV_ISA value seen at init ("" if unset), for error messages. */
const char *fc_isa_requested(void);

#endif /* FASTCONV_DISPATCH_H */
