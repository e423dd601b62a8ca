/* Batch normalization over the rows of an (M, C) array: the kernels behind batchnorm.h.
 *
 * This header is compiled once per instruction set: batchnorm_generic.c (baseline SSE2),
 * batchnorm_avx2.c and batchnorm_avx512.c define FC_BN_ISA (generic, avx2, avx512) and
 * include it; every kernel name gets the suffix _f32_<isa> / _f64_<isa>, and batchnorm.c
 * calls the one dispatch.c selected. The C is the same for every ISA and every loop is
 * vectorised across channels (each channel's sums run over rows in a fixed order, and the
 * build does not contract a*b+c into FMAs), so all paths give the same bits; wider vectors
 * only take fewer instructions (callgrind, 64x28x28x32 float32: forward 13.3M -> 7.5M,
 * backward 11.3M -> 6.2M per call with AVX2).
 *
 * Column reductions (mean/variance forward, sum(dy) and sum(dy * (x - mean)) backward) run
 * over tiles of at most FC_BN_COL_BLOCK columns by chunk_rows rows. chunk_rows depends on C
 * only, so the tiling -- and with it every rounding -- is the same for any thread count.
 * Each tile writes its partial results to its own slot; after a barrier the partials of
 * each column are merged in chunk order. The forward pass takes each tile's mean and sum of
 * squared deviations in one pass about a center near the tile's mean (the mean of its first
 * rows: fc_bn_tile_moments bounds the cancellation for any order of the rows), with double
 * accumulators, merged with Chan et al.'s pairwise update: no E[x^2] - E[x]^2
 * cancellation, even for float32 data with a large offset, reading x once for the stats.
 * Inside a tile, sums run in the input dtype over blocks of FC_BN_BLOCK_ROWS rows (twice as
 * many float32 lanes per vector as double) and the block sums go into double accumulators;
 * the terms summed are deviations from a per-column shift near the mean, so a 16-term sum
 * in float32 is as accurate as the data.
 *
 * One OpenMP parallel region per call: tiles, then columns (merge, coefficients), then row
 * segments (output): two barriers inside, items shared out as fc_share does (each thread's own
 * rows first, the same in every pass, then the others') so that a thread the OS deschedules
 * does not hold the others back.
 *
 * This file is a template: it includes itself twice, once for float and once for double,
 * with T the element type and SFX(name) adding the type and ISA suffixes to a function name.
 */
#ifndef FC_BATCHNORM_TEMPLATE
#ifndef FC_BN_ISA
#error "define FC_BN_ISA (generic, avx2 or avx512) before including batchnorm_impl.h"
#endif


#include "batchnorm_isa.h"
#include "kernel_common.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define FC_BN_COL_BLOCK 256      /* columns per tile (per-column accumulators live on the stack) */
#define FC_BN_TILE_ELEMS 8192    /* target elements per tile: 32 KiB of float32, fits L1 */
#define FC_BN_MIN_CHUNK_ROWS 32  /* bounds the partials to 1/32 of the rows */
#define FC_BN_BLOCK_ROWS 16      /* rows summed in the input dtype before a double accumulator */
#define FC_BN_SEGMENT_ELEMS 512  /* elementwise passes: whole rows, about this many elements */
/* Vectors of columns a reduction strip carries down the rows at once (at most; then fewer
 * for the columns left): independent sums (and loads from neighbouring cache lines) in
 * flight, where one vector waited on each row's load (the forward's statistics: half the
 * time of 64x32x32x64 in the first load of a strip). */
#define FC_BN_STRIP 8
#define FC_BN_GRAD_STRIP 4

/* Rows per segment of the elementwise passes (y = affine(x), dx = ...) when the rows are not
 * whole vectors (see fc_bn_affine). Their per-channel coefficients are laid out repeated over
 * a segment, so each segment is one long unit-stride loop instead of a short loop per row. */
static ptrdiff_t fc_bn_segment_rows(ptrdiff_t cols)
{
    ptrdiff_t r = FC_BN_SEGMENT_ELEMS / cols;
    return r < 1 ? 1 : r;
}

static inline ptrdiff_t fc_bn_min(ptrdiff_t a, ptrdiff_t b) { return a < b ? a : b; }

/* Rows per reduction chunk: a function of the column count only (never of the threads). */
static ptrdiff_t fc_bn_chunk_rows(ptrdiff_t cols)
{
    ptrdiff_t width = fc_bn_min(cols, FC_BN_COL_BLOCK);
    ptrdiff_t r = FC_BN_TILE_ELEMS / width;
    return r < FC_BN_MIN_CHUNK_ROWS ? FC_BN_MIN_CHUNK_ROWS : r;
}

/* The tiling of an (rows, cols) array, shared by the reductions. */
typedef struct {
    ptrdiff_t rows, cols, chunk_rows, chunks, col_blocks;
} fc_bn_tiling;

static fc_bn_tiling fc_bn_make_tiling(ptrdiff_t rows, ptrdiff_t cols)
{
    fc_bn_tiling t;
    t.rows = rows;
    t.cols = cols;
    t.chunk_rows = fc_bn_chunk_rows(cols);
    t.chunks = (rows + t.chunk_rows - 1) / t.chunk_rows;
    t.col_blocks = (cols + FC_BN_COL_BLOCK - 1) / FC_BN_COL_BLOCK;
    return t;
}

/* Tile `tile` covers rows [*r0, *r0 + *nr) and columns [*c0, *c0 + *nc) of chunk *chunk. */
static inline void fc_bn_tile(const fc_bn_tiling *t, ptrdiff_t tile, ptrdiff_t *chunk,
                              ptrdiff_t *r0, ptrdiff_t *nr, ptrdiff_t *c0, ptrdiff_t *nc)
{
    *chunk = tile / t->col_blocks;
    *c0 = (tile % t->col_blocks) * FC_BN_COL_BLOCK;
    *nc = fc_bn_min(FC_BN_COL_BLOCK, t->cols - *c0);
    *r0 = *chunk * t->chunk_rows;
    *nr = fc_bn_min(t->chunk_rows, t->rows - *r0);
}

/* The column reductions keep a block's running sums in registers: one vector of columns of
 * the unit's native width (64/32/16 bytes with AVX-512/AVX2/SSE2) at a time, across the
 * block's rows, with GCC/Clang vector extensions. A plain loop over a row's columns keeps
 * them in memory instead. The additions per column are the same, in the same order, as in
 * the per-column loops that handle the leftover columns and other compilers. */
#if (defined(__GNUC__) || defined(__clang__)) && !defined(FASTCONV_PORTABLE_C)
#define FC_BN_VECTORS 1
#if defined(__AVX512F__)
#define FC_BN_VBYTES 64
#elif defined(__AVX2__)
#define FC_BN_VBYTES 32
#else
#define FC_BN_VBYTES 16
#endif
typedef float fc_bn_vf32 __attribute__((vector_size(FC_BN_VBYTES)));
typedef double fc_bn_vf64 __attribute__((vector_size(FC_BN_VBYTES)));
typedef int fc_bn_vi32 __attribute__((vector_size(FC_BN_VBYTES)));       /* lane masks */
typedef long long fc_bn_vi64 __attribute__((vector_size(FC_BN_VBYTES)));
#if defined(__clang__)
#define FC_BN_UNROLL _Pragma("unroll")
#else
#define FC_BN_UNROLL _Pragma("GCC unroll 8")
#endif
#else
#define FC_BN_VECTORS 0
#define FC_BN_VBYTES 16
#endif
/* Where the unit has FMA, x - c can run as x * 1 - c on the multiply-add ports (the same
 * single rounding, so the same bits as the subtraction of the SSE2 unit): the statistics
 * pass then spreads its four operations per vector over both port pairs instead of queuing
 * three on the adders (Zen 4: one 512-bit addition per cycle). -DFC_BN_NO_FMSUB builds the
 * plain subtraction (A/B runs; the same bits). */
