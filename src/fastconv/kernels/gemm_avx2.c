/* AVX2 + FMA kernels (compiled with -mavx2 -mfma; chosen at run time by dispatch.c).
 *
 * float32: 6 x 16 tile (12 ymm accumulators), float64: 6 x 8; narrow kernels for few
 * columns: 12 x 8 and 12 x 4. Column tails use maskload / maskstore with a lane mask built
 * from the count.
 */
#include "gemm.h"

#if defined(__AVX2__) && (defined(__FMA__) || defined(_MSC_VER))
#include <immintrin.h>

#define FC_FLAT_REGS 16 /* ymm0-15 */

/* Lane masks: lanes [0, n) set, for 32-bit and 64-bit elements. */
static inline __m256i lanes32(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline __m256i lanes64(int n)
{
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
}

/* ---- float32: wide 6 x 16 and narrow 12 x 8 tiles ---- */
#define FC_T float
#define FC_VT __m256
#define FC_VLEN 8
#define FC_VZERO() _mm256_setzero_ps()
#define FC_VLOAD(p) _mm256_loadu_ps(p)
#define FC_VSET1(x) _mm256_set1_ps(x)
#define FC_VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define FC_VADD(a, b) _mm256_add_ps(a, b)
#define FC_VSUB(a, b) _mm256_sub_ps(a, b)
#define FC_VSTORE(p, v) _mm256_storeu_ps(p, v)
#define FC_VLOAD_N(p, n) _mm256_maskload_ps(p, lanes32(n))
#define FC_VSTORE_N(p, v, n) _mm256_maskstore_ps(p, lanes32(n), v)
#define FC_TILE_SFX f32
#define FC_TILE_MR 6
#define FC_TILE_NARROW_SFX f32n
#define FC_TILE_NARROW_MR 12
#include "gemm_simd_tiles.h"

/* ---- float64: wide 6 x 8 and narrow 12 x 4 tiles ---- */
#define FC_T double
#define FC_VT __m256d
#define FC_VLEN 4
#define FC_VZERO() _mm256_setzero_pd()
#define FC_VLOAD(p) _mm256_loadu_pd(p)
#define FC_VSET1(x) _mm256_set1_pd(x)
#define FC_VFMA(a, b, c) _mm256_fmadd_pd(a, b, c)
#define FC_VADD(a, b) _mm256_add_pd(a, b)
#define FC_VSUB(a, b) _mm256_sub_pd(a, b)
#define FC_VSTORE(p, v) _mm256_storeu_pd(p, v)
#define FC_VLOAD_N(p, n) _mm256_maskload_pd(p, lanes64(n))
#define FC_VSTORE_N(p, v, n) _mm256_maskstore_pd(p, lanes64(n), v)
#define FC_TILE_SFX f64
#define FC_TILE_MR 6
#define FC_TILE_NARROW_SFX f64n
#define FC_TILE_NARROW_MR 12
#include "gemm_simd_tiles.h"

static const fc_kernel_table avx2_table =
    FC_KERNEL_TABLE("avx2", 6, 16, 6, 8, 12, 8, 12, 4, f32n, f64n, 6, 16, 6, 8, f32, f64, 8, 4);

const fc_kernel_table *fc_kernels_avx2(void) { return &avx2_table; }

#else /* built without AVX2 flags (non-x86 or a compiler without them) */

const fc_kernel_table *fc_kernels_avx2(void) { return NULL; }

#endif
