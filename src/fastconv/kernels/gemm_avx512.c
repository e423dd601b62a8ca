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

/* Lane sums for the few-filter kernel (conv2d_dot_impl.h). One vector: 128-bit quarters
 * (q0 + q2) + (q1 + q3), then lanes (l0 + l2) + (l1 + l3), the order the block form below
 * gives every slot (and GCC's _mm512_reduce_add_ps / _pd). */
static inline float hsum16_one(__m512 v)
{
    const __m512 h = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0xEE));
    const __m128 s = _mm_add_ps(_mm512_castps512_ps128(h), _mm512_extractf32x4_ps(h, 1));
    const __m128 u = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(u, _mm_movehdup_ps(u)));
}
static inline double hsum8_one(__m512d v)
{
    const __m512d h = _mm512_add_pd(v, _mm512_shuffle_f64x2(v, v, 0xEE));
    const __m128d s = _mm_add_pd(_mm512_castpd512_pd128(h), _mm512_extractf64x2_pd(h, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

/* out[i] = hsum16_one(v[i]) for i < n <= 16, the bits of each sum the same: a transposition
 * that adds the same pairs in the same order for every slot (31 shuffles and 15 additions
 * for 16 sums, against 4 + 4 each alone). Its lane 4j + e ends up holding slot j + 4e, so
 * slot j + 4e takes v[4j + e] (slots past n: zeros, never mixed with the others). */
static inline void hsum16_block(const __m512 *v, int n, float *out)
{
    if (n <= 2) {
        for (int i = 0; i < n; i++) out[i] = hsum16_one(v[i]);
        return;
    }
    __m512 x[16], s[8], t[4], u[2];
    for (int j = 0; j < 4; j++)
        for (int e = 0; e < 4; e++) x[j + 4 * e] = 4 * j + e < n ? v[4 * j + e] : _mm512_setzero_ps();
    for (int k = 0; k < 8; k++) /* quarters: (q0 + q2), (q1 + q3) of two slots */
        s[k] = _mm512_add_ps(_mm512_shuffle_f32x4(x[2 * k], x[2 * k + 1], 0x44),
                             _mm512_shuffle_f32x4(x[2 * k], x[2 * k + 1], 0xEE));
    for (int k = 0; k < 4; k++) /* quarter j: slot 4k + j's four lanes */
        t[k] = _mm512_add_ps(_mm512_shuffle_f32x4(s[2 * k], s[2 * k + 1], 0x88),
                             _mm512_shuffle_f32x4(s[2 * k], s[2 * k + 1], 0xDD));
    for (int k = 0; k < 2; k++) /* lanes (l0 + l2), (l1 + l3) */
        u[k] = _mm512_add_ps(_mm512_shuffle_ps(t[2 * k], t[2 * k + 1], 0x44),
                             _mm512_shuffle_ps(t[2 * k], t[2 * k + 1], 0xEE));
    const __m512 r = _mm512_add_ps(_mm512_shuffle_ps(u[0], u[1], 0x88), _mm512_shuffle_ps(u[0], u[1], 0xDD));
    _mm512_mask_storeu_ps(out, (__mmask16)((1u << n) - 1u), r);
}
/* The same for 8 doubles: lane 2j + e holds slot j + 4e, which takes v[2j + e]. */
static inline void hsum8_block(const __m512d *v, int n, double *out)
{
    if (n <= 2) {
        for (int i = 0; i < n; i++) out[i] = hsum8_one(v[i]);
        return;
    }
    __m512d x[8], s[4], t[2];
    for (int j = 0; j < 4; j++)
        for (int e = 0; e < 2; e++) x[j + 4 * e] = 2 * j + e < n ? v[2 * j + e] : _mm512_setzero_pd();
    for (int k = 0; k < 4; k++)
        s[k] = _mm512_add_pd(_mm512_shuffle_f64x2(x[2 * k], x[2 * k + 1], 0x44),
                             _mm512_shuffle_f64x2(x[2 * k], x[2 * k + 1], 0xEE));
    for (int k = 0; k < 2; k++)
        t[k] = _mm512_add_pd(_mm512_shuffle_f64x2(s[2 * k], s[2 * k + 1], 0x88),
                             _mm512_shuffle_f64x2(s[2 * k], s[2 * k + 1], 0xDD));
    const __m512d r = _mm512_add_pd(_mm512_shuffle_pd(t[0], t[1], 0x00), _mm512_shuffle_pd(t[0], t[1], 0xFF));
    _mm512_mask_storeu_pd(out, (__mmask8)((1u << n) - 1u), r);
}

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
#define FC_VSTREAM(p, v) _mm512_stream_ps(p, v)
#define FC_VLOAD_N(p, n) _mm512_maskz_loadu_ps((__mmask16)((1u << (n)) - 1u), p)
#define FC_VSTORE_N(p, v, n) _mm512_mask_storeu_ps(p, (__mmask16)((1u << (n)) - 1u), v)
#define FC_VHSUM(v) _mm512_reduce_add_ps(v)
#define FC_VHSUM_BLOCK(v, n, out) hsum16_block(v, n, out)
/* max(a, m): a where a > m, else m (ties, NaNs); then a where a is NaN (gemm_avx2.c) */
#define FC_VMAX_NAN(m, a) _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q), _mm512_max_ps(a, m), a)
/* lanes of v picked by an index vector; FC_VREPEAT_IDX(k, R): lane l picks (k * 16 + l) / R
 * (conv2d_flat_simd_impl.h's expansion; (m + 0.5) / R is never within rounding of an integer
 * for m < 256, R < 16) */
#define FC_VIT __m512i
#define FC_VPERMUTE(v, idx) _mm512_permutexvar_ps(idx, v)
#define FC_VREPEAT_IDX(k, R)                                                                  \
    _mm512_cvttps_epi32(_mm512_mul_ps(_mm512_add_ps(_mm512_set1_ps((float)(k) * 16.0f + 0.5f), \
                                                    _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)), \
                                      _mm512_set1_ps(1.0f / (float)(R))))
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
#define FC_VSTREAM(p, v) _mm512_stream_pd(p, v)
#define FC_VLOAD_N(p, n) _mm512_maskz_loadu_pd((__mmask8)((1u << (n)) - 1u), p)
#define FC_VSTORE_N(p, v, n) _mm512_mask_storeu_pd(p, (__mmask8)((1u << (n)) - 1u), v)
#define FC_VHSUM(v) _mm512_reduce_add_pd(v)
#define FC_VHSUM_BLOCK(v, n, out) hsum8_block(v, n, out)
#define FC_VMAX_NAN(m, a) _mm512_mask_blend_pd(_mm512_cmp_pd_mask(a, a, _CMP_UNORD_Q), _mm512_max_pd(a, m), a)
#define FC_VIT __m512i
#define FC_VPERMUTE(v, idx) _mm512_permutexvar_pd(idx, v)
#define FC_VREPEAT_IDX(k, R)                                                                  \
    _mm512_cvttpd_epi64(_mm512_mul_pd(_mm512_add_pd(_mm512_set1_pd((double)(k) * 8.0 + 0.5),  \
                                                    _mm512_setr_pd(0, 1, 2, 3, 4, 5, 6, 7)),   \
                                      _mm512_set1_pd(1.0 / (double)(R))))
#define FC_TILE_SFX f64
#define FC_TILE_MR 12
#define FC_TILE_NARROW_SFX f64n
#define FC_TILE_NARROW_MR 24
#define FC_TILE_BROAD_SFX f64b
#define FC_TILE_BROAD_MR 6
#include "gemm_simd_tiles.h"

#include "activation_impl.h"

/* tanh of 16 lanes (activation_impl.h's formula; 1 / Q by rcp14 and one Newton step). */
static inline __m512 tanh16(__m512 x)
{
    const __m512 one = _mm512_set1_ps(1.0f), top = _mm512_set1_ps(FC_TANH_ONE_AT);
    const __m512 a = _mm512_abs_ps(x);
    const __m512 ac = _mm512_min_ps(top, a); /* NaN stays NaN (min returns its 2nd operand) */
    const __m512 u = _mm512_mul_ps(ac, ac);
    __m512 p, q;
    FC_TANH_PQ(_mm512_fmadd_ps, _mm512_set1_ps, u, p, q);
    __m512 r = _mm512_rcp14_ps(q);
    r = _mm512_mul_ps(r, _mm512_fnmadd_ps(q, r, _mm512_set1_ps(2.0f)));
    __m512 t = _mm512_min_ps(one, _mm512_mul_ps(_mm512_mul_ps(ac, p), r)); /* NaN kept */
    t = _mm512_mask_mov_ps(t, _mm512_cmp_ps_mask(a, top, _CMP_GE_OQ), one);
    /* |t| with the sign bit of x */
    return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(_mm512_castps_si512(t), _mm512_castps_si512(x),
                                                         _mm512_set1_epi32((int)0x80000000u), 0xf8));
}

static void act_tanh_f32(float *y, ptrdiff_t n)
{
    ptrdiff_t i = 0;
    for (; i + 32 <= n; i += 32) { /* two independent chains per step */
        const __m512 a = tanh16(_mm512_loadu_ps(y + i)), b = tanh16(_mm512_loadu_ps(y + i + 16));
        _mm512_storeu_ps(y + i, a);
        _mm512_storeu_ps(y + i + 16, b);
    }
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
        _mm512_mask_storeu_ps(y + i, m, tanh16(_mm512_maskz_loadu_ps(m, y + i)));
    }
}

static const fc_kernel_table avx512_table =
    FC_KERNEL_TABLE("avx512", 12, 32, 12, 16, 24, 16, 24, 8, f32n, f64n, 6, 64, 6, 32, f32b, f64b, 16, 8);

const fc_kernel_table *fc_kernels_avx512(void) { return &avx512_table; }

#else /* built without AVX-512 flags (non-x86 or a compiler without them) */

const fc_kernel_table *fc_kernels_avx512(void) { return NULL; }

#endif