#if FC_BN_VECTORS && defined(__FMA__) && (FC_BN_VBYTES == 32 || FC_BN_VBYTES == 64) && !defined(FC_BN_NO_FMSUB)
#include <immintrin.h>
#define FC_BN_FMSUB 1
#endif

#define FC_BATCHNORM_TEMPLATE
#define T float
#define SFX(name) FC_BN_NAME(name, f32, FC_BN_ISA)
#define VT fc_bn_vf32
#define VI fc_bn_vi32
#define LANES (FC_BN_VBYTES / 4)
#include "batchnorm_impl.h"
#undef T
#undef SFX
#undef VT
#undef VI
#undef LANES
#define T double
#define SFX(name) FC_BN_NAME(name, f64, FC_BN_ISA)
#define VT fc_bn_vf64
#define VI fc_bn_vi64
#define LANES (FC_BN_VBYTES / 8)
#include "batchnorm_impl.h"
#undef T
#undef SFX
#undef VT
#undef VI
#undef LANES
#undef FC_BATCHNORM_TEMPLATE

#else /* FC_BATCHNORM_TEMPLATE: the body below is compiled once per element type T. */

#if FC_BN_VECTORS
static inline VT SFX(fc_bn_vld)(const T *p)
{
    VT v;
    memcpy(&v, p, sizeof v); /* an unaligned vector load */
    return v;
}
static inline void SFX(fc_bn_vst)(T *p, VT v) { memcpy(p, &v, sizeof v); }

#endif

#if FC_BN_VECTORS
/* x * one - c with one == 1 (see FC_BN_FMSUB), else x - c. */
static inline VT SFX(fc_bn_minus)(VT x, VT one, VT c)
{
#if defined(FC_BN_FMSUB) && FC_BN_VBYTES == 64
    if (sizeof(T) == 4) return (VT)_mm512_fmsub_ps((__m512)x, (__m512)one, (__m512)c);
    return (VT)_mm512_fmsub_pd((__m512d)x, (__m512d)one, (__m512d)c);
#elif defined(FC_BN_FMSUB)
    if (sizeof(T) == 4) return (VT)_mm256_fmsub_ps((__m256)x, (__m256)one, (__m256)c);
    return (VT)_mm256_fmsub_pd((__m256d)x, (__m256d)one, (__m256d)c);
#else
    (void)one;
    return x - c;
#endif
}

/* block1 / block2[u * LANES + l] = the sums over rows [rb, re) of lane l of d = x - center and
 * of d * d for the U vectors of columns from xs (row r at xs + r * cols) and center; ONE: the
 * first sums only. */
static inline __attribute__((always_inline)) void SFX(fc_bn_moment_strip)(
    const T *xs, ptrdiff_t cols, ptrdiff_t rb, ptrdiff_t re, const T *center, T *block1,
    T *block2, const int U, const int ONE)
{
    VT cen[FC_BN_STRIP], s1[FC_BN_STRIP], s2[FC_BN_STRIP], one = (VT){0} + 1;
#if defined(FC_BN_FMSUB)
    __asm__("" : "+v"(one)); /* not folded back into a subtraction */
#endif
    FC_BN_UNROLL
    for (int u = 0; u < U; u++) {
        cen[u] = SFX(fc_bn_vld)(center + u * LANES);
        s1[u] = s2[u] = (VT){0};
    }
    for (ptrdiff_t r = rb; r < re; r++) {
        FC_BN_UNROLL
        for (int u = 0; u < U; u++) {
            const VT d = SFX(fc_bn_minus)(SFX(fc_bn_vld)(xs + r * cols + u * LANES), one, cen[u]);
            s1[u] += d;
            if (!ONE) s2[u] += d * d;
        }
    }
    FC_BN_UNROLL
    for (int u = 0; u < U; u++) {
        SFX(fc_bn_vst)(block1 + u * LANES, s1[u]);
        if (!ONE) SFX(fc_bn_vst)(block2 + u * LANES, s2[u]);
    }
}
#endif

/* acc1[i] += the column sums of d = x - center and acc2[i] += those of d * d (ONE: acc1
 * only) over rows [r0, r0 + nr), columns [c0, c0 + nc), block by block of rows in T then
 * added in double. `ONE` is a constant at both calls: the loops compile without the test.
 * With both sums a strip carries three vectors per vector of columns: at most
 * FC_BN_MOMENT_STRIP of them (AVX2's 16 registers). */
#if FC_BN_VBYTES >= 64
#define FC_BN_MOMENT_STRIP 8
#else
#define FC_BN_MOMENT_STRIP 4
#endif
static inline void SFX(fc_bn_moment_sums)(const T *x, ptrdiff_t cols, ptrdiff_t r0, ptrdiff_t nr,
                                          ptrdiff_t c0, ptrdiff_t nc, const T *center,
                                          double *restrict acc1, double *restrict acc2,
                                          const int ONE)
{
    T block1[FC_BN_COL_BLOCK], block2[FC_BN_COL_BLOCK];
    for (ptrdiff_t rb = r0; rb < r0 + nr; rb += FC_BN_BLOCK_ROWS) {
        const ptrdiff_t re = fc_bn_min(rb + FC_BN_BLOCK_ROWS, r0 + nr);
        ptrdiff_t v = 0;
#if FC_BN_VECTORS
        for (; v + FC_BN_MOMENT_STRIP * LANES <= nc; v += FC_BN_MOMENT_STRIP * LANES)
            SFX(fc_bn_moment_strip)(x + c0 + v, cols, rb, re, center + v, block1 + v, block2 + v,
                                    FC_BN_MOMENT_STRIP, ONE);
        for (; v + 2 * LANES <= nc; v += 2 * LANES)
            SFX(fc_bn_moment_strip)(x + c0 + v, cols, rb, re, center + v, block1 + v, block2 + v, 2, ONE);
        for (; v + LANES <= nc; v += LANES)
            SFX(fc_bn_moment_strip)(x + c0 + v, cols, rb, re, center + v, block1 + v, block2 + v, 1, ONE);
#endif
        for (ptrdiff_t i = v; i < nc; i++) block1[i] = block2[i] = 0;
        for (ptrdiff_t r = rb; r < re && v < nc; r++) {
            const T *restrict xr = x + r * cols + c0;
            for (ptrdiff_t i = v; i < nc; i++) {
                const T d = xr[i] - center[i];
                block1[i] += d;
                if (!ONE) block2[i] += d * d;
            }
        }
        for (ptrdiff_t i = 0; i < nc; i++) {
            acc1[i] += (double)block1[i];
            if (!ONE) acc2[i] += (double)block2[i];
        }
    }
}

