/* 2-D max/average pooling and global pooling on NHWC arrays: the kernels behind pool2d.h.
 *
 * This header is compiled once per instruction set: pool2d_generic.c (baseline SSE2),
 * pool2d_avx2.c and pool2d_avx512.c define FC_POOL_ISA (generic, avx2, avx512) and include
 * it; every kernel name gets the suffix _f32_<isa> / _f64_<isa>, and pool2d.c calls the one
 * that dispatch.c selected. The C is the same for every ISA, and so are the results (the
 * arithmetic per element does not change with the vector width); only the compiler flags
 * differ. Measured on one core (Zen 5, 64x28x28x32 float32): the max-pooling forward took
 * 0.54 ms at SSE2 and 0.40 ms with AVX-512 flags, 3x3/2 0.90 -> 0.46 ms, its backward
 * 2.97 -> 1.65 ms: its NaN-propagating selects are compute-bound at SSE2.
 *
 * The channel axis is contiguous, so every inner loop runs over channels with unit stride
 * and no data-dependent branches. The hot loops hold a window's state in registers
 * (see "register vectors" below); the rest is left to the auto-vectoriser. Channels that do
 * not fill a vector (C % LANES, all of them when C < LANES) take one masked partial vector
 * per pixel (vld_n/vst_n), and on AVX-512 layers with C < LANES (LeNet's 6) take several
 * whole windows per vector through lane permutations ("few channels" below); both give the
 * same bits as whole vectors (the arithmetic per lane does not change).
 *
 * Parallelisation and determinism: every output element is written by exactly one work
 * item, and each item does its work in a fixed order, so the results are bit-identical for
 * any number of threads. Forward passes share out the output rows. The backward passes
 * split dx into row bands, one per group of consecutive output rows (band `o` starts where
 * window `o` starts); a band's work item visits, in ascending order, every window that
 * reaches into the band and adds its contribution clipped to the band. A window that
 * straddles two bands is evaluated by both, but no two threads ever write the same dx
 * element, each dx element receives its contributions in the same order whoever owns it,
 * and a batch of 1 still splits into several items. When windows do not overlap (stride >=
 * pool), dx is assigned instead of accumulated, and only the pixels outside every window are
 * zeroed; otherwise rows are zeroed just before the first window reaches them (cache-hot),
 * or, for a dx large enough to stream, accumulated in a few rows of a per-thread stage and
 * streamed out once finished (fc_band_out).
 * The backward from a recorded argmax (fc_max_pool2d_backward_argmax) takes the same bands
 * with overlapping windows, reading each window's argmax byte instead of its pixels; with
 * disjoint windows each item owns one output row's windows and assigns every dx pixel once.
 * Items are handed out as fc_share does: each thread takes the contiguous block of items its
 * number owns first (the rows the neighbouring layers' thread of that number handles), then
 * helps with the others, so a thread the OS deschedules on a shared host does not hold the
 * others back.
 *
 * This file is a template: it includes itself twice, once for float and once for double,
 * with T the element type and SFX(name) adding the type and ISA suffixes to a function name.
 */
#ifndef FC_POOL2D_TEMPLATE
#ifndef FC_POOL_ISA
#error "define FC_POOL_ISA (generic, avx2 or avx512) before including pool2d_impl.h"
#endif


#if defined(__GNUC__) && !defined(__clang__)
/* Keep the short per-pixel channel copies as vector loops: gcc would otherwise turn them into
 * `rep movs`/memcpy, which costs more than the copy itself for a few hundred bytes. */
#pragma GCC optimize("no-tree-loop-distribute-patterns")
#endif

#include "pool2d_isa.h"
#include "kernel_common.h"
#include "simd_tail.h"

#include <math.h>
#include <stddef.h>
#include <string.h>
#if defined(__AVX512F__) || defined(__SSE2__)
#include <immintrin.h>
#endif

/* Denormals are flushed (FC_FTZ_BEGIN) only in the average pooling kernels, which do
 * arithmetic. Max pooling only compares and copies, and DAZ would change which element
 * compares as the maximum. */

/* The hot loops keep a window's running state in registers: one vector of channels at a
 * time, of the unit's native width (64 bytes with AVX-512, 32 with AVX2, 16 with SSE2),
 * written with GCC/Clang vector extensions. (Wider-than-native vectors are lowered through
 * the stack: callgrind counted as many instructions with 64-byte vectors on AVX2 as on
 * SSE2.) The channels left over (C not a multiple of the lanes), and compilers without
 * vector extensions, take the plain per-channel loops. */
#if (defined(__GNUC__) || defined(__clang__)) && !defined(FASTCONV_PORTABLE_C)
#define FC_POOL_VECTORS 1
#if defined(__AVX512F__)
#define FC_POOL_VBYTES 64
#elif defined(__AVX2__)
#define FC_POOL_VBYTES 32
#else
#define FC_POOL_VBYTES 16
#endif
typedef float fc_pool_vf32 __attribute__((vector_size(FC_POOL_VBYTES)));
typedef int fc_pool_vm32 __attribute__((vector_size(FC_POOL_VBYTES)));
typedef double fc_pool_vf64 __attribute__((vector_size(FC_POOL_VBYTES)));
typedef long long fc_pool_vm64 __attribute__((vector_size(FC_POOL_VBYTES)));
#else
#define FC_POOL_VECTORS 0
#endif

/* Few channels, several windows per vector (see "few channels" below): AVX-512 only, where a
 * two-source lane permutation is one instruction (vpermt2ps/pd). */
#if FC_POOL_VECTORS && FC_POOL_VBYTES == 64 && defined(__AVX512F__)
#define FC_POOL_MULTI 1
#else
#define FC_POOL_MULTI 0
#endif

/* Channels handled at a time by kernels that keep per-channel state on the stack. */
#define FC_POOL_CHANNEL_BLOCK 256

/* How the backward of windows that do not overlap stores a window's values (the `disjoint`
 * argument of the bodies below; 0 means windows overlap and dx is accumulated). */
enum { FC_POOL_ASSIGN = 1, FC_POOL_STREAM = 2 };

static inline ptrdiff_t fc_max_pd(ptrdiff_t a, ptrdiff_t b) { return a > b ? a : b; }
static inline ptrdiff_t fc_min_pd(ptrdiff_t a, ptrdiff_t b) { return a < b ? a : b; }

/* Work items per image of the backward passes: enough to keep threads busy on small batches,
 * few enough that little work is repeated at band edges. A function of the shape only. */
#define FC_POOL_MIN_BACKWARD_ITEMS 16

typedef struct {
    ptrdiff_t rows_per_band; /* output rows per band */
    ptrdiff_t bands;         /* bands per image */
} fc_band_plan;

static fc_band_plan fc_plan_bands(const fc_pool2d_geometry *g)
{
    fc_band_plan p;
    ptrdiff_t per_image = (FC_POOL_MIN_BACKWARD_ITEMS + g->n - 1) / g->n;
    if (per_image > g->out_h) per_image = g->out_h;
    p.rows_per_band = (g->out_h + per_image - 1) / per_image;
    p.bands = (g->out_h + p.rows_per_band - 1) / p.rows_per_band;
    return p;
}

/* The dx rows [lo, hi) owned by the band of output rows [o_lo, o_hi): from where window o_lo
 * starts to where window o_hi starts (the first/last band extend to the image edges). */
static void fc_band_rows(const fc_pool2d_geometry *g, ptrdiff_t o_lo, ptrdiff_t o_hi,
                         ptrdiff_t *lo, ptrdiff_t *hi)
{
    ptrdiff_t start = o_lo * g->stride_h - g->pad_top;
    ptrdiff_t next = o_hi * g->stride_h - g->pad_top;
    *lo = o_lo == 0 ? 0 : fc_min_pd(fc_max_pd(start, 0), g->h);
    *hi = o_hi >= g->out_h ? g->h : fc_min_pd(fc_max_pd(next, 0), g->h);
}

/* Real (unpadded) extent [lo, hi) of window `o` along an axis of the given size. */
static inline void fc_window_span(ptrdiff_t o, ptrdiff_t stride, ptrdiff_t pad, ptrdiff_t pool,
                                  ptrdiff_t size, ptrdiff_t *lo, ptrdiff_t *hi)
{
    ptrdiff_t start = o * stride - pad;
    *lo = fc_max_pd(start, 0);
    *hi = fc_min_pd(start + pool, size);
}

/* Output columns [lo, hi) whose windows lie wholly inside an axis of `size` pixels. */
typedef struct {
    ptrdiff_t lo, hi;
} fc_span;

static inline fc_span fc_inside_windows(ptrdiff_t size, ptrdiff_t pad, ptrdiff_t pool,
                                        ptrdiff_t stride, ptrdiff_t out)
{
    fc_span s;
    s.lo = (pad + stride - 1) / stride;
    s.hi = size + pad - pool >= 0 ? (size + pad - pool) / stride + 1 : 0;
    s.hi = fc_max_pd(fc_min_pd(s.hi, out), s.lo);
    return s;
}

/* The output columns whose windows a row kernel takes (those wholly inside the image), none
 * unless `usable`. */
static inline fc_span fc_row_columns(const fc_pool2d_geometry *g, int usable)
{
    fc_span s = fc_inside_windows(g->w, g->pad_left, g->pool_w, g->stride_w, g->out_w);
    if (!usable) s.hi = s.lo;
    return s;
}

/* `e` where several windows per vector exist (AVX-512, see "few channels"), else 0. */
#if FC_POOL_MULTI
#define FC_POOL_IF_MULTI(e) (e)
#else
#define FC_POOL_IF_MULTI(e) 0
#endif

#define FC_POOL2D_TEMPLATE
#define T float
#define SFX(name) FC_POOL_NAME(name, f32, FC_POOL_ISA)
#define VT fc_pool_vf32 /* vector of T */
#define VM fc_pool_vm32 /* lane mask / integer lanes of VT's width */
#define LANES (FC_POOL_VBYTES / 4)
#include "pool2d_impl.h"
#undef T
#undef SFX
#undef VT
#undef VM
#undef LANES
#define T double
#define SFX(name) FC_POOL_NAME(name, f64, FC_POOL_ISA)
#define VT fc_pool_vf64
#define VM fc_pool_vm64
#define LANES (FC_POOL_VBYTES / 8)
#include "pool2d_impl.h"
#undef T
#undef SFX
#undef VT
#undef VM
#undef LANES
#undef FC_POOL2D_TEMPLATE

#else /* FC_POOL2D_TEMPLATE: the body below is compiled once per element type T. */

/* Whether dx may be written with non-temporal stores: each pixel's channels whole 64-byte
 * lines from a line, the whole of dx at least the threshold (fc_streams_whole_lines). */
static inline int SFX(fc_dx_streamable)(const T *dx, const fc_pool2d_geometry *g)
{
    return fc_streams_whole_lines(dx, g->c * (ptrdiff_t)sizeof(T),
                                  g->n * g->h * g->w * g->c * (ptrdiff_t)sizeof(T),
                                  fc_pool_stream_min_bytes);
}

/* Whether a backward of disjoint windows writes dx with non-temporal stores (FC_POOL_STREAM,
 * see pool2d.h): AVX-512, whose whole vectors are 64-byte lines, and each pixel's channels
 * whole lines from a line, at least the threshold (fc_streams_whole_lines): every line is then
 * written by one whole-vector store. Each thread fences its stores before the region ends; nothing
 * in the kernel reads dx. 64x32x32x64 float32 2x2 max pooling forward + backward (the argmax
 * pair), 2 threads, calls of the two builds alternated in one process, p10: 1.31 -> 1.19 and
 * 1.54 -> 1.34 ms. */
static inline int SFX(fc_pool_streams)(const T *dx, const fc_pool2d_geometry *g)
{
#if FC_POOL_VECTORS && FC_POOL_VBYTES == 64 && defined(__AVX512F__)
    return SFX(fc_dx_streamable)(dx, g);
#else
    (void)dx;
    (void)g;
    return 0;
#endif
}

/* ---- register vectors of LANES channels ---------------------------------------------------- */
#if FC_POOL_VECTORS
#if defined(__GNUC__) && !defined(__clang__)
/* Static inline helpers pass 64-byte vectors; no ABI boundary is crossed, so gcc's note that
 * such passing would change the ABI without AVX-512 does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
static inline VT SFX(vld)(const T *p)
{
    VT v;
    memcpy(&v, p, sizeof v); /* an unaligned vector load */
    return v;
}
static inline void SFX(vst)(T *p, VT v) { memcpy(p, &v, sizeof v); }
static inline VT SFX(vsplat)(T a) { return (VT){0} + a; }
static inline VT SFX(vsel)(VM mask, VT a, VT b) { return (VT)(((VM)a & mask) | ((VM)b & ~mask)); }
static inline VT SFX(vkeep)(VM mask, VT a) { return (VT)((VM)a & mask); } /* a or +0 */
static inline VM SFX(vselm)(VM mask, VM a, VM b) { return (a & mask) | (b & ~mask); }
/* NaN-propagating max that keeps m on ties (the first maximum), like fc_max_into: the ISA's
 * max instruction, v > m ? v : m (m when either is NaN, so a NaN maximum stays; vmax_ordered),
 * then v where v is NaN. Three instructions where a compare, a NaN test, an or and a blend
 * were four. */
