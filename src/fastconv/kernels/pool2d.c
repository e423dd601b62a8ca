/* 2-D max/average pooling and global pooling on NHWC arrays: see pool2d.h.
 *
 * The channel axis is contiguous, so every inner loop runs over channels with unit stride
 * and no data-dependent branches, which the compiler vectorises at the baseline ISA.
 *
 * Parallelisation and determinism: every output element is written by exactly one work
 * item, and each item does its work in a fixed order, so the results are bit-identical for
 * any number of threads. The backward passes split dx into row bands, one per output row
 * (band `oh` starts where window `oh` starts); a band's work item zeroes it and then adds in
 * the contributions of every window that overlaps it, clipped to the band. Overlapping
 * windows are therefore evaluated once per band they touch, but no two threads ever write
 * the same dx element, and batch 1 still has out_h items to share out.
 *
 * This file is a template: it includes itself twice, once for float and once for double,
 * with T the element type and SFX(name) adding the type suffix to a function name.
 */
#ifndef FC_POOL2D_TEMPLATE

#include "pool2d.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#if defined(_OPENMP)
#include <omp.h>
#endif

#if defined(__x86_64__) || defined(_M_X64) || defined(__SSE2__)
#include <xmmintrin.h>
/* Flush denormal results to zero and read denormal inputs as zero (MXCSR FTZ|DAZ) for the
 * calling thread; used only by the average pooling kernels, which do arithmetic. Max pooling
 * only compares and copies, and DAZ would change which element compares as the maximum. */
#define FC_FTZ_BEGIN() unsigned int fc_saved_csr_ = _mm_getcsr(); _mm_setcsr(fc_saved_csr_ | 0x8040u)
#define FC_FTZ_END() _mm_setcsr(fc_saved_csr_)
#else
#define FC_FTZ_BEGIN() ((void)0)
#define FC_FTZ_END() ((void)0)
#endif

/* Channels handled at a time by kernels that keep per-channel state on the stack. */
#define FC_POOL_CHANNEL_BLOCK 256

/* Below this many elements of work per thread, extra threads cost more to wake than they save. */
#define FC_POOL_MIN_WORK_PER_THREAD 32768

static inline ptrdiff_t fc_max_pd(ptrdiff_t a, ptrdiff_t b) { return a > b ? a : b; }
static inline ptrdiff_t fc_min_pd(ptrdiff_t a, ptrdiff_t b) { return a < b ? a : b; }

/* Threads worth using for `work` elements (at least 1, at most num_threads). Small problems
 * stay on the calling thread. Results never depend on the thread count. */
static inline int fc_pool_threads(ptrdiff_t work, int num_threads)
{
    ptrdiff_t useful = work / FC_POOL_MIN_WORK_PER_THREAD;
    if (useful < 1) useful = 1;
    return useful < num_threads ? (int)useful : num_threads;
}

/* The rows [lo, hi) of dx that the work item of output row `oh` owns (see the top comment). */
static void fc_pool_band(const fc_pool2d_geometry *g, ptrdiff_t oh, ptrdiff_t *lo, ptrdiff_t *hi)
{
    ptrdiff_t start = oh * g->stride_h - g->pad_top;
    ptrdiff_t next = start + g->stride_h;
    *lo = oh == 0 ? 0 : fc_min_pd(fc_max_pd(start, 0), g->h);
    *hi = oh == g->out_h - 1 ? g->h : fc_min_pd(fc_max_pd(next, 0), g->h);
}

/* Real (unpadded) extent [lo, hi) of window `o` along an axis of the given size. */
static inline void fc_window_span(ptrdiff_t o, ptrdiff_t stride, ptrdiff_t pad, ptrdiff_t pool,
                                  ptrdiff_t size, ptrdiff_t *lo, ptrdiff_t *hi)
{
    ptrdiff_t start = o * stride - pad;
    *lo = fc_max_pd(start, 0);
    *hi = fc_min_pd(start + pool, size);
}

#define FC_POOL2D_TEMPLATE
#define T float
#define SFX(name) name##_f32
#include "pool2d.c"
#undef T
#undef SFX
#define T double
#define SFX(name) name##_f64
#include "pool2d.c"
#undef T
#undef SFX
#undef FC_POOL2D_TEMPLATE

#else /* FC_POOL2D_TEMPLATE: the body below is compiled once per element type T. */

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

/* ---- max pooling --------------------------------------------------------------------------- */

void SFX(fc_max_pool2d_forward)(const T *x, T *out, const fc_pool2d_geometry *g, int num_threads)
{
    const ptrdiff_t H = g->h, W = g->w, C = g->c, OH = g->out_h, OW = g->out_w;
    const ptrdiff_t items = g->n * OH;
    num_threads = fc_pool_threads(g->n * g->h * g->w * g->c, num_threads);
    (void)num_threads;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) num_threads(num_threads)