/* Mean and M2 (sum of squared deviations) of columns [c0, c0 + nc) over rows [r0, r0 + nr),
 * in one pass over the tile: the sums of d = x - m and d * d, with m the mean of the tile's
 * first FC_BN_BLOCK_ROWS rows (k of them, rounded to T; 0 where that is not finite); then
 * mean = m + sum d / nr and M2 = sum d^2 - (sum d)^2 / nr. The subtraction cancels little
 * because m is near the mean: (mean - m)^2 <= var * (nr - k) / k for any data (k of nr values
 * lie within that of their mean), so sum d^2 <= M2 * nr / k -- in the common case M2 * (1 +
 * 1 / k). Two passes (the exact tile mean, then the squares) cost an extra pass of adds: the
 * statistics of 64x28x28x32 float32 ran at the adders' rate, 4 per vector. */
static void SFX(fc_bn_tile_moments)(const T *x, ptrdiff_t cols, ptrdiff_t r0, ptrdiff_t nr,
                                    ptrdiff_t c0, ptrdiff_t nc, double *restrict mean,
                                    double *restrict m2)
{
    T center[FC_BN_COL_BLOCK];
    double acc1[FC_BN_COL_BLOCK], acc2[FC_BN_COL_BLOCK];
    const T *first = x + r0 * cols + c0;
    const ptrdiff_t k = fc_bn_min(nr, FC_BN_BLOCK_ROWS);
    for (ptrdiff_t i = 0; i < nc; i++) {
        /* An Inf/NaN shift would turn an infinite mean into NaN (Inf - Inf): use 0 then. */
        T v = first[i];
        center[i] = (v - v == (T)0) ? v : (T)0;
        acc1[i] = 0.0;
    }
    SFX(fc_bn_moment_sums)(x, cols, r0, k, c0, nc, center, acc1, NULL, 1);
    for (ptrdiff_t i = 0; i < nc; i++) {
        const T m = (T)((double)center[i] + acc1[i] / (double)k);
        center[i] = (m - m == (T)0) ? m : (T)0;
        acc1[i] = acc2[i] = 0.0;
    }
    SFX(fc_bn_moment_sums)(x, cols, r0, nr, c0, nc, center, acc1, acc2, 0);
    for (ptrdiff_t i = 0; i < nc; i++) {
        const double off = acc1[i] / (double)nr; /* mean - m */
        mean[i] = (double)center[i] + off;
        const double q = acc2[i] - acc1[i] * off;
        m2[i] = q < 0.0 ? 0.0 : q; /* rounding may leave q slightly < 0; NaN stays NaN */
    }
}

/* The ReLU's gradient mask of the fused kernels: the gradient that reaches batch norm is
 * dy * (z >= 0) with z = (x - mean) * scale + beta the forward's value, recomputed here with
 * the forward's arithmetic (fc_bn_affine). A multiplication by exactly 1 or 0, as
 * fc_relu_backward does it: dy * 0 keeps dy's sign, and an inf/NaN dy gives NaN. */
static inline T SFX(fc_bn_relu_grad)(T dy, T xc, T scale, T beta)
{
    return dy * (T)(xc * scale + beta >= (T)0);
}

#if FC_BN_VECTORS
/* The sums over rows [rb, re) of g and g * (x - mean), lane by lane, for the U vectors of
 * columns from dys / xs (row r at + r * cols) into block_dy / block_dyxc (see
 * fc_bn_grad_sums; sc and be are read only with relu). */
static inline __attribute__((always_inline)) void SFX(fc_bn_grad_strip)(
    const T *dys, const T *xs, ptrdiff_t cols, ptrdiff_t rb, ptrdiff_t re, const T *mu,
    const T *sc, const T *be, T *block_dy, T *block_dyxc, const int relu, const int U)
{
    const VT zero = {0};
    VT m[FC_BN_GRAD_STRIP], s[FC_BN_GRAD_STRIP], b[FC_BN_GRAD_STRIP];
    VT sum_g[FC_BN_GRAD_STRIP], sum_gxc[FC_BN_GRAD_STRIP], one = zero + 1;
#if defined(FC_BN_FMSUB)
    __asm__("" : "+v"(one)); /* not folded back into a subtraction */
#endif
    FC_BN_UNROLL
    for (int u = 0; u < U; u++) {
        m[u] = SFX(fc_bn_vld)(mu + u * LANES);
        s[u] = relu ? SFX(fc_bn_vld)(sc + u * LANES) : zero;
        b[u] = relu ? SFX(fc_bn_vld)(be + u * LANES) : zero;
        sum_g[u] = sum_gxc[u] = zero;
    }
    for (ptrdiff_t r = rb; r < re; r++) {
        FC_BN_UNROLL
        for (int u = 0; u < U; u++) {
            const VT xc = SFX(fc_bn_minus)(SFX(fc_bn_vld)(xs + r * cols + u * LANES), one, m[u]);
            VT g = SFX(fc_bn_vld)(dys + r * cols + u * LANES);
            /* (z >= 0) is -1 or 0 per lane: negated and converted, exactly 1.0 or 0.0. */
            if (relu) g = g * __builtin_convertvector(-(xc * s[u] + b[u] >= zero), VT);
            sum_g[u] += g;
            sum_gxc[u] += g * xc;
        }
    }
    FC_BN_UNROLL
    for (int u = 0; u < U; u++) {
        SFX(fc_bn_vst)(block_dy + u * LANES, sum_g[u]);
        SFX(fc_bn_vst)(block_dyxc + u * LANES, sum_gxc[u]);
    }
}
#endif

/* Column sums of g and g * (x - mean) over rows [r0, r0 + nr), columns [c0, c0 + nc), with
 * g = dy, or with `relu` the gradient that went through a ReLU after the batch norm,
 * g = fc_bn_relu_grad(dy, x - mean, scale, beta). `relu` is a constant at each call (the
 * wrappers below): the loops compile without the test. */
static inline void SFX(fc_bn_grad_sums)(const T *dy, const T *x, const T *mean, const T *scale,
                                        const T *beta, ptrdiff_t cols, ptrdiff_t r0,
                                        ptrdiff_t nr, ptrdiff_t c0, ptrdiff_t nc,
                                        double *restrict sum_dy, double *restrict sum_dyxc,
                                        const int relu)
{
    T block_dy[FC_BN_COL_BLOCK], block_dyxc[FC_BN_COL_BLOCK];
    const T *restrict mu = mean + c0;
    const T *restrict sc = relu ? scale + c0 : NULL;
    const T *restrict be = relu ? beta + c0 : NULL;
    for (ptrdiff_t i = 0; i < nc; i++) sum_dy[i] = sum_dyxc[i] = 0.0;
    for (ptrdiff_t rb = r0; rb < r0 + nr; rb += FC_BN_BLOCK_ROWS) {
        const ptrdiff_t re = fc_bn_min(rb + FC_BN_BLOCK_ROWS, r0 + nr);
        ptrdiff_t v = 0;
#if FC_BN_VECTORS
        for (; v + FC_BN_GRAD_STRIP * LANES <= nc; v += FC_BN_GRAD_STRIP * LANES)
            SFX(fc_bn_grad_strip)(dy + c0 + v, x + c0 + v, cols, rb, re, mu + v, relu ? sc + v : NULL,
                                  relu ? be + v : NULL, block_dy + v, block_dyxc + v, relu, FC_BN_GRAD_STRIP);
        for (; v + 2 * LANES <= nc; v += 2 * LANES)
            SFX(fc_bn_grad_strip)(dy + c0 + v, x + c0 + v, cols, rb, re, mu + v, relu ? sc + v : NULL,
                                  relu ? be + v : NULL, block_dy + v, block_dyxc + v, relu, 2);
        for (; v + LANES <= nc; v += LANES)
            SFX(fc_bn_grad_strip)(dy + c0 + v, x + c0 + v, cols, rb, re, mu + v, relu ? sc + v : NULL,
                                  relu ? be + v : NULL, block_dy + v, block_dyxc + v, relu, 1);
#endif
        for (ptrdiff_t i = v; i < nc; i++) block_dy[i] = block_dyxc[i] = 0;
        for (ptrdiff_t r = rb; r < re && v < nc; r++) {
            const T *restrict xr = x + r * cols + c0;
            const T *restrict gr = dy + r * cols + c0;
            for (ptrdiff_t i = v; i < nc; i++) {
                const T xc = xr[i] - mu[i];
                const T g = relu ? SFX(fc_bn_relu_grad)(gr[i], xc, sc[i], be[i]) : gr[i];
                block_dy[i] += g;
                block_dyxc[i] += g * xc;
            }
        }
        for (ptrdiff_t i = 0; i < nc; i++) {
            sum_dy[i] += (double)block_dy[i];
            sum_dyxc[i] += (double)block_dyxc[i];
        }
    }
}