static inline VT SFX(vmax_ordered)(VT m, VT v) /* v > m ? v : m: m on ties and NaNs */
{
#if FC_POOL_VBYTES == 64 && defined(__AVX512F__)
    return sizeof(T) == 4 ? (VT)_mm512_max_ps((__m512)v, (__m512)m)
                          : (VT)_mm512_max_pd((__m512d)v, (__m512d)m);
#elif FC_POOL_VBYTES == 32 && defined(__AVX__)
    return sizeof(T) == 4 ? (VT)_mm256_max_ps((__m256)v, (__m256)m)
                          : (VT)_mm256_max_pd((__m256d)v, (__m256d)m);
#elif FC_POOL_VBYTES == 16 && defined(__SSE2__)
    return sizeof(T) == 4 ? (VT)_mm_max_ps((__m128)v, (__m128)m)
                          : (VT)_mm_max_pd((__m128d)v, (__m128d)m);
#else
    return SFX(vsel)((VM)(v > m), v, m);
#endif
}
static inline VT SFX(vmax)(VT m, VT v) { return SFX(vsel)((VM)(v != v), v, SFX(vmax_ordered)(m, v)); }
/* All ones where a or b is NaN: one instruction for two values. */
static inline VM SFX(vunord)(VT a, VT b)
{
#if FC_POOL_VBYTES == 32 && defined(__AVX__)
    return sizeof(T) == 4 ? (VM)_mm256_cmp_ps((__m256)a, (__m256)b, _CMP_UNORD_Q)
                          : (VM)_mm256_cmp_pd((__m256d)a, (__m256d)b, _CMP_UNORD_Q);
#elif FC_POOL_VBYTES == 16 && defined(__SSE2__)
    return sizeof(T) == 4 ? (VM)_mm_cmpunord_ps((__m128)a, (__m128)b)
                          : (VM)_mm_cmpunord_pd((__m128d)a, (__m128d)b);
#else
    return (VM)(a != a) | (VM)(b != b);
#endif
}
/* Whether any lane of the mask is set. */
static inline int SFX(vany)(VM m)
{
#if FC_POOL_VBYTES == 64 && defined(__AVX512F__)
    return _mm512_test_epi32_mask((__m512i)m, (__m512i)m) != 0;
#elif FC_POOL_VBYTES == 32 && defined(__AVX__)
    return !_mm256_testz_si256((__m256i)m, (__m256i)m);
#elif FC_POOL_VBYTES == 16 && defined(__SSE2__)
    return _mm_movemask_epi8((__m128i)m) != 0;
#else
    for (int k = 0; k < LANES; k++)
        if (m[k]) return 1;
    return 0;
#endif
}
/* Bytes <-> integer lanes (LANES bytes, lanes of T's width), spelled with the ISA's own
 * instructions: gcc lowers __builtin_convertvector between these widths one lane at a time. */
#if FC_POOL_VBYTES == 64 && defined(__AVX512F__)
static inline VM SFX(vld_bytes)(const unsigned char *p)
{
    __m512i wide = sizeof(T) == 4 ? _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p))
                                  : _mm512_cvtepu8_epi64(_mm_loadl_epi64((const __m128i *)p));
    return (VM)wide;
}
static inline void SFX(vst_bytes)(unsigned char *p, VM v)
{
    if (sizeof(T) == 4)
        _mm_storeu_si128((__m128i *)p, _mm512_cvtepi32_epi8((__m512i)v));
    else
        _mm_storel_epi64((__m128i *)p, _mm512_cvtepi64_epi8((__m512i)v));
}
#elif FC_POOL_VBYTES == 32 && defined(__AVX2__)
static inline VM SFX(vld_bytes)(const unsigned char *p)
{
    if (sizeof(T) == 4) return (VM)_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
    int four;
    memcpy(&four, p, 4);
    return (VM)_mm256_cvtepu8_epi64(_mm_cvtsi32_si128(four));
}
static inline void SFX(vst_bytes)(unsigned char *p, VM v)
{
    __m128i lo = _mm256_castsi256_si128((__m256i)v), hi = _mm256_extracti128_si256((__m256i)v, 1);
    if (sizeof(T) == 4) { /* 8 x int32 -> 8 bytes */
        __m128i w = _mm_packs_epi32(lo, hi);
        _mm_storel_epi64((__m128i *)p, _mm_packus_epi16(w, w));
    } else { /* 4 x int64: keep the low 32 bits of each, then pack -> 4 bytes */
        __m128i d = _mm_unpacklo_epi64(_mm_shuffle_epi32(lo, 0x08), _mm_shuffle_epi32(hi, 0x08));
        __m128i w = _mm_packs_epi32(d, d);
        int four = _mm_cvtsi128_si32(_mm_packus_epi16(w, w));
        memcpy(p, &four, 4);
    }
}
#elif FC_POOL_VBYTES == 16 && defined(__SSE2__)
static inline VM SFX(vld_bytes)(const unsigned char *p)
{
    const __m128i zero = _mm_setzero_si128();
    int bytes = 0;
    memcpy(&bytes, p, sizeof(T) == 4 ? 4 : 2);
    __m128i w = _mm_unpacklo_epi16(_mm_unpacklo_epi8(_mm_cvtsi32_si128(bytes), zero), zero);
    return sizeof(T) == 4 ? (VM)w : (VM)_mm_unpacklo_epi32(w, zero);
}
static inline void SFX(vst_bytes)(unsigned char *p, VM v)
{
    __m128i d = sizeof(T) == 4 ? (__m128i)v : _mm_shuffle_epi32((__m128i)v, 0x08);
    __m128i w = _mm_packs_epi32(d, d);
    int bytes = _mm_cvtsi128_si32(_mm_packus_epi16(w, w));
    memcpy(p, &bytes, sizeof(T) == 4 ? 4 : 2); /* little-endian: the low bytes first */
}
#else
static inline VM SFX(vld_bytes)(const unsigned char *p)
{
    VM v;
    for (int k = 0; k < LANES; k++) v[k] = p[k];
    return v;
}
static inline void SFX(vst_bytes)(unsigned char *p, VM v)
{
    for (int k = 0; k < LANES; k++) p[k] = (unsigned char)v[k];
}
#endif

/* Partial vectors: the first n (1..LANES) channels of a pixel. The channels left over when C
 * is not a multiple of LANES -- all of them when C < LANES, e.g. LeNet's 6 -- take one such
 * vector per pixel; per-channel scalar loops cost ~10x more there (LeNet's 64x28x28x6 2x2
 * average pooling: 0.79 ms -> see the commit log). Lanes from n on load as 0 and are never
 * stored; no byte past p + n is read or written (masked loads do not fault on masked lanes).
 * The kernels call these with n == LANES as a constant too, which folds to a plain vld. */
static inline VT SFX(vld_n)(const T *p, ptrdiff_t n)
{
    if (n == LANES) return SFX(vld)(p);
#if FC_POOL_VBYTES == 64 && defined(__AVX512F__)
    if (sizeof(T) == 4) return (VT)_mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1u), p);
    return (VT)_mm512_maskz_loadu_pd((__mmask8)((1u << n) - 1u), p);
#elif FC_POOL_VBYTES == 32 && defined(__AVX2__)
    if (sizeof(T) == 4) {
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        return (VT)_mm256_maskload_ps((const float *)p,
                                      _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), lane));
    }
    const __m256i lane = _mm256_setr_epi64x(0, 1, 2, 3);
    return (VT)_mm256_maskload_pd((const double *)p,
                                  _mm256_cmpgt_epi64(_mm256_set1_epi64x((long long)n), lane));
#elif FC_POOL_VBYTES == 16 && defined(__SSE2__)
    /* n < 4 floats (n == 1 double: a pair of floats) in pieces; the lanes above n are 0 */
    return (VT)fc_load_low_ps((const float *)p, n * (ptrdiff_t)(sizeof(T) / 4));
#else
    VT v = SFX(vsplat)((T)0);
    memcpy(&v, p, (size_t)n * sizeof(T));
    return v;
#endif
}

static inline void SFX(vst_n)(T *p, VT v, ptrdiff_t n)
{
    if (n == LANES) {
        SFX(vst)(p, v);
        return;
    }
#if FC_POOL_VBYTES == 64 && defined(__AVX512F__)
    if (sizeof(T) == 4)
        _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1u), (__m512)v);
    else
        _mm512_mask_storeu_pd(p, (__mmask8)((1u << n) - 1u), (__m512d)v);
#elif FC_POOL_VBYTES == 32 && defined(__AVX2__)
    /* in pieces (simd_tail.h; a memcpy of n values was a libc call per pixel: a quarter
     * of LeNet's 64x28x28x6 average-pooling backward) */
    fc_store_n256_ps((float *)p, (__m256)v, n * (ptrdiff_t)(sizeof(T) / 4));
#elif FC_POOL_VBYTES == 16 && defined(__SSE2__)
    fc_store_low_ps((float *)p, (__m128)v, n * (ptrdiff_t)(sizeof(T) / 4));
#else
    memcpy(p, &v, (size_t)n * sizeof(T));
#endif
}

/* A disjoint window's value, assigned (`disjoint` FC_POOL_ASSIGN) or, with FC_POOL_STREAM, by a
 * non-temporal store where the vector is whole: with AVX-512 a whole 64-byte line (the
 * backward drivers choose FC_POOL_STREAM only where every pixel's channels are whole lines
 * from a line; see fc_pool_streams). Other ISAs store as usual. */
static inline void SFX(vst_assign)(T *p, VT v, ptrdiff_t n, int disjoint)
{
#if FC_POOL_VBYTES == 64 && defined(__AVX512F__)
    if (disjoint == FC_POOL_STREAM && n == LANES) {
        fc_stream_vector(p, &v, sizeof v);
        return;
    }
#endif
    (void)disjoint;
    SFX(vst_n)(p, v, n);
}

static inline VM SFX(vld_bytes_n)(const unsigned char *p, ptrdiff_t n)
{
    if (n == LANES) return SFX(vld_bytes)(p);
#if FC_POOL_VBYTES == 64 && defined(__AVX512F__)
    const __m128i bytes = _mm_maskz_loadu_epi8((__mmask16)((1u << n) - 1u), p);
    return sizeof(T) == 4 ? (VM)_mm512_cvtepu8_epi32(bytes) : (VM)_mm512_cvtepu8_epi64(bytes);
#else
    unsigned char bytes[16] = {0};
    memcpy(bytes, p, (size_t)n);
    return SFX(vld_bytes)(bytes);
#endif
}

static inline void SFX(vst_bytes_n)(unsigned char *p, VM v, ptrdiff_t n)
{
    if (n == LANES) {
        SFX(vst_bytes)(p, v);
        return;
    }
#if FC_POOL_VBYTES == 64 && defined(__AVX512F__)
    const __m128i bytes = sizeof(T) == 4 ? _mm512_cvtepi32_epi8((__m512i)v)
                                         : _mm512_cvtepi64_epi8((__m512i)v);
    _mm_mask_storeu_epi8(p, (__mmask16)((1u << n) - 1u), bytes);
#else
    unsigned char bytes[16];
    SFX(vst_bytes)(bytes, v);
    memcpy(p, bytes, (size_t)n);
#endif
}
#endif

/* ---- channel-vector helpers (restrict + unit stride: vectorised) -------------------------- */

static inline void SFX(fc_copy)(T *restrict dst, const T *restrict src, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) dst[i] = src[i];
}

/* m = max(m, x) elementwise, propagating NaN from either side like numpy's max. */
static inline void SFX(fc_max_into)(T *restrict m, const T *restrict x, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        T v = x[i], cur = m[i];
        m[i] = (v > cur || v != v) ? v : cur;
    }
}

static inline void SFX(fc_add_into)(T *restrict acc, const T *restrict x, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) acc[i] += x[i];
}

/* First-max scatter step for one window pixel: where x equals the window maximum `target`
 * (not yet taken), add dy into dx and retire the channel by setting its target to NaN,
 * which equals nothing. A NaN maximum therefore never receives a gradient, as in the
 * reference (NaN == NaN is false there too). */
static inline void SFX(fc_first_max_scatter)(T *restrict dx, const T *restrict x,
                                             T *restrict target, const T *restrict dy,
                                             ptrdiff_t n)
{
    /* Written as two independent selects on values loaded up front: gcc if-converts and
     * vectorises this form (not one with a shared int flag or a conditional load). */
    for (ptrdiff_t i = 0; i < n; i++) {
        T v = x[i], t = target[i], g = dy[i], d = dx[i];
        T add = (v == t) ? g : (T)0;
        T next = (v == t) ? (T)NAN : t;
        dx[i] = d + add;
        target[i] = next;
    }
}

/* Same as above for a pixel outside the caller's band: only retire the channels it takes. */
static inline void SFX(fc_first_max_skip)(const T *restrict x, T *restrict target, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        T v = x[i], t = target[i];
        target[i] = (v == t) ? (T)NAN : t;
    }
}

/* First-max step when windows do not overlap: dx is assigned (dy or 0), not accumulated. */
static inline void SFX(fc_first_max_assign)(T *restrict dx, const T *restrict x,
                                            T *restrict target, const T *restrict dy,
                                            ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        T v = x[i], t = target[i], g = dy[i];
        T val = (v == t) ? g : (T)0;
        T next = (v == t) ? (T)NAN : t;
        dx[i] = val;
        target[i] = next;
    }
}

/* ---- argmax helpers: the tap index of the running maximum is kept in T (exact for the
 * <= 255 taps allowed) so that gcc vectorises the selects; it is narrowed to bytes at the end. */

/* Start a window at its first real pixel, tap index t0 (no maximum yet if it is NaN). */
static inline void SFX(fc_argmax_init)(T *restrict best, T *restrict where, const T *restrict x,
                                       T t0, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        T v = x[i];
        best[i] = v;
        where[i] = (v != v) ? (T)FC_POOL_NO_ARGMAX : t0;
    }
}

/* Next pixel (tap index t) in row-major window order: a strictly greater value takes over
 * (so the first of equal maxima stays), a NaN makes the maximum NaN and leaves no argmax. */
static inline void SFX(fc_argmax_step)(T *restrict best, T *restrict where, const T *restrict x,
                                       T t, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        T v = x[i], m = best[i], w = where[i];
        best[i] = (v > m || v != v) ? v : m;
        where[i] = (v > m) ? t : ((v != v) ? (T)FC_POOL_NO_ARGMAX : w);
    }
}

