/* AVX-512 kernels (compiled with -mavx512f/vl/bw/dq -mfma; chosen at run time by dispatch.c).
 *
 * float32: 12 x 32 tile (24 zmm accumulators), float64: 12 x 16; narrow kernels for few
 * columns: 24 x 16 and 24 x 8, broad kernels for many: 6 x 64 and 6 x 32 (24 accumulators
 * each). Column tails use masks.
 */
#include "gemm.h"

#if defined(__AVX512F__) && defined(__AVX512DQ__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>

#define FC_FLAT_REGS 32 /* zmm0-31 */

/* ---- float32: wide 12 x 32 and narrow 24 x 16 tiles ---- */
#define FC_T float
#define FC_VT __m512
#define FC_VLEN 16
#define FC_VZERO() _mm512_setzero_ps()
#define FC_VLOAD(p) _mm512_loadu_ps(p)
#define FC_VSET1(x) _mm512_set1_ps(x)
#define FC_VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define FC_VADD(a, b) _mm512_add_ps(a, b)
#define FC_VSUB(a, b) _mm512_sub_ps(a, b)
#define FC_VSTORE(p, v) _mm512_storeu_ps(p, v)
#define FC_VLOAD_N(p, n) _mm512_maskz_loadu_ps((__mmask16)((1u << (n)) - 1u), p)
#define FC_VSTORE_N(p, v, n) _mm512_mask_storeu_ps(p, (__mmask16)((1u << (n)) - 1u), v)
#define FC_TILE_SFX f32
#define FC_TILE_MR 12
#define FC_TILE_NARROW_SFX f32n
#define FC_TILE_NARROW_MR 24
#define FC_TILE_BROAD_SFX f32b
#define FC_TILE_BROAD_MR 6
#include "gemm_simd_tiles.h"

/* ---- float64: wide 12 x 16 and narrow 24 x 8 tiles ---- */
#define FC_T double
#define FC_VT __m512d
#define FC_VLEN 8
#define FC_VZERO() _mm512_setzero_pd()
#define FC_VLOAD(p) _mm512_loadu_pd(p)
#define FC_VSET1(x) _mm512_set1_pd(x)
#define FC_VFMA(a, b, c) _mm512_fmadd_pd(a, b, c)
#define FC_VADD(a, b) _mm512_add_pd(a, b)
#define FC_VSUB(a, b) _mm512_sub_pd(a, b)
#define FC_VSTORE(p, v) _mm512_storeu_pd(p, v)
#define FC_VLOAD_N(p, n) _mm512_maskz_loadu_pd((__mmask8)((1u << (n)) - 1u), p)
#define FC_VSTORE_N(p, v, n) _mm512_mask_storeu_pd(p, (__mmask8)((1u << (n)) - 1u), v)
#define FC_TILE_SFX f64
#define FC_TILE_MR 12
#define FC_TILE_NARROW_SFX f64n
#define FC_TILE_NARROW_MR 24
#define FC_TILE_BROAD_SFX f64b
#define FC_TILE_BROAD_MR 6
#include "gemm_simd_tiles.h"

static const fc_kernel_table avx512_table =
    FC_KERNEL_TABLE("avx512", 12, 32, 12, 16, 24, 16, 24, 8, f32n, f64n, 6, 64, 6, 32, f32b, f64b, 16, 8);

const fc_kernel_table *fc_kernels_avx512(void) { return &avx512_table; }

#else /* built without AVX-512 flags (non-x86 or a compiler without them) */

const fc_kernel_table *fc_kernels_avx512(void) { return NULL; }

#endif