static void SFX(fc_bn_tile_grad_sums)(const T *dy, const T *x, const T *mean, ptrdiff_t cols,
                                      ptrdiff_t r0, ptrdiff_t nr, ptrdiff_t c0, ptrdiff_t nc,
                                      double *restrict sum_dy, double *restrict sum_dyxc)
{
    SFX(fc_bn_grad_sums)(dy, x, mean, NULL, NULL, cols, r0, nr, c0, nc, sum_dy, sum_dyxc, 0);
}

static void SFX(fc_bn_tile_relu_grad_sums)(const T *dy, const T *x, const T *mean,
                                           const T *scale, const T *beta, ptrdiff_t cols,
                                           ptrdiff_t r0, ptrdiff_t nr, ptrdiff_t c0,
                                           ptrdiff_t nc, double *restrict sum_dy,
                                           double *restrict sum_dyxc)
{
    SFX(fc_bn_grad_sums)(dy, x, mean, scale, beta, cols, r0, nr, c0, nc, sum_dy, sum_dyxc, 1);
}

/* Column c of a segment's repeated coefficients: rep[r * cols + c] = value for every row of
 * a segment (seg_len = rows per segment * cols). Called by whichever item computes column
 * c's coefficients, so filling them costs no extra barrier: on a loaded host every barrier
 * can wait a whole time slice for a descheduled thread. */
static inline void SFX(fc_bn_repeat_column)(T *rep, T value, ptrdiff_t c, ptrdiff_t cols,
                                            ptrdiff_t seg_len)
{
    for (ptrdiff_t j = c; j < seg_len; j += cols) rep[j] = value;
}

/* The elementwise passes (y = affine(x) forward, dx backward) take one of two forms:
 * - rows of whole vectors (C a multiple of the vector width, every conv layer's channel
 *   count): items of FC_BN_ITEM_ROWS rows, each strip of columns down the item's rows with
 *   its per-channel coefficients held in registers. Per vector that is the data's loads and
 *   one store, where the repeated coefficients below cost one load each as well
 *   (64x28x28x32 float32, 2 threads: affine 0.155 -> 0.10-0.12 ms, dx 0.29 -> 0.22).
 * - otherwise segments of whole rows, about FC_BN_SEGMENT_ELEMS elements, and the
 *   coefficients repeated over a segment (fc_bn_repeat_column): one long unit-stride loop
 *   instead of a short loop per row when C is small or odd.
 * Both compute each element with the same operations in the same order: the same bits. */
#define FC_BN_ITEM_ROWS 16
#define FC_BN_AFFINE_STRIP 4 /* vectors of columns per strip: 3 coefficients each */
#define FC_BN_DX_STRIP 4     /* 4 coefficients each, 6 with the ReLU mask */

static inline int SFX(fc_bn_in_registers)(ptrdiff_t cols)
{
#if FC_BN_VECTORS
    return cols % LANES == 0;
#else
    (void)cols;
    return 0;
#endif
}

/* Whether the register passes write an output of rows x cols at `out` with non-temporal
 * stores (fc_batch_norm_set_stream_min_bytes, fc_streams_whole_lines). Every strip (4, 2 or 1
 * vectors: 64 bytes or more here, as cols * sizeof(T) is a multiple of 64 and the vectors
 * are 16-64 bytes) then writes whole lines, none of them shared with another strip or item
 * (items are whole rows). Nothing in the
 * kernel reads the output; each thread fences its stores before the barrier that ends the
 * pass. 64x32x32x64 float32, 2 threads, calls of the two builds alternated in one process,
 * p10: forward + backward 2.29 -> 1.96 and 2.46 -> 2.05 ms; a pool reading y after the
 * forward 0.703 -> 0.715 ms, one reading dx after the backward 0.644 -> 0.679. */
static inline int SFX(fc_bn_streams)(const T *out, ptrdiff_t rows, ptrdiff_t cols)
{
#if FC_BN_VECTORS && defined(__SSE2__)
    return SFX(fc_bn_in_registers)(cols) &&
           fc_streams_whole_lines(out, cols * (ptrdiff_t)sizeof(T), rows * cols * (ptrdiff_t)sizeof(T),
                                  fc_bn_stream_min_bytes);
#else
    (void)out;
    (void)rows;
    (void)cols;
    return 0;
#endif
}

/* Rows per item of the elementwise passes (see above). */
static inline ptrdiff_t SFX(fc_bn_item_rows)(ptrdiff_t cols)
{
    return SFX(fc_bn_in_registers)(cols) ? FC_BN_ITEM_ROWS : fc_bn_segment_rows(cols);
}

/* The team's share of an elementwise pass (fc_bn_affine, the dx pass): items of
 * fc_bn_item_rows rows. */
static inline void SFX(fc_bn_share_items)(fc_share *s, ptrdiff_t rows, ptrdiff_t cols,
                                          int threads)
{
    const ptrdiff_t item_rows = SFX(fc_bn_item_rows)(cols);
    const ptrdiff_t items = (rows + item_rows - 1) / item_rows;
    fc_share_pass_init(s, items, threads);
}

#if FC_BN_VECTORS
/* max(v, 0) as fc_relu_forward: v where v > 0 or NaN, else +0.0 (all bits clear). */
static inline VT SFX(fc_bn_vrelu)(VT v)
{
    const VT zero = {0};
    return (VT)((VI)v & ((v > zero) | (v != v)));
}

/* Rows [0, nrows) of U vectors of columns from xs / ys (row r at + r * cols):
 * y = (x - shift) * scale + bias, with relu max(y, 0). */
static inline __attribute__((always_inline)) void SFX(fc_bn_affine_strip)(
    const T *xs, T *ys, ptrdiff_t cols, ptrdiff_t nrows, const T *shift, const T *scale,
    const T *bias, const int relu, const int stream, const int U)
{
    VT m[FC_BN_AFFINE_STRIP], s[FC_BN_AFFINE_STRIP], b[FC_BN_AFFINE_STRIP];
    FC_BN_UNROLL
    for (int u = 0; u < U; u++) {
        m[u] = SFX(fc_bn_vld)(shift + u * LANES);
        s[u] = SFX(fc_bn_vld)(scale + u * LANES);
        b[u] = SFX(fc_bn_vld)(bias + u * LANES);
    }
    for (ptrdiff_t r = 0; r < nrows; r++) {
        FC_BN_UNROLL
        for (int u = 0; u < U; u++) {
            VT v = (SFX(fc_bn_vld)(xs + r * cols + u * LANES) - m[u]) * s[u] + b[u];
            if (relu) v = SFX(fc_bn_vrelu)(v);
            if (stream) fc_stream_vector(ys + r * cols + u * LANES, &v, sizeof v);
            else SFX(fc_bn_vst)(ys + r * cols + u * LANES, v);
        }
    }
}