static inline void SFX(fc_argmax_store)(T *restrict out, unsigned char *restrict argmax,
                                        const T *restrict best, const T *restrict where,
                                        ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        out[i] = best[i];
        argmax[i] = (unsigned char)(int)where[i];
    }
}

/* d = dy where the window's argmax is `tap`, else 0 (assign), or d += that (accumulate). */
static inline void SFX(fc_argmax_assign)(T *restrict d, const unsigned char *restrict argmax,
                                         const T *restrict dy, int tap, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) d[i] = ((int)argmax[i] == tap) ? dy[i] : (T)0;
}

static inline void SFX(fc_argmax_accumulate)(T *restrict d, const unsigned char *restrict argmax,
                                             const T *restrict dy, int tap, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) d[i] += ((int)argmax[i] == tap) ? dy[i] : (T)0;
}

/* Zero rows [r_from, r_to) of one image. */
static inline void SFX(fc_zero_rows)(T *img, const fc_pool2d_geometry *g, ptrdiff_t r_from,
                                     ptrdiff_t r_to)
{
    if (r_to > r_from)
        memset(img + r_from * g->w * g->c, 0, (size_t)((r_to - r_from) * g->w * g->c) * sizeof(T));
}

/* Zero the pixels of one row that no window column span covers (non-overlapping windows). */
static void SFX(fc_zero_column_gaps)(T *row, const fc_pool2d_geometry *g)
{
    ptrdiff_t covered = 0;
    for (ptrdiff_t ow = 0; ow < g->out_w; ow++) {
        ptrdiff_t c0, c1;
        fc_window_span(ow, g->stride_w, g->pad_left, g->pool_w, g->w, &c0, &c1);
        if (c0 > covered) memset(row + covered * g->c, 0, (size_t)((c0 - covered) * g->c) * sizeof(T));
        covered = fc_max_pd(covered, c1);
    }
    if (g->w > covered) memset(row + covered * g->c, 0, (size_t)((g->w - covered) * g->c) * sizeof(T));
}

/* Make dx rows [*ready, s1) of a band ready for window rows [s0, s1): with disjoint windows,
 * zero the gap rows before s0 and the column gaps of rows [s0, s1) (the window pixels are
 * assigned later); with overlapping windows, zero rows [*ready, s1) (accumulated into). */
static inline void SFX(fc_prepare_rows)(T *img, const fc_pool2d_geometry *g, int disjoint,
                                        ptrdiff_t *ready, ptrdiff_t s0, ptrdiff_t s1)
{
    if (s1 <= *ready) return;
    if (disjoint) {
        SFX(fc_zero_rows)(img, g, *ready, s0);
        for (ptrdiff_t r = fc_max_pd(s0, *ready); r < s1; r++)
            SFX(fc_zero_column_gaps)(img + r * g->w * g->c, g);
    } else {
        SFX(fc_zero_rows)(img, g, *ready, s1);
    }
    *ready = s1;
}

/* Where a backward band writes its dx rows. Overlapping windows accumulate; where dx may be
 * streamed (fc_stage_rows), a band accumulates instead in a stage: a few rows of the thread's
 * own buffer, cache-resident, holding dx rows [base, base + cap). A row no later window reaches
 * (above the next window's first row) is final, and is streamed to dx from the stage: each dx
 * line is written once, and never read first (the 64x32x32x64 float32 3x3/2 max pooling
 * backward wrote dx twice and read it once before: zeroed, then accumulated into). The rows'
 * values, and the order of each one's additions, are the same either way. */
typedef struct {
    ptrdiff_t n, o_lo, o_hi, b0, b1; /* the work item: image, output rows, dx rows */
    T *dxn;          /* the image's dx */
    T *stage;        /* cap rows, or NULL: dx rows are made ready and written in place */
    ptrdiff_t cap;   /* rows in the stage */
    ptrdiff_t base;  /* dx row of the stage's first row */
    ptrdiff_t ready; /* dx rows up to here are initialised (fc_prepare_rows) */
    ptrdiff_t done;  /* staged: dx rows up to here are written to dx */
} SFX(fc_band_out);

/* The stage rows for dx of this geometry (0: none): overlapping windows, dx streamable
 * (fc_dx_streamable) and two windows' rows within FC_POOL_STAGE_MAX_BYTES. Any x86 ISA: the
 * rows are copied out with the widest stream store. */
#define FC_POOL_STAGE_MAX_BYTES ((ptrdiff_t)512 << 10)
static inline ptrdiff_t SFX(fc_stage_rows)(const T *dx, const fc_pool2d_geometry *g, int disjoint)
{
    const ptrdiff_t rows = 2 * g->pool_h, row_bytes = g->w * g->c * (ptrdiff_t)sizeof(T);
    if (!FC_STREAM_STORES || disjoint || rows * row_bytes > FC_POOL_STAGE_MAX_BYTES) return 0;
    return SFX(fc_dx_streamable)(dx, g) ? rows : 0;
}

/* The thread's band output: a stage of `rows` rows (none if 0 or out of memory). */
static inline SFX(fc_band_out) SFX(fc_band_out_init)(ptrdiff_t rows, const fc_pool2d_geometry *g)
{
    SFX(fc_band_out) b;
    memset(&b, 0, sizeof b);
    b.stage = rows ? (T *)fc_alloc((size_t)(rows * g->w * g->c) * sizeof(T)) : NULL;
    b.cap = rows;
    return b;
}

/* Fences the thread's streamed rows (before the barrier after which dx is read), frees. */
static inline void SFX(fc_band_out_release)(SFX(fc_band_out) *b)
{
    if (b->stage == NULL) return;
    fc_store_fence();
    fc_free(b->stage);
    b->stage = NULL;
}

/* Starts work item `item` of the plan: image n, output rows [o_lo, o_hi), dx rows [b0, b1). */
static inline void SFX(fc_band_begin)(SFX(fc_band_out) *b, T *dx, const fc_pool2d_geometry *g,
                                      const fc_band_plan *plan, ptrdiff_t item)
{
    b->n = item / plan->bands;
    b->o_lo = (item % plan->bands) * plan->rows_per_band;
    b->o_hi = fc_min_pd(b->o_lo + plan->rows_per_band, g->out_h);
    fc_band_rows(g, b->o_lo, b->o_hi, &b->b0, &b->b1);
    b->dxn = dx + b->n * g->h * g->w * g->c;
    b->base = b->ready = b->done = b->b0;
}

/* Staged: streams dx rows [done, to) from the stage (zeros for rows no window reached). */
static void SFX(fc_band_flush)(SFX(fc_band_out) *b, const fc_pool2d_geometry *g, ptrdiff_t to)
{
    const ptrdiff_t row = g->w * g->c;
    for (ptrdiff_t r = b->done; r < to; r++) {
        const T *src = r >= b->base && r < b->ready ? b->stage + (r - b->base) * row : NULL;
        fc_stream_copy(b->dxn + r * row, src, (size_t)row * sizeof(T));
    }
    if (to > b->done) b->done = to;
}

/* Window row o: its real rows [*r0, *r1) and those in the band, [*s0, *s1), made ready
 * (windows come in order: none reaches above s0 later). Returns where the window writes
 * column 0 of dx row s0, or NULL if it does not reach into the band. */
static inline T *SFX(fc_band_window)(SFX(fc_band_out) *b, const fc_pool2d_geometry *g,
                                     int disjoint, ptrdiff_t o, ptrdiff_t *r0, ptrdiff_t *r1,
                                     ptrdiff_t *s0_out, ptrdiff_t *s1_out)
{
    const ptrdiff_t row = g->w * g->c;
    fc_window_span(o, g->stride_h, g->pad_top, g->pool_h, g->h, r0, r1);
    const ptrdiff_t s0 = fc_max_pd(*r0, b->b0), s1 = fc_min_pd(*r1, b->b1);
    *s0_out = s0;
    *s1_out = s1;
    if (s1 <= s0) return NULL;
    if (b->stage == NULL) {
        SFX(fc_prepare_rows)(b->dxn, g, disjoint, &b->ready, s0, s1);
        return b->dxn + s0 * row;
    }
    SFX(fc_band_flush)(b, g, s0);
    if (b->ready < s0) b->ready = s0; /* the rows between were streamed as zeros */
    if (s1 > b->base + b->cap) { /* slide the stage down to row s0 */
        if (b->ready > s0)
            memmove(b->stage, b->stage + (s0 - b->base) * row,
                    (size_t)((b->ready - s0) * row) * sizeof(T));
        b->base = s0;
    }
    if (s1 > b->ready) {
        memset(b->stage + (b->ready - b->base) * row, 0,
               (size_t)((s1 - b->ready) * row) * sizeof(T));
        b->ready = s1;
    }
    return b->stage + (s0 - b->base) * row;
}

/* Ends the band: the rows below its last window (all, in an empty band) are zeroed, or the
 * stage's rows streamed out. */
static inline void SFX(fc_band_end)(SFX(fc_band_out) *b, const fc_pool2d_geometry *g)
{
    if (b->stage == NULL) SFX(fc_zero_rows)(b->dxn, g, b->ready, b->b1);
    else SFX(fc_band_flush)(b, g, b->b1);
}

#if FC_POOL_VECTORS
/* ---- one window, nl <= LANES channels at a time: the kernels' vector bodies ----------------
 * Each kernel calls these with nl == LANES for its whole vectors of channels, then once with
 * the channels left over (partial vectors, see vld_n); always inlined, so the first call folds
 * to plain vector code. A window's real pixels are rows [r0, r1) x columns [c0, c1) of one
 * image of width W; xc, dxc point at the first of the nl channels in that image's pixel (0, 0),
 * dyc/o/am at the first of them in the window's output element. Taps are visited in row-major
 * order, as in the scalar loops: the results are the same bits whichever path runs. */
#define FC_POOL_BODY static inline __attribute__((always_inline))

/* v / count. Dividing by a power of two only scales, exactly: multiplying by the (exact)
 * reciprocal rounds the same real number, so gives the same bits, at a fraction of the cost
 * of a vector division (2x2 windows). */
static inline VT SFX(vdivide)(VT v, ptrdiff_t count)
{
    if ((count & (count - 1)) == 0) return v * ((T)1 / (T)count);
    return v / (T)count;
}

/* Each body below has a general form (suffix _rc) over a window of `rows` x `cols` real
 * pixels, p at its first channel of the first, rs apart from one row to the next and C from one
 * column to the next. The per-window callers (suffix _v) take the windows at the image's
 * edges; the 2x2 and 3x3 windows inside it (the common pools) go to row kernels (suffix _row,
 * below), one out-of-line function per shape with the extents as constants, so that the tap
 * loops unroll and no per-window bookkeeping remains (64x28x28x32 2x2 max pooling with argmax,
 * 1 thread: 0.35 -> 0.21 ms forward, 0.28 -> 0.17 ms backward). */

/* The window maximum, NaN-propagating, the first maximum kept on ties. */
FC_POOL_BODY VT SFX(window_max_rc)(const T *p, ptrdiff_t rs, ptrdiff_t C, ptrdiff_t rows,
                                   ptrdiff_t cols, ptrdiff_t nl)
{
    VT m = SFX(vld_n)(p, nl);
    for (ptrdiff_t r = 0; r < rows; r++)
        for (ptrdiff_t k = (r == 0 ? 1 : 0); k < cols; k++)
            m = SFX(vmax)(m, SFX(vld_n)(p + r * rs + k * C, nl));
    return m;
}

FC_POOL_BODY VT SFX(window_max_v)(const T *xc, ptrdiff_t W, ptrdiff_t C, ptrdiff_t r0,
                                  ptrdiff_t r1, ptrdiff_t c0, ptrdiff_t c1, ptrdiff_t nl)
{
    return SFX(window_max_rc)(xc + (r0 * W + c0) * C, W * C, C, r1 - r0, c1 - c0, nl);
}

/* Max-pooling backward of one window: its maximum (over all its rows), then a walk in
 * row-major order over its first `walk` rows in which the first pixel equal to it takes dy
 * (the first `skip` rows, outside the caller's band, only retire the channels they take).
 * p is the window's first pixel, dp the dx pixel under window row `skip`. */
FC_POOL_BODY void SFX(max_backward_rc)(const T *p, T *dp, const T *dyc, ptrdiff_t rs, ptrdiff_t C,
                                       ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t skip,
                                       ptrdiff_t walk, int disjoint, ptrdiff_t nl)
{
    VT target = SFX(window_max_rc)(p, rs, C, rows, cols, nl);
    const VT grad = SFX(vld_n)(dyc, nl), retired = SFX(vsplat)((T)NAN);
    for (ptrdiff_t r = 0; r < walk; r++) {
        for (ptrdiff_t k = 0; k < cols; k++) {
            const VM hit = (VM)(SFX(vld_n)(p + r * rs + k * C, nl) == target);
            target = SFX(vsel)(hit, retired, target);
            if (r < skip) continue;
            T *d = dp + k * C;
            if (disjoint)
                SFX(vst_n)(d, SFX(vkeep)(hit, grad), nl);
            else
                SFX(vst_n)(d, SFX(vld_n)(d, nl) + SFX(vkeep)(hit, grad), nl);
        }
        /* (dp steps row by row, never past the last walked row: GCC 12 with -fwrapv ICEs on
         * dp + (r - skip) * rs in the SSE2 float64 unit) */
        if (r >= skip && r + 1 < walk) dp += rs;
    }
}

/* The window of rows [r0, r1) x columns [c0, c1), written in dx from row s0 to s1; dxc is
 * column 0 of dx row s0 (as in every window body below: a band may stage its rows). */
