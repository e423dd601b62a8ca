/* AVX2 + FMA kernels (compiled with -mavx2 -mfma; chosen at run time by dispatch.c).
 *
 * float32: 6 x 16 tile (12 ymm accumulators), float64: 6 x 8; narrow kernels for few
 * columns: 12 x 8 and 12 x 4. Column tails: maskload with a lane mask built from the count,
 * stores in pieces (store_n32 / store_n64).
 */
#include "gemm.h"

#if defined(__AVX2__) && (defined(__FMA__) || defined(_MSC_VER))
#include <immintrin.h>

#include "simd_tail.h"

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

/* Stores of lanes [0, n), 0 < n < vector length, in pieces (simd_tail.h): a masked
 * tail store took half of a col2im addition's time (30-value runs, LeNet-5 C2 input gradient). */
static inline void store_n32(float *p, __m256 v, int n) { fc_store_n256_ps(p, v, n); }
static inline void store_n64(double *p, __m256d v, int n)
{
    fc_store_n256_ps((float *)p, _mm256_castpd_ps(v), 2 * n);
}

/* Sums of the lanes (the few-filter kernel, conv2d_dot_impl.h): halves added pairwise. */
static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
static inline double hsum4(__m256d v)
{
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

/* out[i] = hsum8(v[i]) for i < n <= 8 (the few-filter kernel, conv2d_dot_impl.h), the bits of
 * each sum the same: a transposition adding the same pairs in the same order for every slot
 * (halves, then (l0 + l2) + (l1 + l3)). Its lane 4h + e ends up holding slot h + 2e, so slot
 * h + 2e takes v[4h + e] (slots past n: zeros, never mixed with the others). */
static inline void hsum8_block(const __m256 *v, int n, float *out)
{
    if (n <= 2) {
        for (int i = 0; i < n; i++) out[i] = hsum8(v[i]);
        return;
    }
    __m256 x[8], s[4], t[2];
    for (int h = 0; h < 2; h++)
        for (int e = 0; e < 4; e++) x[h + 2 * e] = 4 * h + e < n ? v[4 * h + e] : _mm256_setzero_ps();
    for (int k = 0; k < 4; k++) /* halves added: half 0 slot 2k, half 1 slot 2k + 1 */
        s[k] = _mm256_add_ps(_mm256_permute2f128_ps(x[2 * k], x[2 * k + 1], 0x20),
                             _mm256_permute2f128_ps(x[2 * k], x[2 * k + 1], 0x31));
    for (int k = 0; k < 2; k++) /* lanes (l0 + l2), (l1 + l3) */
        t[k] = _mm256_add_ps(_mm256_shuffle_ps(s[2 * k], s[2 * k + 1], 0x44),
                             _mm256_shuffle_ps(s[2 * k], s[2 * k + 1], 0xEE));
    const __m256 r = _mm256_add_ps(_mm256_shuffle_ps(t[0], t[1], 0x88), _mm256_shuffle_ps(t[0], t[1], 0xDD));
    if (n == 8) _mm256_storeu_ps(out, r);
    else store_n32(out, r, n);
}
/* The same for 4 doubles (hsum4's order): lanes 0..3 hold slots 0, 2, 1, 3. */
static inline void hsum4_block(const __m256d *v, int n, double *out)
{
    if (n <= 2) {
        for (int i = 0; i < n; i++) out[i] = hsum4(v[i]);
        return;
    }
    const __m256d x0 = v[0], x1 = v[2], x2 = v[1], x3 = n > 3 ? v[3] : _mm256_setzero_pd();
    const __m256d s0 = _mm256_add_pd(_mm256_permute2f128_pd(x0, x1, 0x20), _mm256_permute2f128_pd(x0, x1, 0x31));
    const __m256d s1 = _mm256_add_pd(_mm256_permute2f128_pd(x2, x3, 0x20), _mm256_permute2f128_pd(x2, x3, 0x31));
    const __m256d r = _mm256_hadd_pd(s0, s1);
    if (n == 4) _mm256_storeu_pd(out, r);
    else store_n64(out, r, n);
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
#define FC_VSTREAM(p, v) _mm256_stream_ps(p, v)
#define FC_VLOAD_N(p, n) _mm256_maskload_ps(p, lanes32(n))
#define FC_VSTORE_N(p, v, n) store_n32(p, v, n)
#define FC_VHSUM(v) hsum8(v)
#define FC_VHSUM_BLOCK(v, n, out) hsum8_block(v, n, out)
/* the later value where greater or NaN: max(a, m) is a where a > m, else m (m on ties and
 * NaNs), then a where a is NaN (3 instructions; pool2d_impl.h's vmax) */
#define FC_VMAX_NAN(m, a) _mm256_blendv_ps(_mm256_max_ps(a, m), a, _mm256_cmp_ps(a, a, _CMP_UNORD_Q))
/* lanes of v by an index vector (see gemm_avx512.c) */
#define FC_VIT __m256i
#define FC_VPERMUTE(v, idx) _mm256_permutevar8x32_ps(v, idx)
#define FC_VREPEAT_IDX(k, R)                                                                  \
    _mm256_cvttps_epi32(_mm256_mul_ps(_mm256_add_ps(_mm256_set1_ps((float)(k) * 8.0f + 0.5f), \
                                                    _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7)),   \
                                      _mm256_set1_ps(1.0f / (float)(R))))
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
#define FC_VSTREAM(p, v) _mm256_stream_pd(p, v)
#define FC_VLOAD_N(p, n) _mm256_maskload_pd(p, lanes64(n))
#define FC_VSTORE_N(p, v, n) store_n64(p, v, n)
#define FC_VHSUM(v) hsum4(v)
#define FC_VHSUM_BLOCK(v, n, out) hsum4_block(v, n, out)
#define FC_VMAX_NAN(m, a) _mm256_blendv_pd(_mm256_max_pd(a, m), a, _mm256_cmp_pd(a, a, _CMP_UNORD_Q))
#define FC_TILE_SFX f64
#define FC_TILE_MR 6
#define FC_TILE_NARROW_SFX f64n
#define FC_TILE_NARROW_MR 12
#include "gemm_simd_tiles.h"

#include "activation_impl.h"

/* tanh of 8 lanes (activation_impl.h's formula, divided exactly). */
static inline __m256 tanh8(__m256 x)
{
    const __m256 one = _mm256_set1_ps(1.0f), top = _mm256_set1_ps(FC_TANH_ONE_AT);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 a = _mm256_andnot_ps(sign, x);
    const __m256 ac = _mm256_min_ps(top, a); /* NaN stays NaN (min returns its 2nd operand) */
    const __m256 u = _mm256_mul_ps(ac, ac);
    __m256 p, q;
    FC_TANH_PQ(_mm256_fmadd_ps, _mm256_set1_ps, u, p, q);
    __m256 t = _mm256_min_ps(one, _mm256_div_ps(_mm256_mul_ps(ac, p), q)); /* NaN kept */
    t = _mm256_blendv_ps(t, one, _mm256_cmp_ps(a, top, _CMP_GE_OQ));
    return _mm256_or_ps(t, _mm256_and_ps(sign, x));
}

static void act_tanh_f32(float *y, ptrdiff_t n)
{
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16) { /* two independent chains per step */
        const __m256 a = tanh8(_mm256_loadu_ps(y + i)), b = tanh8(_mm256_loadu_ps(y + i + 8));
        _mm256_storeu_ps(y + i, a);
        _mm256_storeu_ps(y + i + 8, b);
    }
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, tanh8(_mm256_loadu_ps(y + i)));
    if (i < n) {
        store_n32(y + i, tanh8(_mm256_maskload_ps(y + i, lanes32((int)(n - i)))), (int)(n - i));
    }
}

static const fc_kernel_table avx2_table =
    FC_KERNEL_TABLE("avx2", 6, 16, 6, 8, 12, 8, 12, 4, f32n, f64n, 6, 16, 6, 8, f32, f64, 8, 4);

const fc_kernel_table *fc_kernels_avx2(void) { return &avx2_table; }

#else /* built without AVX2 flags (non-x86 or a compiler without them) */

const fc_kernel_table *fc_kernels_avx2(void) { return NULL; }

#endif