static inline __attribute__((always_inline)) void SFX(fc_bn_affine_rows_any)(
    const T *xs, T *ys, ptrdiff_t cols, ptrdiff_t nrows, const T *shift, const T *scale,
    const T *bias, const int relu, const int stream)
{
    ptrdiff_t v = 0;
    for (; v + FC_BN_AFFINE_STRIP * LANES <= cols; v += FC_BN_AFFINE_STRIP * LANES)
        SFX(fc_bn_affine_strip)(xs + v, ys + v, cols, nrows, shift + v, scale + v, bias + v, relu,
                                stream, FC_BN_AFFINE_STRIP);
    for (; v + 2 * LANES <= cols; v += 2 * LANES)
        SFX(fc_bn_affine_strip)(xs + v, ys + v, cols, nrows, shift + v, scale + v, bias + v, relu,
                                stream, 2);
    for (; v < cols; v += LANES)
        SFX(fc_bn_affine_strip)(xs + v, ys + v, cols, nrows, shift + v, scale + v, bias + v, relu,
                                stream, 1);
}

static void SFX(fc_bn_affine_rows)(const T *xs, T *ys, ptrdiff_t cols, ptrdiff_t nrows,
                                   const T *shift, const T *scale, const T *bias, const int relu,
                                   const int stream)
{
    if (relu && stream) SFX(fc_bn_affine_rows_any)(xs, ys, cols, nrows, shift, scale, bias, 1, 1);
    else if (relu) SFX(fc_bn_affine_rows_any)(xs, ys, cols, nrows, shift, scale, bias, 1, 0);
    else if (stream) SFX(fc_bn_affine_rows_any)(xs, ys, cols, nrows, shift, scale, bias, 0, 1);
    else SFX(fc_bn_affine_rows_any)(xs, ys, cols, nrows, shift, scale, bias, 0, 0);
}
#endif

/* out[r, c] = (x[r, c] - shift[c]) * scale[c] + bias[c]; with relu, max(that, 0) as
 * fc_relu_forward (numpy.maximum: NaN kept, -0.0 -> +0.0) in the same pass. The
 * coefficients per channel, and repeated over a segment (used when the rows are not whole
 * vectors). Work shared by the team, as `share` (fc_bn_share_items) hands it out. */
static void SFX(fc_bn_affine)(const T *x, T *out, const T *restrict shift,
                              const T *restrict scale, const T *restrict bias,
                              const T *restrict shift_rep, const T *restrict scale_rep,
                              const T *restrict bias_rep, ptrdiff_t rows, ptrdiff_t cols,
                              int relu, fc_share *share)
{
    const int in_registers = SFX(fc_bn_in_registers)(cols);
    const int stream = SFX(fc_bn_streams)(out, rows, cols);
    const ptrdiff_t seg_rows = SFX(fc_bn_item_rows)(cols);
    (void)in_registers;
    (void)stream;
    (void)shift;
    (void)scale;
    (void)bias;
    FC_SHARE_FOR(share, item) {
        const ptrdiff_t seg = fc_share_mirror(share, item); /* backwards: see the dx pass */
        const ptrdiff_t r0 = seg * seg_rows, nrows = fc_bn_min(seg_rows, rows - r0);
        const ptrdiff_t len = nrows * cols;
        const T *restrict xs = x + r0 * cols;
        T *restrict ys = out + r0 * cols;
#if FC_BN_VECTORS
        if (in_registers) {
            SFX(fc_bn_affine_rows)(xs, ys, cols, nrows, shift, scale, bias, relu, stream);
            continue;
        }
#endif
        if (relu) {
            for (ptrdiff_t j = 0; j < len; j++) {
                const T v = (xs[j] - shift_rep[j]) * scale_rep[j] + bias_rep[j];
                ys[j] = (v > (T)0 || v != v) ? v : (T)0;
            }
        } else {
            for (ptrdiff_t j = 0; j < len; j++)
                ys[j] = (xs[j] - shift_rep[j]) * scale_rep[j] + bias_rep[j];
        }
    }
    if (stream) fc_store_fence();
#if defined(_OPENMP)
#pragma omp barrier
#endif
}

/* The per-channel factor of the normalisation, gamma / sqrt(var + epsilon) rounded to T, from
 * the variance as stored (T): the training forward, the inference forward and the fused
 * backward (which recomputes the forward's values to find where the ReLU passed) all use
 * this one formula, so they agree bit for bit. */
static inline T SFX(fc_bn_scale)(T gamma, T var, double epsilon)
{
    return (T)((double)gamma / sqrt((double)var + epsilon));
}