#endif
    for (ptrdiff_t item = 0; item < items; item++) {
        ptrdiff_t n = item / OH, oh = item % OH, r0, r1;
        fc_window_span(oh, g->stride_h, g->pad_top, g->pool_h, H, &r0, &r1);
        for (ptrdiff_t ow = 0; ow < OW; ow++) {
            ptrdiff_t c0, c1;
            fc_window_span(ow, g->stride_w, g->pad_left, g->pool_w, W, &c0, &c1);
            T *o = out + (item * OW + ow) * C;
            SFX(fc_copy)(o, x + ((n * H + r0) * W + c0) * C, C);
            for (ptrdiff_t r = r0; r < r1; r++)
                for (ptrdiff_t col = (r == r0 ? c0 + 1 : c0); col < c1; col++)
                    SFX(fc_max_into)(o, x + ((n * H + r) * W + col) * C, C);
        }
    }
}

void SFX(fc_max_pool2d_backward)(const T *dy, const T *x, T *dx, const fc_pool2d_geometry *g,
                                 int num_threads)
{
    const ptrdiff_t H = g->h, W = g->w, C = g->c, OH = g->out_h, OW = g->out_w;
    const ptrdiff_t items = g->n * OH;
    /* Windows further than this many output rows above a band can still reach into it. */
    const ptrdiff_t reach = (g->pool_h + g->stride_h - 1) / g->stride_h;
    num_threads = fc_pool_threads(g->n * g->h * g->w * g->c, num_threads);
    (void)num_threads;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) num_threads(num_threads)
#endif
    for (ptrdiff_t item = 0; item < items; item++) {
        ptrdiff_t n = item / OH, oh = item % OH, b0, b1;
        T target[FC_POOL_CHANNEL_BLOCK];
        fc_pool_band(g, oh, &b0, &b1);
        if (b1 <= b0) continue; /* empty band (large top padding): nothing to own */
        memset(dx + (n * H + b0) * W * C, 0, (size_t)((b1 - b0) * W * C) * sizeof(T));
        for (ptrdiff_t o = fc_max_pd(oh - reach, 0); o <= oh; o++) {
            ptrdiff_t r0, r1;
            fc_window_span(o, g->stride_h, g->pad_top, g->pool_h, H, &r0, &r1);
            if (r1 <= b0 || r0 >= b1) continue; /* window does not touch this band */
            for (ptrdiff_t ow = 0; ow < OW; ow++) {
                ptrdiff_t c0, c1;
                fc_window_span(ow, g->stride_w, g->pad_left, g->pool_w, W, &c0, &c1);
                const T *dy_px = dy + ((n * OH + o) * OW + ow) * C;
                for (ptrdiff_t cb = 0; cb < C; cb += FC_POOL_CHANNEL_BLOCK) {
                    ptrdiff_t nc = fc_min_pd(FC_POOL_CHANNEL_BLOCK, C - cb);
                    /* Pass 1: the window maximum (over all its rows, also outside the band). */
                    SFX(fc_copy)(target, x + ((n * H + r0) * W + c0) * C + cb, nc);
                    for (ptrdiff_t r = r0; r < r1; r++)
                        for (ptrdiff_t col = (r == r0 ? c0 + 1 : c0); col < c1; col++)
                            SFX(fc_max_into)(target, x + ((n * H + r) * W + col) * C + cb, nc);
                    /* Pass 2: walk the window in row-major order up to the band's end; rows
                     * above the band only retire channels whose first maximum lies there. */
                    ptrdiff_t rend = fc_min_pd(r1, b1);
                    for (ptrdiff_t r = r0; r < rend; r++) {
                        for (ptrdiff_t col = c0; col < c1; col++) {
                            ptrdiff_t off = ((n * H + r) * W + col) * C + cb;
                            if (r >= b0)
                                SFX(fc_first_max_scatter)(dx + off, x + off, target, dy_px + cb, nc);
                            else
                                SFX(fc_first_max_skip)(x + off, target, nc);
                        }
                    }
                }
            }
        }
    }
}

/* ---- average pooling ----------------------------------------------------------------------- */

void SFX(fc_avg_pool2d_forward)(const T *x, T *out, const fc_pool2d_geometry *g, int num_threads)
{
    const ptrdiff_t H = g->h, W = g->w, C = g->c, OH = g->out_h, OW = g->out_w;
    const ptrdiff_t items = g->n * OH;
    num_threads = fc_pool_threads(g->n * g->h * g->w * g->c, num_threads);
    (void)num_threads;
#if defined(_OPENMP)
#pragma omp parallel num_threads(num_threads)
#endif
    {
        FC_FTZ_BEGIN();
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
        for (ptrdiff_t item = 0; item < items; item++) {
            ptrdiff_t n = item / OH, oh = item % OH, r0, r1;
            fc_window_span(oh, g->stride_h, g->pad_top, g->pool_h, H, &r0, &r1);
            for (ptrdiff_t ow = 0; ow < OW; ow++) {
                ptrdiff_t c0, c1;
                fc_window_span(ow, g->stride_w, g->pad_left, g->pool_w, W, &c0, &c1);
                T *o = out + (item * OW + ow) * C;
                const T count = (T)((r1 - r0) * (c1 - c0));
                SFX(fc_copy)(o, x + ((n * H + r0) * W + c0) * C, C);
                for (ptrdiff_t r = r0; r < r1; r++)
                    for (ptrdiff_t col = (r == r0 ? c0 + 1 : c0); col < c1; col++)
                        SFX(fc_add_into)(o, x + ((n * H + r) * W + col) * C, C);
                for (ptrdiff_t i = 0; i < C; i++) o[i] = o[i] / count;
            }
        }
        FC_FTZ_END();
    }
}