FC_POOL_BODY void SFX(max_backward_window_v)(const T *xc, T *dxc, const T *dyc, ptrdiff_t W,
                                             ptrdiff_t C, ptrdiff_t r0, ptrdiff_t r1,
                                             ptrdiff_t c0, ptrdiff_t c1, ptrdiff_t s0,
                                             ptrdiff_t s1, int disjoint, ptrdiff_t nl)
{
    const ptrdiff_t at = (r0 * W + c0) * C, rows = r1 - r0, cols = c1 - c0;
    const ptrdiff_t skip = s0 - r0, walk = s1 - r0;
    if (skip == 0 && walk == rows) {
        if (rows == 2 && cols == 2) {
            SFX(max_backward_rc)(xc + at, dxc + c0 * C, dyc, W * C, C, 2, 2, 0, 2, disjoint, nl);
            return;
        }
        if (rows == 3 && cols == 3) {
            SFX(max_backward_rc)(xc + at, dxc + c0 * C, dyc, W * C, C, 3, 3, 0, 3, disjoint, nl);
            return;
        }
    }
    SFX(max_backward_rc)(xc + at, dxc + c0 * C, dyc, W * C, C, rows, cols, skip, walk, disjoint,
                         nl);
}

/* max((x - bn[0]) * bn[1] + bn[2], 0) for bn != NULL (else x): batch norm and ReLU as
 * batchnorm_impl.h's fc_bn_affine computes them (the build contracts no multiply-add, so the
 * same bits), numpy.maximum semantics: NaN kept, -0 -> +0. */
FC_POOL_BODY VT SFX(vld_bn_relu)(const T *p, ptrdiff_t nl, const VT *bn)
{
    VT v = SFX(vld_n)(p, nl);
    if (bn == NULL) return v;
    v = (v - bn[0]) * bn[1] + bn[2];
    return SFX(vmax)(SFX(vsplat)((T)0), v); /* v where v > 0 or NaN, else +0 */
}

/* The window maximum and its first maximum's tap index, FC_POOL_NO_ARGMAX where the maximum
 * is NaN; the tap of the window's row r, column k is tap0 + r * pool_w + k. */
FC_POOL_BODY void SFX(argmax_rc)(const T *p, T *o, unsigned char *am, ptrdiff_t rs, ptrdiff_t C,
                                 ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t tap0, ptrdiff_t pool_w,
                                 ptrdiff_t nl, const VT *bn)
{
    const VM none = (VM){0} + FC_POOL_NO_ARGMAX;
    VT best = SFX(vld_bn_relu)(p, nl, bn);
    VM where = SFX(vselm)((VM)(best != best), none, (VM){0} + (int)tap0);
    for (ptrdiff_t r = 0; r < rows; r++)
        for (ptrdiff_t k = (r == 0 ? 1 : 0); k < cols; k++) {
            const VT v = SFX(vld_bn_relu)(p + r * rs + k * C, nl, bn);
            const VM gt = (VM)(v > best), nan = (VM)(v != v);
            best = SFX(vmax)(best, v);
            /* a greater value takes over; a NaN (never greater) leaves no argmax */
            where = SFX(vselm)(gt, (VM){0} + (int)(tap0 + r * pool_w + k),
                               SFX(vselm)(nan, none, where));
        }
    SFX(vst_n)(o, best, nl);
    SFX(vst_bytes_n)(am, where, nl);
}

/* argmax_rc of a full 3x3 window (tap0 0, pool_w == cols; up to 9 taps), its values held in
 * registers: the maximum through the ISA's max alone (which keeps the earlier value on ties),
 * one NaN test for the whole window (an unordered compare per pair of taps), then the first
 * tap equal to the maximum, walking the taps backwards. A vector with a NaN anywhere in the
 * window takes argmax_rc instead, so the results are argmax_rc's bits: without NaNs both keep
 * the first of the greatest values. Four instructions per tap where argmax_rc takes six. */
FC_POOL_BODY void SFX(argmax_full)(const T *p, T *o, unsigned char *am, ptrdiff_t rs, ptrdiff_t C,
                                   ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t nl, const VT *bn)
{
    VT v[9];
    const ptrdiff_t taps = rows * cols;
    for (ptrdiff_t r = 0; r < rows; r++)
        for (ptrdiff_t k = 0; k < cols; k++) v[r * cols + k] = SFX(vld_bn_relu)(p + r * rs + k * C, nl, bn);
    VM nan = SFX(vunord)(v[0], v[taps - 1]);
    for (ptrdiff_t t = 1; t + 1 < taps; t += 2) nan |= SFX(vunord)(v[t], v[t + 1]);
    if (SFX(vany)(nan)) {
        SFX(argmax_rc)(p, o, am, rs, C, rows, cols, 0, cols, nl, bn);
        return;
    }
    VT best = v[0];
    for (ptrdiff_t t = 1; t < taps; t++) best = SFX(vmax_ordered)(best, v[t]);
    VM where = (VM){0} + (int)(taps - 1);
    for (ptrdiff_t t = taps - 2; t >= 0; t--) where = SFX(vselm)((VM)(v[t] == best), (VM){0} + (int)t, where);
    SFX(vst_n)(o, best, nl);
    SFX(vst_bytes_n)(am, where, nl);
}

/* The window of rows [r0, r1) x columns [c0, c1); its padded corner is (top, left). */
FC_POOL_BODY void SFX(argmax_window_v)(const T *xc, T *o, unsigned char *am, ptrdiff_t W,
                                       ptrdiff_t C, ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t c0,
                                       ptrdiff_t c1, ptrdiff_t top, ptrdiff_t left,
                                       ptrdiff_t pool_w, ptrdiff_t nl, const VT *bn)
{
    SFX(argmax_rc)(xc + (r0 * W + c0) * C, o, am, W * C, C, r1 - r0, c1 - c0,
                   (r0 - top) * pool_w + (c0 - left), pool_w, nl, bn);
}

/* Out-of-line copies of a row body (its last two parameters the window's rows and columns)
 * for the 2x2 and 3x3 shapes, and the one for g's windows (NULL for other shapes). */