static int SFX(fc_bn_forward_training)(const T *x, const T *gamma, const T *beta, double epsilon,
                                       T *y, T *mean, T *var, ptrdiff_t rows, ptrdiff_t cols,
                                       int num_threads, int relu)
{
    const fc_bn_tiling t = fc_bn_make_tiling(rows, cols);
    const ptrdiff_t tiles = t.chunks * t.col_blocks;
    const ptrdiff_t seg_len = fc_bn_segment_rows(cols) * cols;
    /* Scratch: per-chunk column means and sums of squared deviations, the scale, and mean,
     * scale and beta repeated over a segment. */
    double *part_mean = (double *)malloc(sizeof(double) * (size_t)(2 * t.chunks * cols + cols)
                                         + sizeof(T) * (size_t)(3 * seg_len));
    if (part_mean == NULL) return -1;
    double *part_m2 = part_mean + t.chunks * cols;
    T *scale = (T *)(part_m2 + t.chunks * cols);
    T *mean_rep = scale + cols, *scale_rep = mean_rep + seg_len, *beta_rep = scale_rep + seg_len;
    num_threads = fc_threads_for(rows * cols, num_threads);
    fc_share tile_share, item_share;
    fc_share_pass_init(&tile_share, tiles, num_threads);
    SFX(fc_bn_share_items)(&item_share, rows, cols, num_threads);
#if defined(_OPENMP)
#pragma omp parallel num_threads(num_threads)
#endif
    {
        FC_FTZ_BEGIN();
        /* 1. Mean and M2 of each tile, into the tile's own slot. */
        FC_SHARE_FOR(&tile_share, tile) {
            ptrdiff_t k, r0, nr, c0, nc;
            fc_bn_tile(&t, tile, &k, &r0, &nr, &c0, &nc);
            SFX(fc_bn_tile_moments)(x, cols, r0, nr, c0, nc, part_mean + k * cols + c0,
                                    part_m2 + k * cols + c0);
        }
#if defined(_OPENMP)
#pragma omp barrier
#endif
        /* 2. Merge the chunks of each column in chunk order (Chan et al.), then the outputs. */
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
        for (ptrdiff_t b = 0; b < t.col_blocks; b++) {
            ptrdiff_t c0 = b * FC_BN_COL_BLOCK, nc = fc_bn_min(FC_BN_COL_BLOCK, cols - c0);
            double mu[FC_BN_COL_BLOCK], m2[FC_BN_COL_BLOCK];
            double count = (double)fc_bn_min(t.chunk_rows, rows);
            for (ptrdiff_t i = 0; i < nc; i++) {
                mu[i] = part_mean[c0 + i];
                m2[i] = part_m2[c0 + i];
            }
            for (ptrdiff_t k = 1; k < t.chunks; k++) {
                double nb = (double)fc_bn_min(t.chunk_rows, rows - k * t.chunk_rows);
                double total = count + nb, wa = count / total, wb = nb / total;
                double wab = count * nb / total;
                const double *restrict pm = part_mean + k * cols + c0;
                const double *restrict pq = part_m2 + k * cols + c0;
                for (ptrdiff_t i = 0; i < nc; i++) {
                    double delta = pm[i] - mu[i];
                    /* The weighted mean, not mu + delta * wb: an infinite mean must stay
                     * infinite (Inf + (-Inf) * wb is NaN); in double both are exact enough. */
                    mu[i] = mu[i] * wa + pm[i] * wb;
                    m2[i] += pq[i] + delta * delta * wab;
                }
                count = total;
            }
            for (ptrdiff_t i = 0; i < nc; i++) {
                double v = m2[i] / (double)rows;
                mean[c0 + i] = (T)mu[i];
                var[c0 + i] = (T)v;
                scale[c0 + i] = SFX(fc_bn_scale)(gamma[c0 + i], var[c0 + i], epsilon);
                if (!SFX(fc_bn_in_registers)(cols)) {
                    SFX(fc_bn_repeat_column)(mean_rep, mean[c0 + i], c0 + i, cols, seg_len);
                    SFX(fc_bn_repeat_column)(scale_rep, scale[c0 + i], c0 + i, cols, seg_len);
                    SFX(fc_bn_repeat_column)(beta_rep, beta[c0 + i], c0 + i, cols, seg_len);
                }
            }
        }
        /* 3. y = (x - mean) * scale + beta (subtracting first keeps offsets exact), and with
         * relu max(y, 0) in the same pass; y == NULL: the statistics only (a fused consumer
         * applies that formula itself). */
        if (y != NULL)
            SFX(fc_bn_affine)(x, y, mean, scale, beta, mean_rep, scale_rep, beta_rep, rows, cols,
                              relu, &item_share);
        FC_FTZ_END();
    }
    free(part_mean);
    return 0;
}

int SFX(fc_batch_norm_forward_training)(const T *x, const T *gamma, const T *beta, double epsilon,
                                        T *y, T *mean, T *var, ptrdiff_t rows, ptrdiff_t cols,
                                        int num_threads)
{
    return SFX(fc_bn_forward_training)(x, gamma, beta, epsilon, y, mean, var, rows, cols,
                                       num_threads, 0);
}

int SFX(fc_batch_norm_relu_forward_training)(const T *x, const T *gamma, const T *beta,
                                             double epsilon, T *y, T *mean, T *var,
                                             ptrdiff_t rows, ptrdiff_t cols, int num_threads)
{
    return SFX(fc_bn_forward_training)(x, gamma, beta, epsilon, y, mean, var, rows, cols,
                                       num_threads, 1);
}

static int SFX(fc_bn_forward_inference)(const T *x, const T *gamma, const T *beta, const T *mean,
                                        const T *var, double epsilon, T *y, ptrdiff_t rows,
                                        ptrdiff_t cols, int num_threads, int relu)
{
    const ptrdiff_t seg_len = fc_bn_segment_rows(cols) * cols;
    T *scale = (T *)malloc(sizeof(T) * (size_t)(cols + 3 * seg_len));
    if (scale == NULL) return -1;
    T *mean_rep = scale + cols, *scale_rep = mean_rep + seg_len, *beta_rep = scale_rep + seg_len;
    num_threads = fc_threads_for(rows * cols, num_threads);
    fc_share item_share;
    SFX(fc_bn_share_items)(&item_share, rows, cols, num_threads);
#if defined(_OPENMP)
#pragma omp parallel num_threads(num_threads)
#endif
    {
        FC_FTZ_BEGIN();
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
        for (ptrdiff_t c = 0; c < cols; c++) {
            scale[c] = SFX(fc_bn_scale)(gamma[c], var[c], epsilon);
            if (!SFX(fc_bn_in_registers)(cols)) {
                SFX(fc_bn_repeat_column)(mean_rep, mean[c], c, cols, seg_len);
                SFX(fc_bn_repeat_column)(scale_rep, scale[c], c, cols, seg_len);
                SFX(fc_bn_repeat_column)(beta_rep, beta[c], c, cols, seg_len);
            }
        }
        SFX(fc_bn_affine)(x, y, mean, scale, beta, mean_rep, scale_rep, beta_rep, rows, cols, relu,
                          &item_share);
        FC_FTZ_END();
    }
    free(scale);
    return 0;
}

int SFX(fc_batch_norm_forward_inference)(const T *x, const T *gamma, const T *beta, const T *mean,
                                         const T *var, double epsilon, T *y, ptrdiff_t rows,
                                         ptrdiff_t cols, int num_threads)
{
    return SFX(fc_bn_forward_inference)(x, gamma, beta, mean, var, epsilon, y, rows, cols,
                                        num_threads, 0);
}

int SFX(fc_batch_norm_relu_forward_inference)(const T *x, const T *gamma, const T *beta,
                                              const T *mean, const T *var, double epsilon, T *y,
                                              ptrdiff_t rows, ptrdiff_t cols, int num_threads)
{
    return SFX(fc_bn_forward_inference)(x, gamma, beta, mean, var, epsilon, y, rows, cols,
                                        num_threads, 1);
}

#if FC_BN_VECTORS
/* dx = a * g + b * (x - mean) + c0 over rows [0, nrows) of U vectors of columns from gs / xs
 * / ds (row r at + r * cols), g = dy or with relu fc_bn_relu_grad's masked dy: the
 * backward's last pass, coefficients in registers (see fc_bn_affine). */
static inline __attribute__((always_inline)) void SFX(fc_bn_dx_strip)(
    const T *gs, const T *xs, T *ds, ptrdiff_t cols, ptrdiff_t nrows, const T *coef_dy,
    const T *coef_xc, const T *coef_0, const T *mean, const T *scale, const T *beta,
    const int relu, const int stream, const int U)
{
    const VT zero = {0};
    VT a[FC_BN_DX_STRIP], b[FC_BN_DX_STRIP], c[FC_BN_DX_STRIP], m[FC_BN_DX_STRIP];
    VT s[FC_BN_DX_STRIP], be[FC_BN_DX_STRIP], one = zero + 1;
#if defined(FC_BN_FMSUB)
    __asm__("" : "+v"(one)); /* not folded back into a subtraction */
#endif
    FC_BN_UNROLL
    for (int u = 0; u < U; u++) {
        a[u] = SFX(fc_bn_vld)(coef_dy + u * LANES);
        b[u] = SFX(fc_bn_vld)(coef_xc + u * LANES);
        c[u] = SFX(fc_bn_vld)(coef_0 + u * LANES);
        m[u] = SFX(fc_bn_vld)(mean + u * LANES);
        s[u] = relu ? SFX(fc_bn_vld)(scale + u * LANES) : zero;
        be[u] = relu ? SFX(fc_bn_vld)(beta + u * LANES) : zero;
    }
    for (ptrdiff_t r = 0; r < nrows; r++) {
        FC_BN_UNROLL
        for (int u = 0; u < U; u++) {
            const VT xc = SFX(fc_bn_minus)(SFX(fc_bn_vld)(xs + r * cols + u * LANES), one, m[u]);
            VT g = SFX(fc_bn_vld)(gs + r * cols + u * LANES);
            if (relu) g = g * __builtin_convertvector(-(xc * s[u] + be[u] >= zero), VT);
            const VT d = a[u] * g + b[u] * xc + c[u];
            if (stream) fc_stream_vector(ds + r * cols + u * LANES, &d, sizeof d);
            else SFX(fc_bn_vst)(ds + r * cols + u * LANES, d);
        }
    }
}