void SFX(fc_avg_pool2d_backward)(const T *dy, T *dx, const fc_pool2d_geometry *g, int num_threads)
{
    const ptrdiff_t H = g->h, W = g->w, C = g->c, OH = g->out_h, OW = g->out_w;
    const ptrdiff_t items = g->n * OH;
    const ptrdiff_t reach = (g->pool_h + g->stride_h - 1) / g->stride_h;
    num_threads = fc_pool_threads(g->n * g->h * g->w * g->c, num_threads);
    (void)num_threads;
#if defined(_OPENMP)
#pragma omp parallel num_threads(num_threads)
#endif
    {
        FC_FTZ_BEGIN();
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
        for (ptrdiff_t item = 0; item < items; item++) {
            ptrdiff_t n = item / OH, oh = item % OH, b0, b1;
            T share[FC_POOL_CHANNEL_BLOCK];
            fc_pool_band(g, oh, &b0, &b1);
            if (b1 <= b0) continue;
            memset(dx + (n * H + b0) * W * C, 0, (size_t)((b1 - b0) * W * C) * sizeof(T));
            for (ptrdiff_t o = fc_max_pd(oh - reach, 0); o <= oh; o++) {
                ptrdiff_t r0, r1;
                fc_window_span(o, g->stride_h, g->pad_top, g->pool_h, H, &r0, &r1);
                if (r1 <= b0 || r0 >= b1) continue;
                for (ptrdiff_t ow = 0; ow < OW; ow++) {
                    ptrdiff_t c0, c1;
                    fc_window_span(ow, g->stride_w, g->pad_left, g->pool_w, W, &c0, &c1);
                    const T count = (T)((r1 - r0) * (c1 - c0));
                    const T *dy_px = dy + ((n * OH + o) * OW + ow) * C;
                    for (ptrdiff_t cb = 0; cb < C; cb += FC_POOL_CHANNEL_BLOCK) {
                        ptrdiff_t nc = fc_min_pd(FC_POOL_CHANNEL_BLOCK, C - cb);
                        for (ptrdiff_t i = 0; i < nc; i++) share[i] = dy_px[cb + i] / count;
                        for (ptrdiff_t r = fc_max_pd(r0, b0); r < fc_min_pd(r1, b1); r++)
                            for (ptrdiff_t col = c0; col < c1; col++)
                                SFX(fc_add_into)(dx + ((n * H + r) * W + col) * C + cb, share, nc);
                    }
                }
            }
        }
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
    num_threads = fc_pool_threads(n * h * w * c, num_threads);
    (void)num_threads;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) num_threads(num_threads)
#endif
    for (ptrdiff_t item = 0; item < items; item++) {
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
    num_threads = fc_pool_threads(n * h * w * c, num_threads);
    (void)num_threads;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) num_threads(num_threads)
#endif
    for (ptrdiff_t item = 0; item < items; item++) {
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
    num_threads = fc_pool_threads(n * h * w * c, num_threads);
    (void)num_threads;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) num_threads(num_threads)
#endif
    for (ptrdiff_t item = 0; item < items; item++) {
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
    num_threads = fc_pool_threads(n * h * w * c, num_threads);
    (void)num_threads;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) num_threads(num_threads)
#endif
    for (ptrdiff_t item = 0; item < items; item++) {
        ptrdiff_t s = item / blocks, cb = (item % blocks) * FC_POOL_CHANNEL_BLOCK;
        ptrdiff_t nc = fc_min_pd(FC_POOL_CHANNEL_BLOCK, c - cb);
        T best[FC_POOL_CHANNEL_BLOCK], taken[FC_POOL_CHANNEL_BLOCK];
        const T *restrict g = dy + s * c + cb;
        SFX(fc_copy)(best, x + s * pixels * c + cb, nc);
        for (ptrdiff_t p = 1; p < pixels; p++)
            SFX(fc_max_into)(best, x + (s * pixels + p) * c + cb, nc);
        for (ptrdiff_t i = 0; i < nc; i++) taken[i] = 0;
        /* numpy's argmax (the reference) picks the first maximum, or the first NaN if any:
         * a pixel wins if it matches the maximum (a NaN maximum is matched by any NaN) and no
         * pixel did before. `taken` and `hit` are 0/1 in T so that gcc vectorises the loop
         * (integer flags and && leave control flow in it). Every dx element is written once. */
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