#define FC_POOL_ROW_SHAPES(body, PARAMS, ...)                                                  \
    static __attribute__((noinline)) void SFX(body##_2x2) PARAMS { SFX(body)(__VA_ARGS__, 2, 2); } \
    static __attribute__((noinline)) void SFX(body##_3x3) PARAMS { SFX(body)(__VA_ARGS__, 3, 3); }
#define FC_POOL_PICK_ROW(body, g)                                                               \
    ((g)->pool_h == 2 && (g)->pool_w == 2   ? SFX(body##_2x2)                                   \
     : (g)->pool_h == 3 && (g)->pool_w == 3 ? SFX(body##_3x3)                                   \
                                            : NULL)

/* Run `stmt` over a pixel's channels LANES at a time, with nl (channels in the vector) the
 * constant LANES for the whole vectors -- vld_n / vst_n then fold to plain loads and stores --
 * and C - i for the partial vector left over. */
#define FC_POOL_FOR_VECTORS(C, i, nl, stmt)                                                     \
    do {                                                                                        \
        ptrdiff_t i = 0;                                                                        \
        for (; i + LANES <= (C); i += LANES) {                                                  \
            const ptrdiff_t nl = LANES;                                                         \
            stmt;                                                                               \
        }                                                                                       \
        if (i < (C)) {                                                                          \
            const ptrdiff_t nl = (C) - i;                                                       \
            stmt;                                                                               \
        }                                                                                       \
    } while (0)

/* The argmax of `count` whole windows of one output row, `rows` x `cols` taps each, the first
 * at xw (channel 0 of its top-left pixel), the next stride_w pixels on; with shift != NULL of
 * the batch norm + ReLU of x (vld_bn_relu). max_pool_argmax sends the 2x2 and 3x3 windows
 * inside the image here, each shape through its own out-of-line function (below): inlined
 * into the per-window loop, the 3x3 body made the 2x2 one 5-25% slower there. */
FC_POOL_BODY void SFX(argmax_row)(const T *xw, T *o, unsigned char *am, ptrdiff_t W, ptrdiff_t C,
                                  ptrdiff_t stride_w, ptrdiff_t count, ptrdiff_t rows,
                                  ptrdiff_t cols, const T *shift, const T *scale, const T *bias)
{
    for (ptrdiff_t w = 0; w < count; w++, xw += stride_w * C, o += C, am += C) {
        /* Prefetch the columns window w + 4 adds, row by row: with the argmax's extra work
         * between loads, fewer of them were in flight (64x32x32x64 3x3/2 forward with argmax,
         * calls of the two builds alternated, p10: 2 threads 0.650 -> 0.570 ms, 1 thread 1.234
         * -> 1.156; 2 or 8 windows ahead: 0.574 / 0.570 ms at 2 threads, no gain on 1). */
        if (w + 4 < count)
            for (ptrdiff_t r = 0; r < rows; r++) {
                const char *next = (const char *)(xw + (r * W + 4 * stride_w + cols - stride_w) * C);
                for (ptrdiff_t b = 0; b < stride_w * C * (ptrdiff_t)sizeof(T); b += 64)
                    __builtin_prefetch(next + b);
            }
        FC_POOL_FOR_VECTORS(C, i, nl, {
            VT coef[3];
            if (shift != NULL) {
                coef[0] = SFX(vld_n)(shift + i, nl);
                coef[1] = SFX(vld_n)(scale + i, nl);
                coef[2] = SFX(vld_n)(bias + i, nl);
            }
            const VT *bn = shift != NULL ? coef : NULL;
            if (rows * cols == 9) /* 2x2: argmax_full measured 6-14% slower than argmax_rc */
                SFX(argmax_full)(xw + i, o + i, am + i, W * C, C, rows, cols, nl, bn);
            else
                SFX(argmax_rc)(xw + i, o + i, am + i, W * C, C, rows, cols, 0, cols, nl, bn);
        });
    }
}

/* argmax_row with the batch norm's coefficients or without (shift NULL), each compiled apart */
FC_POOL_BODY void SFX(argmax_row_bn)(const T *xw, T *o, unsigned char *am, ptrdiff_t W, ptrdiff_t C,
                                     ptrdiff_t stride_w, ptrdiff_t count, const T *shift,
                                     const T *scale, const T *bias, ptrdiff_t rows, ptrdiff_t cols)
{
    if (shift != NULL)
        SFX(argmax_row)(xw, o, am, W, C, stride_w, count, rows, cols, shift, scale, bias);
    else
        SFX(argmax_row)(xw, o, am, W, C, stride_w, count, rows, cols, NULL, NULL, NULL);
}
FC_POOL_ROW_SHAPES(argmax_row_bn, (const T *xw, T *o, unsigned char *am, ptrdiff_t W, ptrdiff_t C,
                                   ptrdiff_t stride_w, ptrdiff_t count, const T *shift,
                                   const T *scale, const T *bias),
                   xw, o, am, W, C, stride_w, count, shift, scale, bias)

/* Backward from the argmax: each window pixel gets dy where the argmax names it, else 0 --
 * assigned when windows do not overlap, added otherwise (taps numbered as in argmax_rc). */
FC_POOL_BODY void SFX(argmax_scatter_rc)(const unsigned char *am, const T *dyc, T *dp,
                                         ptrdiff_t rs, ptrdiff_t C, ptrdiff_t rows,
                                         ptrdiff_t cols, ptrdiff_t tap0, ptrdiff_t pool_w,
                                         int disjoint, ptrdiff_t nl)
{
    const VM where = SFX(vld_bytes_n)(am, nl);
    const VT grad = SFX(vld_n)(dyc, nl);
    for (ptrdiff_t r = 0; r < rows; r++)
        for (ptrdiff_t k = 0; k < cols; k++) {
            const VT add = SFX(vkeep)((VM)(where == (int)(tap0 + r * pool_w + k)), grad);
            T *d = dp + r * rs + k * C;
            if (disjoint) SFX(vst_assign)(d, add, nl, disjoint);
            else SFX(vst_n)(d, SFX(vld_n)(d, nl) + add, nl);
        }
}

/* Rows [s0, s1) x columns [c0, c1) of the window whose padded corner is (top, left); dxc is
 * column 0 of dx row s0. */
FC_POOL_BODY void SFX(argmax_scatter_window_v)(const unsigned char *am, const T *dyc, T *dxc,
                                               ptrdiff_t W, ptrdiff_t C, ptrdiff_t s0,
                                               ptrdiff_t s1, ptrdiff_t c0, ptrdiff_t c1,
                                               ptrdiff_t top, ptrdiff_t left, ptrdiff_t pool_w,
                                               int disjoint, ptrdiff_t nl)
{
    SFX(argmax_scatter_rc)(am, dyc, dxc + c0 * C, W * C, C, s1 - s0, c1 - c0,
                           (s0 - top) * pool_w + (c0 - left), pool_w, disjoint, nl);
}

/* argmax_scatter_rc for `count` whole windows of one output row, `rows` x `cols` taps each,
 * the first at dp (channel 0 of its top-left dx pixel), the next stride_w pixels on; am and
 * dyc at the first window's output. As argmax_row, one out-of-line function per shape. */
FC_POOL_BODY void SFX(argmax_scatter_row)(const unsigned char *am, const T *dyc, T *dp,
                                          ptrdiff_t W, ptrdiff_t C, ptrdiff_t stride_w,
                                          ptrdiff_t count, ptrdiff_t rows, ptrdiff_t cols,
                                          int disjoint)
{
    for (ptrdiff_t w = 0; w < count; w++, dp += stride_w * C, am += C, dyc += C)
        FC_POOL_FOR_VECTORS(C, i, nl, SFX(argmax_scatter_rc)(am + i, dyc + i, dp + i, W * C, C, rows,
                                                             cols, 0, cols, disjoint, nl));
}

/* argmax_scatter_row with windows that do not overlap or do, each compiled apart */
FC_POOL_BODY void SFX(argmax_scatter_row_any)(const unsigned char *am, const T *dyc, T *dp,
                                              ptrdiff_t W, ptrdiff_t C, ptrdiff_t stride_w,
                                              ptrdiff_t count, int disjoint, ptrdiff_t rows,
                                              ptrdiff_t cols)
{
    if (disjoint == FC_POOL_STREAM)
        SFX(argmax_scatter_row)(am, dyc, dp, W, C, stride_w, count, rows, cols, FC_POOL_STREAM);
    else if (disjoint)
        SFX(argmax_scatter_row)(am, dyc, dp, W, C, stride_w, count, rows, cols, FC_POOL_ASSIGN);
    else
        SFX(argmax_scatter_row)(am, dyc, dp, W, C, stride_w, count, rows, cols, 0);
}
FC_POOL_ROW_SHAPES(argmax_scatter_row_any, (const unsigned char *am, const T *dyc, T *dp,
                                            ptrdiff_t W, ptrdiff_t C, ptrdiff_t stride_w,
                                            ptrdiff_t count, int disjoint),
                   am, dyc, dp, W, C, stride_w, count, disjoint)

typedef void (*SFX(fc_scatter_row_fn))(const unsigned char *, const T *, T *, ptrdiff_t,
                                        ptrdiff_t, ptrdiff_t, ptrdiff_t, int);

/* The window sum in row-major order, divided by the number of real pixels. */
FC_POOL_BODY void SFX(avg_rc)(const T *p, T *o, ptrdiff_t rs, ptrdiff_t C, ptrdiff_t rows,
                              ptrdiff_t cols, ptrdiff_t nl)
{
    VT acc = SFX(vld_n)(p, nl);
    for (ptrdiff_t r = 0; r < rows; r++)
        for (ptrdiff_t k = (r == 0 ? 1 : 0); k < cols; k++) acc += SFX(vld_n)(p + r * rs + k * C, nl);
    SFX(vst_n)(o, SFX(vdivide)(acc, rows * cols), nl);
}

FC_POOL_BODY void SFX(avg_window_v)(const T *xc, T *o, ptrdiff_t W, ptrdiff_t C, ptrdiff_t r0,
                                    ptrdiff_t r1, ptrdiff_t c0, ptrdiff_t c1, ptrdiff_t nl)
{
    SFX(avg_rc)(xc + (r0 * W + c0) * C, o, W * C, C, r1 - r0, c1 - c0, nl);
}

/* Average-pooling backward of one window's rows [s0, s1): each pixel gets (or, with
 * overlapping windows, adds) dy / count, the share computed in T as the reference does. */
FC_POOL_BODY void SFX(avg_backward_rc)(const T *dyc, T *dp, ptrdiff_t rs, ptrdiff_t C,
                                       ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t count,
                                       int disjoint, ptrdiff_t nl)
{
    const VT share = SFX(vdivide)(SFX(vld_n)(dyc, nl), count);
    for (ptrdiff_t r = 0; r < rows; r++)
        for (ptrdiff_t k = 0; k < cols; k++) {
            T *d = dp + r * rs + k * C;
            if (disjoint) SFX(vst_assign)(d, share, nl, disjoint);
            else SFX(vst_n)(d, SFX(vld_n)(d, nl) + share, nl);
        }
}

/* The window's rows [s0, s1) x columns [c0, c1); dxc is column 0 of dx row s0. */
FC_POOL_BODY void SFX(avg_backward_window_v)(const T *dyc, T *dxc, ptrdiff_t W, ptrdiff_t C,
                                             ptrdiff_t s0, ptrdiff_t s1, ptrdiff_t c0,
                                             ptrdiff_t c1, ptrdiff_t count, int disjoint,
                                             ptrdiff_t nl)
{
    SFX(avg_backward_rc)(dyc, dxc + c0 * C, W * C, C, s1 - s0, c1 - c0, count,
                         disjoint, nl);
}

/* window_max_rc of a whole window of at most 9 taps as argmax_full finds it: the ISA's max
 * alone and one NaN test for the window (window_max_rc where there is a NaN). */
FC_POOL_BODY VT SFX(window_max_full)(const T *p, ptrdiff_t rs, ptrdiff_t C, ptrdiff_t rows,
                                     ptrdiff_t cols, ptrdiff_t nl)
{
    VT v[9];
    const ptrdiff_t taps = rows * cols;
    for (ptrdiff_t r = 0; r < rows; r++)
        for (ptrdiff_t k = 0; k < cols; k++) v[r * cols + k] = SFX(vld_n)(p + r * rs + k * C, nl);
    VM nan = SFX(vunord)(v[0], v[taps - 1]);
    for (ptrdiff_t t = 1; t + 1 < taps; t += 2) nan |= SFX(vunord)(v[t], v[t + 1]);
    if (SFX(vany)(nan)) return SFX(window_max_rc)(p, rs, C, rows, cols, nl);
    VT best = v[0];
    for (ptrdiff_t t = 1; t < taps; t++) best = SFX(vmax_ordered)(best, v[t]);
    return best;
}

/* Row bodies of the plain max and average forwards and the average backward: `count` whole
 * windows of one output row, the first at xw / dp (x, dx at its top-left pixel) and o / dyc
 * (its output), the next stride_w pixels on. */
FC_POOL_BODY void SFX(max_row)(const T *xw, T *o, ptrdiff_t W, ptrdiff_t C, ptrdiff_t stride_w,
                               ptrdiff_t count, ptrdiff_t rows, ptrdiff_t cols)
{
    for (ptrdiff_t w = 0; w < count; w++, xw += stride_w * C, o += C)
        FC_POOL_FOR_VECTORS(C, i, nl,
                            SFX(vst_n)(o + i, SFX(window_max_full)(xw + i, W * C, C, rows, cols, nl),
                                       nl));
}
FC_POOL_ROW_SHAPES(max_row, (const T *xw, T *o, ptrdiff_t W, ptrdiff_t C, ptrdiff_t stride_w,
                             ptrdiff_t count), xw, o, W, C, stride_w, count)

FC_POOL_BODY void SFX(avg_row)(const T *xw, T *o, ptrdiff_t W, ptrdiff_t C, ptrdiff_t stride_w,
                               ptrdiff_t count, ptrdiff_t rows, ptrdiff_t cols)
{
    for (ptrdiff_t w = 0; w < count; w++, xw += stride_w * C, o += C)
        FC_POOL_FOR_VECTORS(C, i, nl, SFX(avg_rc)(xw + i, o + i, W * C, C, rows, cols, nl));
}
FC_POOL_ROW_SHAPES(avg_row, (const T *xw, T *o, ptrdiff_t W, ptrdiff_t C, ptrdiff_t stride_w,
                             ptrdiff_t count), xw, o, W, C, stride_w, count)

FC_POOL_BODY void SFX(avg_backward_row)(const T *dyc, T *dp, ptrdiff_t W, ptrdiff_t C,
                                        ptrdiff_t stride_w, ptrdiff_t count, int disjoint,
                                        ptrdiff_t rows, ptrdiff_t cols)
{
    for (ptrdiff_t w = 0; w < count; w++, dyc += C, dp += stride_w * C)
        FC_POOL_FOR_VECTORS(C, i, nl, SFX(avg_backward_rc)(dyc + i, dp + i, W * C, C, rows, cols,
                                                           rows * cols, disjoint, nl));
}
/* avg_backward_row with each kind of store (accumulate, assign, stream) compiled apart */
FC_POOL_BODY void SFX(avg_backward_row_any)(const T *dyc, T *dp, ptrdiff_t W, ptrdiff_t C,
                                            ptrdiff_t stride_w, ptrdiff_t count, int disjoint,
                                            ptrdiff_t rows, ptrdiff_t cols)
{
    if (disjoint == FC_POOL_STREAM)
        SFX(avg_backward_row)(dyc, dp, W, C, stride_w, count, FC_POOL_STREAM, rows, cols);
    else if (disjoint)
        SFX(avg_backward_row)(dyc, dp, W, C, stride_w, count, FC_POOL_ASSIGN, rows, cols);
    else
        SFX(avg_backward_row)(dyc, dp, W, C, stride_w, count, 0, rows, cols);
}
FC_POOL_ROW_SHAPES(avg_backward_row_any, (const T *dyc, T *dp, ptrdiff_t W, ptrdiff_t C,
                                          ptrdiff_t stride_w, ptrdiff_t count, int disjoint),
                   dyc, dp, W, C, stride_w, count, disjoint)

#endif

#if FC_POOL_MULTI
/* ---- few channels: several windows per vector ----------------------------------------------
 * With C < LANES one pixel's channels leave most lanes idle and the per-pixel work dominates
 * (LeNet's 2x2 average pooling of 64x28x28x6: 6 of 16 lanes). Windows wholly inside the image
 * are then taken `windows` at a time. Forward: the input columns of that many consecutive
 * windows of one row span at most 2 * LANES values, loaded as two vectors; a two-source lane
 * permutation puts window column k of every window in place: output lane t = w * C + c
 * (window w, channel c) takes offset first_tap[t] + k * C, first_tap[t] = w * stride_w * C + c.
 * Backward (windows that do not overlap): one dy vector holds the windows' shares, a
 * one-source permutation spreads them over the windows' dx columns (lane t of a dx row takes
 * share (t / (stride_w * C)) * C + t % C; column gaps between windows get 0). Taps are
 * visited in the same row-major order with the same arithmetic as the per-pixel path: the
 * results are the same bits. */
typedef struct {
    ptrdiff_t windows;      /* forward: windows per vector, 0 where the path does not apply */
    ptrdiff_t lanes;        /* forward: windows * C output values per vector */
    ptrdiff_t bwd_windows;  /* backward: windows per dx vector, 0 where it does not apply */
    ptrdiff_t bwd_lanes;    /* backward: dx values written per row, first to last window column */
    ptrdiff_t w_lo, w_hi;   /* output columns [w_lo, w_hi) whose windows lie inside the image */
    VM first_tap;           /* forward lane offsets (above) */
    VM spread;              /* backward: the dy lane each dx lane takes */
    VM in_window;           /* backward: all ones on dx lanes inside a window, 0 on gaps */
    VM column;              /* backward: the window column (tap column) of each dx lane */
} SFX(fc_multi_plan);

static SFX(fc_multi_plan) SFX(fc_plan_multi)(const fc_pool2d_geometry *g)
{
    SFX(fc_multi_plan) p;
    const ptrdiff_t C = g->c, sw = g->stride_w, pw = g->pool_w;
    memset(&p, 0, sizeof p);
    if (C >= LANES) return p;
    ptrdiff_t w = LANES / C;
    while (w > 1 && (w - 1) * sw * C + pw * C > 2 * LANES) w--; /* span fits two vectors */
    if (w >= 2) {
        p.windows = w;
        p.lanes = w * C;
        for (ptrdiff_t t = 0; t < LANES; t++)
            p.first_tap[t] = t < w * C ? (t / C) * sw * C + t % C : 0;
    }
    const ptrdiff_t wb = LANES / (sw * C);
    if (pw <= sw && g->pool_h <= g->stride_h && wb >= 1 && (wb >= 2 || pw >= 2)) {
        p.bwd_windows = wb;
        p.bwd_lanes = ((wb - 1) * sw + pw) * C;
        for (ptrdiff_t t = 0; t < LANES; t++) {
            p.spread[t] = t < wb * sw * C ? (t / (sw * C)) * C + t % C : 0;
            p.in_window[t] = (t / C) % sw < pw ? -1 : 0;
            p.column[t] = (t / C) % sw;
        }
    }
    const fc_span inside = fc_inside_windows(g->w, g->pad_left, pw, sw, g->out_w);
    p.w_lo = inside.lo;
    p.w_hi = inside.hi;
    return p;
}

static inline VT SFX(vpermute2)(VT lo, VT hi, VM idx)
{
    if (sizeof(T) == 4) return (VT)_mm512_permutex2var_ps((__m512)lo, (__m512i)idx, (__m512)hi);
    return (VT)_mm512_permutex2var_pd((__m512d)lo, (__m512i)idx, (__m512d)hi);
}

static inline VT SFX(vpermute)(VT a, VM idx)
{
    if (sizeof(T) == 4) return (VT)_mm512_permutexvar_ps((__m512i)idx, (__m512)a);
    return (VT)_mm512_permutexvar_pd((__m512i)idx, (__m512d)a);
}

/* p.windows average windows of one output row: px points at channel 0 of the first window's
 * top-left pixel, `rows` real rows of pool_w columns each. */
FC_POOL_BODY void SFX(avg_windows_multi)(const T *px, T *o, ptrdiff_t W, ptrdiff_t C,
                                         ptrdiff_t rows, ptrdiff_t pool_w,
                                         const SFX(fc_multi_plan) *p)
{
    VT acc = SFX(vsplat)((T)0);
    for (ptrdiff_t r = 0; r < rows; r++) {
        const VT lo = SFX(vld)(px + r * W * C), hi = SFX(vld)(px + r * W * C + LANES);
        for (ptrdiff_t k = 0; k < pool_w; k++) {
            const VT v = SFX(vpermute2)(lo, hi, p->first_tap + (int)(k * C));
            acc = (r == 0 && k == 0) ? v : acc + v; /* the first tap as is (-0.0 stays) */
        }
    }
    SFX(vst_n)(o, SFX(vdivide)(acc, rows * pool_w), p->lanes);
}

/* p.bwd_windows disjoint average windows' dx rows [0, rows) from dxp (channel 0 of the first
 * window's first column in the first row written): each pixel is assigned its share. */
FC_POOL_BODY void SFX(avg_backward_windows_multi)(const T *dyp, T *dxp, ptrdiff_t W, ptrdiff_t C,
                                                  ptrdiff_t rows, ptrdiff_t count,
                                                  const SFX(fc_multi_plan) *p)
{
    const VT share = SFX(vdivide)(SFX(vld_n)(dyp, p->bwd_windows * C), count);
    const VT spread = SFX(vkeep)(p->in_window, SFX(vpermute)(share, p->spread));
    for (ptrdiff_t r = 0; r < rows; r++) SFX(vst_n)(dxp + r * W * C, spread, p->bwd_lanes);
}

/* p.windows max windows of one output row (as avg_windows_multi): their maxima,
 * NaN-propagating, the first maximum kept on ties. */
FC_POOL_BODY VT SFX(max_windows_multi)(const T *px, ptrdiff_t W, ptrdiff_t C, ptrdiff_t rows,
                                       ptrdiff_t pool_w, const SFX(fc_multi_plan) *p)
{
    VT m = SFX(vsplat)((T)0);
    for (ptrdiff_t r = 0; r < rows; r++) {
        const VT lo = SFX(vld)(px + r * W * C), hi = SFX(vld)(px + r * W * C + LANES);
        for (ptrdiff_t k = 0; k < pool_w; k++) {
            const VT v = SFX(vpermute2)(lo, hi, p->first_tap + (int)(k * C));
            m = (r == 0 && k == 0) ? v : SFX(vmax)(m, v);
        }
    }
    return m;
}

/* The same with each window's first maximum as a tap index: the window's first real row is
 * tap row first_row (its padded top may lie above the image), its columns are all real. */
FC_POOL_BODY void SFX(argmax_windows_multi)(const T *px, T *o, unsigned char *am, ptrdiff_t W,
                                            ptrdiff_t C, ptrdiff_t rows, ptrdiff_t first_row,
                                            ptrdiff_t pool_w, const SFX(fc_multi_plan) *p)
{
    const VM none = (VM){0} + FC_POOL_NO_ARGMAX;
    VT best = SFX(vsplat)((T)0);
    VM where = (VM){0};
    for (ptrdiff_t r = 0; r < rows; r++) {
        const VT lo = SFX(vld)(px + r * W * C), hi = SFX(vld)(px + r * W * C + LANES);
        for (ptrdiff_t k = 0; k < pool_w; k++) {
            const VT v = SFX(vpermute2)(lo, hi, p->first_tap + (int)(k * C));
            const VM tap = (VM){0} + (int)((first_row + r) * pool_w + k);
            const VM nan = (VM)(v != v);
            if (r == 0 && k == 0) {
                best = v;
                where = (none & nan) | (tap & ~nan);
                continue;
            }
            const VM gt = (VM)(v > best);
            best = SFX(vsel)(gt | nan, v, best);
            where = (tap & gt) | (((none & nan) | (where & ~nan)) & ~gt);
        }
    }
    SFX(vst_n)(o, best, p->lanes);
    SFX(vst_bytes_n)(am, where, p->lanes);
}

/* Backward from the argmax, windows that do not overlap (as avg_backward_windows_multi): each
 * pixel of p.bwd_windows windows gets its window's dy where the argmax names it, else 0. */
FC_POOL_BODY void SFX(argmax_assign_windows_multi)(const unsigned char *am, const T *dyc, T *dxp,
                                                   ptrdiff_t W, ptrdiff_t C, ptrdiff_t rows,
                                                   ptrdiff_t first_row, ptrdiff_t pool_w,
                                                   const SFX(fc_multi_plan) *p)
{
    const ptrdiff_t nv = p->bwd_windows * C;
    const VM where = (VM)SFX(vpermute)((VT)SFX(vld_bytes_n)(am, nv), p->spread);
    const VT grad = SFX(vkeep)(p->in_window, SFX(vpermute)(SFX(vld_n)(dyc, nv), p->spread));
    for (ptrdiff_t r = 0; r < rows; r++) {
        const VM tap = p->column + (int)((first_row + r) * pool_w);
        SFX(vst_n)(dxp + r * W * C, SFX(vkeep)((VM)(where == tap), grad), p->bwd_lanes);
    }
}
#endif

/* ---- max pooling --------------------------------------------------------------------------- */

void SFX(fc_max_pool2d_forward)(const T *x, T *out, const fc_pool2d_geometry *g, int num_threads)
{
    const ptrdiff_t H = g->h, W = g->w, C = g->c, OH = g->out_h, OW = g->out_w;
    const ptrdiff_t items = g->n * OH;
#if FC_POOL_MULTI
    const SFX(fc_multi_plan) multi = SFX(fc_plan_multi)(g);
    const T *const x_end = x + g->n * H * W * C;
#endif
#if FC_POOL_VECTORS
    void (*row_kernel)(const T *, T *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t) =
        FC_POOL_PICK_ROW(max_row, g);
    const fc_span inside = fc_row_columns(g, row_kernel != NULL && !FC_POOL_IF_MULTI(multi.windows));
#endif
    num_threads = fc_threads_for(g->n * g->h * g->w * g->c, num_threads);
    fc_share item_share;
    fc_share_pass_init(&item_share, items, num_threads);
    (void)num_threads;
#if defined(_OPENMP)
#pragma omp parallel num_threads(num_threads)
#endif
    FC_SHARE_FOR(&item_share, item) {
        ptrdiff_t n = item / OH, oh = item % OH, r0, r1;
        fc_window_span(oh, g->stride_h, g->pad_top, g->pool_h, H, &r0, &r1);
        for (ptrdiff_t ow = 0; ow < OW; ow++) {
            ptrdiff_t c0, c1;
            fc_window_span(ow, g->stride_w, g->pad_left, g->pool_w, W, &c0, &c1);
            T *o = out + (item * OW + ow) * C;
            const T *xn = x + n * H * W * C;
#if FC_POOL_VECTORS
            if (ow == inside.lo && inside.hi > inside.lo && r1 - r0 == g->pool_h) {
                row_kernel(xn + (r0 * W + c0) * C, o, W, C, g->stride_w, inside.hi - inside.lo);
                ow = inside.hi - 1;
                continue;
            }
#endif
#if FC_POOL_MULTI
            if (multi.windows && ow >= multi.w_lo && ow + multi.windows <= multi.w_hi) {
                const T *px = xn + (r0 * W + ow * g->stride_w - g->pad_left) * C;
                if (px + (r1 - r0 - 1) * W * C + 2 * LANES <= x_end) { /* loads stay inside x */
                    SFX(vst_n)(o, SFX(max_windows_multi)(px, W, C, r1 - r0, g->pool_w, &multi),
                               multi.lanes);
                    ow += multi.windows - 1;
                    continue;
                }
            }
#endif
            ptrdiff_t i = 0;
#if FC_POOL_VECTORS
            for (; i + LANES <= C; i += LANES)
                SFX(vst)(o + i, SFX(window_max_v)(xn + i, W, C, r0, r1, c0, c1, LANES));
            if (i < C)
                SFX(vst_n)(o + i, SFX(window_max_v)(xn + i, W, C, r0, r1, c0, c1, C - i), C - i);
            i = C;
#endif
            if (i < C) { /* channels left over */
                SFX(fc_copy)(o + i, xn + (r0 * W + c0) * C + i, C - i);
                for (ptrdiff_t r = r0; r < r1; r++)
                    for (ptrdiff_t col = (r == r0 ? c0 + 1 : c0); col < c1; col++)
                        SFX(fc_max_into)(o + i, xn + (r * W + col) * C + i, C - i);
            }
        }
    }
}

/* The max-pooling backward in row bands (see the top of this file), each window's first
 * maximum found again in x, or (x == NULL) named by the recorded argmax. */
static void SFX(max_backward_bands)(const T *dy, const T *x, const unsigned char *argmax, T *dx,
                                    const fc_pool2d_geometry *g, int num_threads)
{
    const ptrdiff_t H = g->h, W = g->w, C = g->c, OH = g->out_h, OW = g->out_w;
    const fc_band_plan plan = fc_plan_bands(g);
    const ptrdiff_t items = g->n * plan.bands;
    const int disjoint = g->pool_h <= g->stride_h && g->pool_w <= g->stride_w;
    /* Windows up to this many output rows above a band can still reach into it. */
    const ptrdiff_t reach = disjoint ? 0 : (g->pool_h + g->stride_h - 1) / g->stride_h;
#if FC_POOL_VECTORS
    SFX(fc_scatter_row_fn) row_kernel = FC_POOL_PICK_ROW(argmax_scatter_row_any, g);
    const fc_span inside = fc_row_columns(g, row_kernel != NULL && x == NULL);
#endif
    const ptrdiff_t stage_rows = SFX(fc_stage_rows)(dx, g, disjoint);
    num_threads = fc_threads_for(g->n * g->h * g->w * g->c, num_threads);
    fc_share item_share;
    fc_share_pass_init(&item_share, items, num_threads);
    (void)num_threads;
#if defined(_OPENMP)
#pragma omp parallel num_threads(num_threads)
#endif
    {
        SFX(fc_band_out) out = SFX(fc_band_out_init)(stage_rows, g);
        FC_SHARE_FOR(&item_share, item) {
            T target[FC_POOL_CHANNEL_BLOCK];
            SFX(fc_band_begin)(&out, dx, g, &plan, item);
            const ptrdiff_t n = out.n;
            const T *xn = x != NULL ? x + n * H * W * C : NULL;
            for (ptrdiff_t o = fc_max_pd(out.o_lo - reach, 0); o < out.o_hi; o++) {
                ptrdiff_t r0, r1, s0, s1; /* the window's rows; those it writes, in the band */
                T *const rows = SFX(fc_band_window)(&out, g, disjoint, o, &r0, &r1, &s0, &s1);
                if (rows == NULL) continue; /* (at dx row s0) */
                const ptrdiff_t top = o * g->stride_h - g->pad_top;
                for (ptrdiff_t ow = 0; ow < OW; ow++) {
                    ptrdiff_t c0, c1;
                    fc_window_span(ow, g->stride_w, g->pad_left, g->pool_w, W, &c0, &c1);
                    const ptrdiff_t at = ((n * OH + o) * OW + ow) * C;
                    const T *dy_px = dy + at;
                    ptrdiff_t i = 0;
                    if (xn == NULL) {
                        const ptrdiff_t left = ow * g->stride_w - g->pad_left;
#if FC_POOL_VECTORS
                        if (ow == inside.lo && inside.hi > inside.lo && s0 == top &&
                            s1 == top + g->pool_h) {
                            row_kernel(argmax + at, dy_px, rows + left * C, W, C, g->stride_w,
                                       inside.hi - inside.lo, disjoint);
                            ow = inside.hi - 1;
                            continue;
                        }
                        for (; i + LANES <= C; i += LANES)
                            SFX(argmax_scatter_window_v)(argmax + at + i, dy_px + i, rows + i, W,
                                                         C, s0, s1, c0, c1, top, left, g->pool_w,
                                                         disjoint, LANES);
                        if (i < C)
                            SFX(argmax_scatter_window_v)(argmax + at + i, dy_px + i, rows + i, W,
                                                         C, s0, s1, c0, c1, top, left, g->pool_w,
                                                         disjoint, C - i);
                        i = C;
#endif
                        if (i == C) continue;
                        for (ptrdiff_t r = s0; r < s1; r++)
                            for (ptrdiff_t col = c0; col < c1; col++) {
                                T *d = rows + ((r - s0) * W + col) * C + i;
                                const int tap = (int)((r - top) * g->pool_w + (col - left));
                                if (disjoint)
                                    SFX(fc_argmax_assign)(d, argmax + at + i, dy_px + i, tap,
                                                          C - i);
                                else
                                    SFX(fc_argmax_accumulate)(d, argmax + at + i, dy_px + i, tap,
                                                              C - i);
                            }
                        continue;
                    }
#if FC_POOL_VECTORS
                    /* The same two passes as below, the window maximum held in a register. */
                    for (; i + LANES <= C; i += LANES)
                        SFX(max_backward_window_v)(xn + i, rows + i, dy_px + i, W, C, r0, r1, c0,
                                                   c1, s0, s1, disjoint, LANES);
                    if (i < C)
                        SFX(max_backward_window_v)(xn + i, rows + i, dy_px + i, W, C, r0, r1, c0,
                                                   c1, s0, s1, disjoint, C - i);
                    i = C;
#endif
                    for (ptrdiff_t cb = i; cb < C; cb += FC_POOL_CHANNEL_BLOCK) {
                        const ptrdiff_t nc = fc_min_pd(FC_POOL_CHANNEL_BLOCK, C - cb);
                        /* Pass 1: the window maximum (over all its rows, also outside the band). */
                        SFX(fc_copy)(target, xn + (r0 * W + c0) * C + cb, nc);
                        for (ptrdiff_t r = r0; r < r1; r++)
                            for (ptrdiff_t col = (r == r0 ? c0 + 1 : c0); col < c1; col++)
                                SFX(fc_max_into)(target, xn + (r * W + col) * C + cb, nc);
                        /* Pass 2: walk the window in row-major order up to the band's end; rows
                         * above the band only retire channels whose first maximum lies there. */
                        for (ptrdiff_t r = r0; r < s1; r++) {
                            for (ptrdiff_t col = c0; col < c1; col++) {
                                const ptrdiff_t off = (r * W + col) * C + cb;
                                if (r < s0) {
                                    SFX(fc_first_max_skip)(xn + off, target, nc);
                                    continue;
                                }
                                T *d = rows + ((r - s0) * W + col) * C + cb;
                                if (disjoint)
                                    SFX(fc_first_max_assign)(d, xn + off, target, dy_px + cb, nc);
                                else
                                    SFX(fc_first_max_scatter)(d, xn + off, target, dy_px + cb, nc);
                            }
                        }
                    }
                }
            }
            SFX(fc_band_end)(&out, g);
        }
        SFX(fc_band_out_release)(&out);
    }
}

void SFX(fc_max_pool2d_backward)(const T *dy, const T *x, T *dx, const fc_pool2d_geometry *g,
                                 int num_threads)
{
    SFX(max_backward_bands)(dy, x, NULL, dx, g, num_threads);
}

/* ---- max pooling with a recorded argmax, and its backward ---------------------------------- */

/* x' = max((x - shift) * scale + bias, 0) per channel (see vld_bn_relu) into dst. */
static inline void SFX(fc_bn_relu_copy)(T *restrict dst, const T *restrict x,
                                        const T *restrict shift, const T *restrict scale,
                                        const T *restrict bias, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        const T v = (x[i] - shift[i]) * scale[i] + bias[i];
        dst[i] = (v > (T)0 || v != v) ? v : (T)0;
    }
}

/* Max pooling with argmax of x, or with shift != NULL of the batch norm + ReLU of x (the
 * pooled values of fc_bn_affine's output, which is never written). */
static void SFX(max_pool_argmax)(const T *x, const T *shift, const T *scale, const T *bias,
                                 T *out, unsigned char *argmax, const fc_pool2d_geometry *g,
                                 int num_threads)
{
    const ptrdiff_t H = g->h, W = g->w, C = g->c, OH = g->out_h, OW = g->out_w;
    const ptrdiff_t items = g->n * OH;
    const int bn = shift != NULL;
#if FC_POOL_MULTI
    const SFX(fc_multi_plan) multi = SFX(fc_plan_multi)(g);
    const T *const x_end = x + g->n * H * W * C;
#endif
#if FC_POOL_VECTORS
    /* 2x2 and 3x3 windows wholly inside the image, columns [inside.lo, inside.hi) of rows
     * whose windows have all their rows, go to a row kernel (argmax_row) */
    void (*row_kernel)(const T *, T *, unsigned char *, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                       ptrdiff_t, const T *, const T *, const T *) = FC_POOL_PICK_ROW(argmax_row_bn, g);
    const fc_span inside =
        fc_row_columns(g, row_kernel != NULL && !FC_POOL_IF_MULTI(!bn && multi.windows));
#endif
    num_threads = fc_threads_for(g->n * g->h * g->w * g->c, num_threads);
    fc_share item_share;
    fc_share_pass_init(&item_share, items, num_threads);
    (void)num_threads;
#if defined(_OPENMP)
#pragma omp parallel num_threads(num_threads)
#endif
    FC_SHARE_FOR(&item_share, item) {
        const ptrdiff_t n = item / OH, oh = item % OH, top = oh * g->stride_h - g->pad_top;
        T best[FC_POOL_CHANNEL_BLOCK], where[FC_POOL_CHANNEL_BLOCK], px[FC_POOL_CHANNEL_BLOCK];
        ptrdiff_t r0, r1;
        fc_window_span(oh, g->stride_h, g->pad_top, g->pool_h, H, &r0, &r1);
        for (ptrdiff_t ow = 0; ow < OW; ow++) {
            const ptrdiff_t left = ow * g->stride_w - g->pad_left;
            ptrdiff_t c0, c1;
            fc_window_span(ow, g->stride_w, g->pad_left, g->pool_w, W, &c0, &c1);
            const ptrdiff_t o = (item * OW + ow) * C;
            ptrdiff_t i = 0;
#if FC_POOL_VECTORS
            if (ow == inside.lo && inside.hi > inside.lo && r1 - r0 == g->pool_h) {
                row_kernel(x + ((n * H + r0) * W + left) * C, out + o, argmax + o, W, C,
                           g->stride_w, inside.hi - inside.lo, shift, scale, bias);
                ow = inside.hi - 1;
                continue;
            }
#endif
#if FC_POOL_MULTI
            if (!bn && multi.windows && ow >= multi.w_lo && ow + multi.windows <= multi.w_hi) {
                const T *xw = x + ((n * H + r0) * W + left) * C;
                if (xw + (r1 - r0 - 1) * W * C + 2 * LANES <= x_end) { /* loads stay inside x */
                    SFX(argmax_windows_multi)(xw, out + o, argmax + o, W, C, r1 - r0, r0 - top,
                                              g->pool_w, &multi);
                    ow += multi.windows - 1;
                    continue;
                }
            }
#endif
#if FC_POOL_VECTORS
            const T *ximg = x + n * H * W * C;
            for (; i < C; i += LANES) {
                const ptrdiff_t nl = fc_min_pd(LANES, C - i);
                if (bn) {
                    const VT coef[3] = {SFX(vld_n)(shift + i, nl), SFX(vld_n)(scale + i, nl),
                                        SFX(vld_n)(bias + i, nl)};
                    SFX(argmax_window_v)(ximg + i, out + o + i, argmax + o + i, W, C, r0, r1, c0,
                                         c1, top, left, g->pool_w, nl, coef);
                } else if (nl == LANES) {
                    SFX(argmax_window_v)(ximg + i, out + o + i, argmax + o + i, W, C, r0, r1, c0,
                                         c1, top, left, g->pool_w, LANES, NULL);
                } else {
                    SFX(argmax_window_v)(ximg + i, out + o + i, argmax + o + i, W, C, r0, r1, c0,
                                         c1, top, left, g->pool_w, nl, NULL);
                }
            }
#endif
            for (ptrdiff_t cb = i; cb < C; cb += FC_POOL_CHANNEL_BLOCK) {
                const ptrdiff_t nc = fc_min_pd(FC_POOL_CHANNEL_BLOCK, C - cb);
                const T *xn = x + n * H * W * C + cb;
                for (ptrdiff_t r = r0; r < r1; r++)
                    for (ptrdiff_t col = c0; col < c1; col++) {
                        const T *xp = xn + (r * W + col) * C;
                        const T tap = (T)((r - top) * g->pool_w + (col - left));
                        if (bn) {
                            SFX(fc_bn_relu_copy)(px, xp, shift + cb, scale + cb, bias + cb, nc);
                            xp = px;
                        }
                        if (r == r0 && col == c0) SFX(fc_argmax_init)(best, where, xp, tap, nc);
                        else SFX(fc_argmax_step)(best, where, xp, tap, nc);
                    }
                SFX(fc_argmax_store)(out + o + cb, argmax + o + cb, best, where, nc);
            }
        }
    }
}

void SFX(fc_max_pool2d_forward_argmax)(const T *x, T *out, unsigned char *argmax,
                                       const fc_pool2d_geometry *g, int num_threads)
{
    SFX(max_pool_argmax)(x, NULL, NULL, NULL, out, argmax, g, num_threads);
}

void SFX(fc_max_pool2d_forward_argmax_bn_relu)(const T *x, const T *shift, const T *scale,
                                               const T *bias, T *out, unsigned char *argmax,
                                               const fc_pool2d_geometry *g, int num_threads)
{
    SFX(max_pool_argmax)(x, shift, scale, bias, out, argmax, g, num_threads);
}

/* Windows that do not overlap: each item owns the dx rows of one output row's windows (and
 * the uncovered rows down to the next window) and assigns every pixel once, dy or 0, reading
 * each window's dy and argmax once. */
static void SFX(fc_max_pool2d_backward_argmax_disjoint)(const T *dy, const unsigned char *argmax,
                                                        T *dx, const fc_pool2d_geometry *g,
                                                        int num_threads)
{
    const ptrdiff_t H = g->h, W = g->w, C = g->c, OH = g->out_h, OW = g->out_w;
    const ptrdiff_t items = g->n * OH;
    fc_share item_share;
    fc_share_pass_init(&item_share, items, num_threads);
    const int assign = SFX(fc_pool_streams)(dx, g) ? FC_POOL_STREAM : FC_POOL_ASSIGN;
#if FC_POOL_MULTI
    const SFX(fc_multi_plan) multi = SFX(fc_plan_multi)(g);
#endif
#if FC_POOL_VECTORS
    SFX(fc_scatter_row_fn) row_kernel = FC_POOL_PICK_ROW(argmax_scatter_row_any, g);
    const fc_span inside =
        fc_row_columns(g, row_kernel != NULL && !FC_POOL_IF_MULTI(multi.bwd_windows));
#endif
#if defined(_OPENMP)
#pragma omp parallel num_threads(num_threads)
#endif
    {
        FC_SHARE_FOR(&item_share, mirrored) {
            const ptrdiff_t item = fc_share_mirror(&item_share, mirrored);
            const ptrdiff_t n = item / OH, oh = item % OH, top = oh * g->stride_h - g->pad_top;
            T *dxn = dx + n * H * W * C;
            ptrdiff_t b0, b1, r0, r1;
            fc_band_rows(g, oh, oh + 1, &b0, &b1);
            fc_window_span(oh, g->stride_h, g->pad_top, g->pool_h, H, &r0, &r1);
            SFX(fc_zero_rows)(dxn, g, b0, r0);
            SFX(fc_zero_rows)(dxn, g, r1, b1);
            for (ptrdiff_t r = r0; r < r1; r++) SFX(fc_zero_column_gaps)(dxn + r * W * C, g);
            T *const dxr = dxn + r0 * W * C; /* dx row r0, where the windows' rows start */
            for (ptrdiff_t ow = 0; ow < OW; ow++) {
                const ptrdiff_t left = ow * g->stride_w - g->pad_left, o = (item * OW + ow) * C;
#if FC_POOL_VECTORS
                if (ow == inside.lo && inside.hi > inside.lo && r1 - r0 == g->pool_h) {
                    row_kernel(argmax + o, dy + o, dxr + left * C, W, C, g->stride_w,
                               inside.hi - inside.lo, assign);
                    ow = inside.hi - 1;
                    continue;
                }
#endif
#if FC_POOL_MULTI
                if (multi.bwd_windows && ow >= multi.w_lo && ow + multi.bwd_windows <= multi.w_hi) {
                    SFX(argmax_assign_windows_multi)(argmax + o, dy + o, dxr + left * C, W, C,
                                                     r1 - r0, r0 - top, g->pool_w, &multi);
                    ow += multi.bwd_windows - 1;
                    continue;
                }
#endif
                ptrdiff_t c0, c1;
                fc_window_span(ow, g->stride_w, g->pad_left, g->pool_w, W, &c0, &c1);
                ptrdiff_t i = 0;
#if FC_POOL_VECTORS
                for (; i + LANES <= C; i += LANES)
                    SFX(argmax_scatter_window_v)(argmax + o + i, dy + o + i, dxr + i, W, C, r0, r1,
                                                 c0, c1, top, left, g->pool_w, assign, LANES);
                if (i < C)
                    SFX(argmax_scatter_window_v)(argmax + o + i, dy + o + i, dxr + i, W, C, r0, r1,
                                                 c0, c1, top, left, g->pool_w, 1, C - i);
                i = C;
#endif
                if (i == C) continue;
                for (ptrdiff_t r = r0; r < r1; r++)
                    for (ptrdiff_t col = c0; col < c1; col++)
                        SFX(fc_argmax_assign)(dxn + (r * W + col) * C + i, argmax + o + i, dy + o + i,
                                              (int)((r - top) * g->pool_w + (col - left)), C - i);
            }
        }
        if (assign == FC_POOL_STREAM) fc_store_fence(); /* (dx is read after the region) */
    }
}

void SFX(fc_max_pool2d_backward_argmax)(const T *dy, const unsigned char *argmax, T *dx,
                                        const fc_pool2d_geometry *g, int num_threads)
{
    if (g->pool_h <= g->stride_h && g->pool_w <= g->stride_w)
        SFX(fc_max_pool2d_backward_argmax_disjoint)(
            dy, argmax, dx, g, fc_threads_for(g->n * g->h * g->w * g->c, num_threads));
    else
        SFX(max_backward_bands)(dy, NULL, argmax, dx, g, num_threads);
}

/* ---- average pooling ----------------------------------------------------------------------- */

void SFX(fc_avg_pool2d_forward)(const T *x, T *out, const fc_pool2d_geometry *g, int num_threads)
{
    const ptrdiff_t H = g->h, W = g->w, C = g->c, OH = g->out_h, OW = g->out_w;
    const ptrdiff_t items = g->n * OH;
#if FC_POOL_MULTI
    const SFX(fc_multi_plan) multi = SFX(fc_plan_multi)(g);
    const T *const x_end = x + g->n * H * W * C;
#endif
#if FC_POOL_VECTORS
    void (*row_kernel)(const T *, T *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t) =
        FC_POOL_PICK_ROW(avg_row, g);
    const fc_span inside = fc_row_columns(g, row_kernel != NULL && !FC_POOL_IF_MULTI(multi.windows));
#endif
    num_threads = fc_threads_for(g->n * g->h * g->w * g->c, num_threads);
    fc_share item_share;
    fc_share_pass_init(&item_share, items, num_threads);
    (void)num_threads;
#if defined(_OPENMP)
#pragma omp parallel num_threads(num_threads)
#endif
    {
        FC_FTZ_BEGIN();
        FC_SHARE_FOR(&item_share, item) {
            ptrdiff_t n = item / OH, oh = item % OH, r0, r1;
            fc_window_span(oh, g->stride_h, g->pad_top, g->pool_h, H, &r0, &r1);
            for (ptrdiff_t ow = 0; ow < OW; ow++) {
                ptrdiff_t c0, c1;
                T *o = out + (item * OW + ow) * C;
                const T *xn = x + n * H * W * C;
#if FC_POOL_VECTORS
                if (ow == inside.lo && inside.hi > inside.lo && r1 - r0 == g->pool_h) {
                    row_kernel(xn + (r0 * W + ow * g->stride_w - g->pad_left) * C, o, W, C,
                               g->stride_w, inside.hi - inside.lo);
                    ow = inside.hi - 1;
                    continue;
                }
#endif
#if FC_POOL_MULTI
                if (multi.windows && ow >= multi.w_lo && ow + multi.windows <= multi.w_hi) {
                    const T *px = xn + (r0 * W + ow * g->stride_w - g->pad_left) * C;
                    if (px + (r1 - r0 - 1) * W * C + 2 * LANES <= x_end) { /* loads stay inside x */
                        SFX(avg_windows_multi)(px, o, W, C, r1 - r0, g->pool_w, &multi);
                        ow += multi.windows - 1;
                        continue;
                    }
                }
#endif
                fc_window_span(ow, g->stride_w, g->pad_left, g->pool_w, W, &c0, &c1);
                const T count = (T)((r1 - r0) * (c1 - c0));
                ptrdiff_t i = 0;
#if FC_POOL_VECTORS
                for (; i + LANES <= C; i += LANES)
                    SFX(avg_window_v)(xn + i, o + i, W, C, r0, r1, c0, c1, LANES);
                if (i < C) SFX(avg_window_v)(xn + i, o + i, W, C, r0, r1, c0, c1, C - i);
                i = C;
#endif
                if (i < C) {
                    SFX(fc_copy)(o + i, xn + (r0 * W + c0) * C + i, C - i);
                    for (ptrdiff_t r = r0; r < r1; r++)
                        for (ptrdiff_t col = (r == r0 ? c0 + 1 : c0); col < c1; col++)
                            SFX(fc_add_into)(o + i, xn + (r * W + col) * C + i, C - i);
                    for (ptrdiff_t k = i; k < C; k++) o[k] = o[k] / count;
                }
            }
        }
        FC_FTZ_END();
    }
}

void SFX(fc_avg_pool2d_backward)(const T *dy, T *dx, const fc_pool2d_geometry *g, int num_threads)
{
    const ptrdiff_t W = g->w, C = g->c, OH = g->out_h, OW = g->out_w;
    const fc_band_plan plan = fc_plan_bands(g);
    const ptrdiff_t items = g->n * plan.bands;
    const int stream = SFX(fc_pool_streams)(dx, g);
    /* 0: windows overlap (dx accumulated); else how a window's values are stored */
    const int disjoint = g->pool_h <= g->stride_h && g->pool_w <= g->stride_w
                             ? (stream ? FC_POOL_STREAM : FC_POOL_ASSIGN) : 0;
    const ptrdiff_t reach = disjoint ? 0 : (g->pool_h + g->stride_h - 1) / g->stride_h;
    const ptrdiff_t stage_rows = SFX(fc_stage_rows)(dx, g, disjoint);
#if FC_POOL_MULTI
    const SFX(fc_multi_plan) multi = SFX(fc_plan_multi)(g);
#endif
#if FC_POOL_VECTORS
    void (*row_kernel)(const T *, T *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, int) =
        FC_POOL_PICK_ROW(avg_backward_row_any, g);
    const fc_span inside =
        fc_row_columns(g, row_kernel != NULL && !FC_POOL_IF_MULTI(multi.bwd_windows));
#endif
    num_threads = fc_threads_for(g->n * g->h * g->w * g->c, num_threads);
    fc_share item_share;
    fc_share_pass_init(&item_share, items, num_threads);
    (void)num_threads;
#if defined(_OPENMP)
#pragma omp parallel num_threads(num_threads)
#endif
    {
        FC_FTZ_BEGIN();
        SFX(fc_band_out) out = SFX(fc_band_out_init)(stage_rows, g);
        FC_SHARE_FOR(&item_share, mirrored) {
            const ptrdiff_t item = fc_share_mirror(&item_share, mirrored);
            T share[FC_POOL_CHANNEL_BLOCK];
            SFX(fc_band_begin)(&out, dx, g, &plan, item);
            for (ptrdiff_t o = fc_max_pd(out.o_lo - reach, 0); o < out.o_hi; o++) {
                ptrdiff_t r0, r1, s0, s1;
                T *const rows = SFX(fc_band_window)(&out, g, disjoint, o, &r0, &r1, &s0, &s1);
                if (rows == NULL) continue;
                for (ptrdiff_t ow = 0; ow < OW; ow++) {
                    ptrdiff_t c0, c1;
                    const T *dy_px = dy + ((out.n * OH + o) * OW + ow) * C;
#if FC_POOL_VECTORS
                    if (ow == inside.lo && inside.hi > inside.lo && s0 == r0 && s1 == r1 &&
                        r1 - r0 == g->pool_h) {
                        row_kernel(dy_px, rows + (ow * g->stride_w - g->pad_left) * C, W, C,
                                   g->stride_w, inside.hi - inside.lo, disjoint);
                        ow = inside.hi - 1;
                        continue;
                    }
#endif
#if FC_POOL_MULTI
                    if (multi.bwd_windows && ow >= multi.w_lo &&
                        ow + multi.bwd_windows <= multi.w_hi) {
                        T *dxp = rows + (ow * g->stride_w - g->pad_left) * C;
                        SFX(avg_backward_windows_multi)(dy_px, dxp, W, C, s1 - s0,
                                                        (r1 - r0) * g->pool_w, &multi);
                        ow += multi.bwd_windows - 1;
                        continue;
                    }
#endif
                    fc_window_span(ow, g->stride_w, g->pad_left, g->pool_w, W, &c0, &c1);
                    const T count = (T)((r1 - r0) * (c1 - c0));
                    ptrdiff_t i = 0;
#if FC_POOL_VECTORS
                    for (; i + LANES <= C; i += LANES)
                        SFX(avg_backward_window_v)(dy_px + i, rows + i, W, C, s0, s1, c0, c1,
                                                   (r1 - r0) * (c1 - c0), disjoint, LANES);
                    if (i < C)
                        SFX(avg_backward_window_v)(dy_px + i, rows + i, W, C, s0, s1, c0, c1,
                                                   (r1 - r0) * (c1 - c0), disjoint, C - i);
                    i = C;
#endif
                    for (ptrdiff_t cb = i; cb < C; cb += FC_POOL_CHANNEL_BLOCK) {
                        const ptrdiff_t nc = fc_min_pd(FC_POOL_CHANNEL_BLOCK, C - cb);
                        /* dy / count in T, exactly as the reference computes the share. */
                        for (ptrdiff_t i = 0; i < nc; i++) share[i] = dy_px[cb + i] / count;
                        for (ptrdiff_t r = s0; r < s1; r++)
                            for (ptrdiff_t col = c0; col < c1; col++) {
                                T *d = rows + ((r - s0) * W + col) * C + cb;
                                if (disjoint)
                                    SFX(fc_copy)(d, share, nc);
                                else
                                    SFX(fc_add_into)(d, share, nc);
                            }
                    }
                }
            }
            SFX(fc_band_end)(&out, g);
        }
        SFX(fc_band_out_release)(&out); /* (fences its streamed rows) */
        if (disjoint == FC_POOL_STREAM) fc_store_fence(); /* (dx is read after the region) */
        FC_FTZ_END();
    }
}

/* ---- global pooling ------------------------------------------------------------------------ */
/* Reductions run over (sample, channel block) items: each output has one owner. */

void SFX(fc_global_avg_pool2d_forward)(const T *x, T *out, ptrdiff_t n, ptrdiff_t h, ptrdiff_t w,
                                       ptrdiff_t c, int num_threads)
{
    const ptrdiff_t pixels = h * w;
    const ptrdiff_t blocks = (c + FC_POOL_CHANNEL_BLOCK - 1) / FC_POOL_CHANNEL_BLOCK;
    const ptrdiff_t items = n * blocks;
    num_threads = fc_threads_for(n * h * w * c, num_threads);
    fc_share item_share;
    fc_share_pass_init(&item_share, items, num_threads);
    (void)num_threads;
#if defined(_OPENMP)
#pragma omp parallel num_threads(num_threads)
#endif
    FC_SHARE_FOR(&item_share, item) {
        ptrdiff_t s = item / blocks, cb = (item % blocks) * FC_POOL_CHANNEL_BLOCK;
        ptrdiff_t nc = fc_min_pd(FC_POOL_CHANNEL_BLOCK, c - cb);
        double acc[FC_POOL_CHANNEL_BLOCK]; /* double accumulators: no drift over many pixels */
        for (ptrdiff_t i = 0; i < nc; i++) acc[i] = 0.0;
        for (ptrdiff_t p = 0; p < pixels; p++) {
            const T *restrict px = x + (s * pixels + p) * c + cb;
            for (ptrdiff_t i = 0; i < nc; i++) acc[i] += (double)px[i];
        }
        for (ptrdiff_t i = 0; i < nc; i++) out[s * c + cb + i] = (T)(acc[i] / (double)pixels);
    }
}

void SFX(fc_global_avg_pool2d_backward)(const T *dy, T *dx, ptrdiff_t n, ptrdiff_t h, ptrdiff_t w,
                                        ptrdiff_t c, int num_threads)
{
    const ptrdiff_t items = n * h; /* one image row of dx per item */
    const T pixels = (T)(h * w);
    num_threads = fc_threads_for(n * h * w * c, num_threads);
    fc_share item_share;
    fc_share_pass_init(&item_share, items, num_threads);
    (void)num_threads;
#if defined(_OPENMP)
#pragma omp parallel num_threads(num_threads)
#endif
    FC_SHARE_FOR(&item_share, item) {
        ptrdiff_t s = item / h;
        T share[FC_POOL_CHANNEL_BLOCK];
        for (ptrdiff_t cb = 0; cb < c; cb += FC_POOL_CHANNEL_BLOCK) {
            ptrdiff_t nc = fc_min_pd(FC_POOL_CHANNEL_BLOCK, c - cb);
            /* dy / (h * w) in T, exactly as the reference computes the share. */
            for (ptrdiff_t i = 0; i < nc; i++) share[i] = dy[s * c + cb + i] / pixels;
            for (ptrdiff_t col = 0; col < w; col++)
                SFX(fc_copy)(dx + (item * w + col) * c + cb, share, nc);
        }
    }
}

void SFX(fc_global_max_pool2d_forward)(const T *x, T *out, ptrdiff_t n, ptrdiff_t h, ptrdiff_t w,
                                       ptrdiff_t c, int num_threads)
{
    const ptrdiff_t pixels = h * w;
    const ptrdiff_t blocks = (c + FC_POOL_CHANNEL_BLOCK - 1) / FC_POOL_CHANNEL_BLOCK;
    const ptrdiff_t items = n * blocks;
    num_threads = fc_threads_for(n * h * w * c, num_threads);
    fc_share item_share;
    fc_share_pass_init(&item_share, items, num_threads);
    (void)num_threads;
#if defined(_OPENMP)
#pragma omp parallel num_threads(num_threads)
#endif
    FC_SHARE_FOR(&item_share, item) {
        ptrdiff_t s = item / blocks, cb = (item % blocks) * FC_POOL_CHANNEL_BLOCK;
        ptrdiff_t nc = fc_min_pd(FC_POOL_CHANNEL_BLOCK, c - cb);
        T *o = out + s * c + cb;
        SFX(fc_copy)(o, x + s * pixels * c + cb, nc);
        for (ptrdiff_t p = 1; p < pixels; p++) SFX(fc_max_into)(o, x + (s * pixels + p) * c + cb, nc);
    }
}

void SFX(fc_global_max_pool2d_backward)(const T *dy, const T *x, T *dx, ptrdiff_t n, ptrdiff_t h,
                                        ptrdiff_t w, ptrdiff_t c, int num_threads)
{
    const ptrdiff_t pixels = h * w;
    const ptrdiff_t blocks = (c + FC_POOL_CHANNEL_BLOCK - 1) / FC_POOL_CHANNEL_BLOCK;
    const ptrdiff_t items = n * blocks;
    num_threads = fc_threads_for(n * h * w * c, num_threads);
    fc_share item_share;
    fc_share_pass_init(&item_share, items, num_threads);
    (void)num_threads;
#if defined(_OPENMP)
#pragma omp parallel num_threads(num_threads)
#endif
    FC_SHARE_FOR(&item_share, item) {
        ptrdiff_t s = item / blocks, cb = (item % blocks) * FC_POOL_CHANNEL_BLOCK;
        ptrdiff_t nc = fc_min_pd(FC_POOL_CHANNEL_BLOCK, c - cb);
        T best[FC_POOL_CHANNEL_BLOCK], taken[FC_POOL_CHANNEL_BLOCK];
        const T *restrict g = dy + s * c + cb;
        int any_nan = 0;
        SFX(fc_copy)(best, x + s * pixels * c + cb, nc);
        for (ptrdiff_t p = 1; p < pixels; p++)
            SFX(fc_max_into)(best, x + (s * pixels + p) * c + cb, nc);
        for (ptrdiff_t i = 0; i < nc; i++) any_nan |= best[i] != best[i];
        if (!any_nan) {
            /* The usual case: the first pixel equal to the maximum wins (retired by NaN). */
            for (ptrdiff_t p = 0; p < pixels; p++) {
                ptrdiff_t off = (s * pixels + p) * c + cb;
                SFX(fc_first_max_assign)(dx + off, x + off, best, g, nc);
            }
            continue;
        }
        /* numpy's argmax (the reference) picks the first maximum, or the first NaN if any:
         * a pixel wins if it matches the maximum (a NaN maximum is matched by any NaN) and no
         * pixel did before. `taken` and `hit` are 0/1 in T so that gcc vectorises the loop
         * (integer flags and && leave control flow in it). Every dx element is written once. */
        for (ptrdiff_t i = 0; i < nc; i++) taken[i] = 0;
        for (ptrdiff_t p = 0; p < pixels; p++) {
            const T *restrict px = x + (s * pixels + p) * c + cb;
            T *restrict d = dx + (s * pixels + p) * c + cb;
            for (ptrdiff_t i = 0; i < nc; i++) {
                T v = px[i], m = best[i], gi = g[i], tk = taken[i];
                T is_max = (v == m) ? (T)1 : (T)0;
                T is_nan = (v != v) ? (T)1 : (T)0;
                T match = (m != m) ? is_nan : is_max;
                T hit = match * ((T)1 - tk);
                d[i] = hit > (T)0 ? gi : (T)0;
                taken[i] = tk + hit;
            }
        }
    }
}

#endif /* FC_POOL2D_TEMPLATE */