static inline __attribute__((always_inline)) void SFX(fc_bn_dx_rows_any)(
    const T *gs, const T *xs, T *ds, ptrdiff_t cols, ptrdiff_t nrows, const T *coef_dy,
    const T *coef_xc, const T *coef_0, const T *mean, const T *scale, const T *beta,
    const int relu, const int stream)
{
    ptrdiff_t v = 0;
    for (; v + FC_BN_DX_STRIP * LANES <= cols; v += FC_BN_DX_STRIP * LANES)
        SFX(fc_bn_dx_strip)(gs + v, xs + v, ds + v, cols, nrows, coef_dy + v, coef_xc + v,
                            coef_0 + v, mean + v, relu ? scale + v : NULL, relu ? beta + v : NULL,
                            relu, stream, FC_BN_DX_STRIP);
    for (; v + 2 * LANES <= cols; v += 2 * LANES)
        SFX(fc_bn_dx_strip)(gs + v, xs + v, ds + v, cols, nrows, coef_dy + v, coef_xc + v,
                            coef_0 + v, mean + v, relu ? scale + v : NULL, relu ? beta + v : NULL,
                            relu, stream, 2);
    for (; v < cols; v += LANES)
        SFX(fc_bn_dx_strip)(gs + v, xs + v, ds + v, cols, nrows, coef_dy + v, coef_xc + v,
                            coef_0 + v, mean + v, relu ? scale + v : NULL, relu ? beta + v : NULL,
                            relu, stream, 1);
}

static void SFX(fc_bn_dx_rows)(const T *gs, const T *xs, T *ds, ptrdiff_t cols, ptrdiff_t nrows,
                               const T *coef_dy, const T *coef_xc, const T *coef_0,
                               const T *mean, const T *scale, const T *beta, const int relu,
                               const int stream)
{
    if (relu && stream)
        SFX(fc_bn_dx_rows_any)(gs, xs, ds, cols, nrows, coef_dy, coef_xc, coef_0, mean, scale, beta, 1, 1);
    else if (relu)
        SFX(fc_bn_dx_rows_any)(gs, xs, ds, cols, nrows, coef_dy, coef_xc, coef_0, mean, scale, beta, 1, 0);
    else if (stream)
        SFX(fc_bn_dx_rows_any)(gs, xs, ds, cols, nrows, coef_dy, coef_xc, coef_0, mean, NULL, NULL, 0, 1);
    else
        SFX(fc_bn_dx_rows_any)(gs, xs, ds, cols, nrows, coef_dy, coef_xc, coef_0, mean, NULL, NULL, 0, 0);
}
#endif

/* The backward of training-mode batch norm; with beta != NULL, of relu(batch norm): dy is then
 * the gradient of the ReLU's output, masked on the fly (fc_bn_relu_grad) where the forward's
 * value was negative, which equals fc_relu_backward followed by the plain backward bit for
 * bit, without the masked gradient ever being written. */
static int SFX(fc_bn_backward)(const T *dy, const T *x, const T *gamma, const T *beta,
                               const T *mean, const T *var, double epsilon, T *dx, T *dgamma,
                               T *dbeta, ptrdiff_t rows, ptrdiff_t cols, int num_threads)
{
    const fc_bn_tiling t = fc_bn_make_tiling(rows, cols);
    const ptrdiff_t tiles = t.chunks * t.col_blocks;
    const ptrdiff_t seg_len = fc_bn_segment_rows(cols) * cols;
    const int in_registers = SFX(fc_bn_in_registers)(cols);
    const int stream = SFX(fc_bn_streams)(dx, rows, cols);
    const ptrdiff_t seg_rows = SFX(fc_bn_item_rows)(cols);
    const int relu = beta != NULL;
    /* Scratch: per-chunk sums of dy and of dy * (x - mean), dx's coefficients, and those and
     * the mean repeated over a segment; with relu also the forward's scale (per channel and
     * repeated) and beta repeated. */
    double *part_dy = (double *)malloc(sizeof(double) * (size_t)(2 * t.chunks * cols)
                                       + sizeof(T) * (size_t)(4 * cols + 6 * seg_len));
    if (part_dy == NULL) return -1;
    double *part_dyxc = part_dy + t.chunks * cols;
    T *coef_dy = (T *)(part_dyxc + t.chunks * cols);
    T *coef_xc = coef_dy + cols;
    T *coef_0 = coef_xc + cols;
    T *scale = coef_0 + cols;
    T *dy_rep = scale + cols, *xc_rep = dy_rep + seg_len, *c0_rep = xc_rep + seg_len;
    T *mean_rep = c0_rep + seg_len, *scale_rep = mean_rep + seg_len;
    T *beta_rep = scale_rep + seg_len;
    /* The sums need the forward's scale of every channel first: cols divisions, serially. */
    if (relu)
        for (ptrdiff_t c = 0; c < cols; c++) scale[c] = SFX(fc_bn_scale)(gamma[c], var[c], epsilon);
    num_threads = fc_threads_for(rows * cols, num_threads);
    fc_share tile_share, item_share;
    fc_share_pass_init(&tile_share, tiles, num_threads);
    SFX(fc_bn_share_items)(&item_share, rows, cols, num_threads);
    (void)in_registers;
    (void)stream;
#if defined(_OPENMP)
#pragma omp parallel num_threads(num_threads)
#endif
    {
        FC_FTZ_BEGIN();
        FC_SHARE_FOR(&tile_share, tile) {
            ptrdiff_t k, r0, nr, c0, nc;
            fc_bn_tile(&t, tile, &k, &r0, &nr, &c0, &nc);
            if (relu)
                SFX(fc_bn_tile_relu_grad_sums)(dy, x, mean, scale, beta, cols, r0, nr, c0, nc,
                                               part_dy + k * cols + c0, part_dyxc + k * cols + c0);
            else
                SFX(fc_bn_tile_grad_sums)(dy, x, mean, cols, r0, nr, c0, nc,
                                          part_dy + k * cols + c0, part_dyxc + k * cols + c0);
        }
#if defined(_OPENMP)
#pragma omp barrier
#endif
        /* Merge in chunk order; dx = a * dy + b * (x - mean) + c0 with, per channel,
         * a = gamma * inv_std, b = -a * inv_std^2 * sum(dy * (x - mean)) / M,
         * c0 = -a * sum(dy) / M  (the reference's formula, expanded). */
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
        for (ptrdiff_t c = 0; c < cols; c++) {
            double s_dy = 0.0, s_dyxc = 0.0;
            for (ptrdiff_t k = 0; k < t.chunks; k++) {
                s_dy += part_dy[k * cols + c];
                s_dyxc += part_dyxc[k * cols + c];
            }
            double inv_std = 1.0 / sqrt((double)var[c] + epsilon);
            double a = (double)gamma[c] * inv_std;
            dbeta[c] = (T)s_dy;
            dgamma[c] = (T)(s_dyxc * inv_std);
            coef_dy[c] = (T)a;
            coef_xc[c] = (T)(-a * inv_std * inv_std * s_dyxc / (double)rows);
            coef_0[c] = (T)(-a * s_dy / (double)rows);
            if (in_registers) continue; /* (the dx pass then reads the per-channel arrays) */
            SFX(fc_bn_repeat_column)(dy_rep, coef_dy[c], c, cols, seg_len);
            SFX(fc_bn_repeat_column)(xc_rep, coef_xc[c], c, cols, seg_len);
            SFX(fc_bn_repeat_column)(c0_rep, coef_0[c], c, cols, seg_len);
            SFX(fc_bn_repeat_column)(mean_rep, mean[c], c, cols, seg_len);
            if (relu) {
                SFX(fc_bn_repeat_column)(scale_rep, scale[c], c, cols, seg_len);
                SFX(fc_bn_repeat_column)(beta_rep, beta[c], c, cols, seg_len);
            }
        }
        /* Each thread's rows backwards: it starts with those it summed last, still in its
         * L2 (the forward's affine pass likewise, after the statistics pass). */
        FC_SHARE_FOR(&item_share, item) {
            const ptrdiff_t seg = fc_share_mirror(&item_share, item);
            const ptrdiff_t r0 = seg * seg_rows, nrows = fc_bn_min(seg_rows, rows - r0);
            const ptrdiff_t len = nrows * cols;
            const T *restrict xs = x + r0 * cols;
            const T *restrict gs = dy + r0 * cols;
            T *restrict ds = dx + r0 * cols;
#if FC_BN_VECTORS
            if (in_registers) {
                SFX(fc_bn_dx_rows)(gs, xs, ds, cols, nrows, coef_dy, coef_xc, coef_0, mean,
                                   relu ? scale : NULL, relu ? beta : NULL, relu, stream);
                continue;
            }
#endif
            const T *restrict a = dy_rep, *restrict b = xc_rep, *restrict c0 = c0_rep;
            const T *restrict mu = mean_rep;
            if (relu) {
                const T *restrict sc = scale_rep, *restrict be = beta_rep;
                for (ptrdiff_t j = 0; j < len; j++) {
                    const T xc = xs[j] - mu[j];
                    ds[j] = a[j] * SFX(fc_bn_relu_grad)(gs[j], xc, sc[j], be[j]) + b[j] * xc + c0[j];
                }
            } else {
                for (ptrdiff_t j = 0; j < len; j++)
                    ds[j] = a[j] * gs[j] + b[j] * (xs[j] - mu[j]) + c0[j];
            }
        }
        if (stream) fc_store_fence(); /* (before the region's end: dx is read after it) */
        FC_FTZ_END();
    }
    free(part_dy);
    return 0;
}

int SFX(fc_batch_norm_backward)(const T *dy, const T *x, const T *gamma, const T *mean,
                                const T *var, double epsilon, T *dx, T *dgamma, T *dbeta,
                                ptrdiff_t rows, ptrdiff_t cols, int num_threads)
{
    return SFX(fc_bn_backward)(dy, x, gamma, NULL, mean, var, epsilon, dx, dgamma, dbeta, rows,
                               cols, num_threads);
}

/* beta == NULL: the plain backward (as fc_batch_norm_backward). */
int SFX(fc_batch_norm_relu_backward)(const T *dy, const T *x, const T *gamma, const T *beta,
                                     const T *mean, const T *var, double epsilon, T *dx,
                                     T *dgamma, T *dbeta, ptrdiff_t rows, ptrdiff_t cols,
                                     int num_threads)
{
    return SFX(fc_bn_backward)(dy, x, gamma, beta, mean, var, epsilon, dx, dgamma, dbeta, rows,
                               cols, num_threads);
}

/* Frozen batch norm (moving statistics) followed by a ReLU, in training: the backward of the
 * pair is (dy * (z >= 0)) * factor with z the inference forward's value and factor the
 * layer's gamma / sqrt(moving_var + epsilon). The unfused layers compute the products in
 * NumPy, without flushing denormals, while z came from the forward kernel, which flushes:
 * so each segment finds its ReLU mask with denormals flushed, then multiplies in the
 * caller's floating-point mode, and both match the unfused path bit for bit. */
int SFX(fc_batch_norm_relu_backward_inference)(const T *dy, const T *x, const T *gamma,
                                               const T *beta, const T *mean, const T *var,
                                               double epsilon, const T *factor, T *dx,
                                               ptrdiff_t rows, ptrdiff_t cols, int num_threads)
{
    const ptrdiff_t seg_rows = fc_bn_segment_rows(cols), seg_len = seg_rows * cols;
    const ptrdiff_t segments = (rows + seg_rows - 1) / seg_rows;
    num_threads = fc_threads_for(rows * cols, num_threads);
    /* Scratch: scale, mean, beta and factor repeated over a segment, and one segment's mask
     * per thread. */
    T *scale_rep = (T *)malloc(sizeof(T) * (size_t)((4 + num_threads) * seg_len));
    if (scale_rep == NULL) return -1;
    T *mean_rep = scale_rep + seg_len, *beta_rep = mean_rep + seg_len;
    T *factor_rep = beta_rep + seg_len, *masks = factor_rep + seg_len;
    fc_share seg_share;
    fc_share_pass_init(&seg_share, segments, num_threads);
    for (ptrdiff_t c = 0; c < cols; c++) {
        SFX(fc_bn_repeat_column)(scale_rep, SFX(fc_bn_scale)(gamma[c], var[c], epsilon), c, cols,
                                 seg_len);
        SFX(fc_bn_repeat_column)(mean_rep, mean[c], c, cols, seg_len);
        SFX(fc_bn_repeat_column)(beta_rep, beta[c], c, cols, seg_len);
        SFX(fc_bn_repeat_column)(factor_rep, factor[c], c, cols, seg_len);
    }
#if defined(_OPENMP)
#pragma omp parallel num_threads(num_threads)
#endif
    {
#if defined(_OPENMP)
        T *restrict mask = masks + (ptrdiff_t)omp_get_thread_num() * seg_len;
#else
        T *restrict mask = masks;
#endif
        FC_SHARE_FOR(&seg_share, seg) {
            const ptrdiff_t r0 = seg * seg_rows, len = fc_bn_min(seg_rows, rows - r0) * cols;
            const T *restrict xs = x + r0 * cols;
            const T *restrict gs = dy + r0 * cols;
            T *restrict ds = dx + r0 * cols;
            const T *restrict mu = mean_rep, *restrict sc = scale_rep, *restrict be = beta_rep;
            const T *restrict f = factor_rep;
            {
                FC_FTZ_BEGIN();
                for (ptrdiff_t j = 0; j < len; j++)
                    mask[j] = SFX(fc_bn_relu_grad)((T)1, xs[j] - mu[j], sc[j], be[j]);
                FC_FTZ_END();
            }
            for (ptrdiff_t j = 0; j < len; j++) ds[j] = (gs[j] * mask[j]) * f[j];
        }
    }
    free(scale_rep);
    return 0;
}

#endif /* FC_BATCHNORM_TEMPLATE */
