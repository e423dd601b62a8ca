/* Convolution driver: implicit GEMM on NHWC with the run-time selected microkernels.
 *
 * Forward: M = N*OH*OW output pixels x F_g filters per group, K = KH*KW*C_g. Each thread
 * takes blocks of output pixels and builds their indirection table (for every tap and pixel
 * a pointer to the input pixel, or to zeros in the padding: the im2col matrix without the
 * copy); the indirect microkernel multiplies it with the weights, packed once per call into
 * NR-wide panels. 1x1 / stride 1 / unpadded convolutions multiply the input directly.
 * Backward-data, stride 1: the adjoint convolution (dy convolved with the flipped, transposed
 * kernel) through the same implicit GEMM, each dx element written once.
 * Backward-data, larger strides: dpatches = dy @ W^T per block of output pixels, scattered
 * (col2im) into dx; blocks are bands of output rows, run in two phases (even bands, then odd
 * bands) so that no two threads add into the same dx row at once and the order of the
 * additions is fixed.
 * Backward-weights: dW = patches^T @ dy (patches of a sub-block of pixels copied into a
 * thread-local buffer), reduced over output pixels split into a number of
 * chunks that depends only on the shape; each chunk sums into its own buffer and the chunks
 * are added in a fixed order: bit-identical results for any thread count.
 * Depthwise convolutions (groups == C) use the direct kernels of the table instead.
 *
 * Threads: one OpenMP team per call (num_threads(n)). The big loops share out their units
 * (pixel blocks, chunks, bands, rows) as fc_share does (kernel_common.h): each thread first
 * takes the contiguous block of units its number owns (the images the neighbouring layers'
 * thread of that number handles, so they stay in its core's caches), then helps with the
 * others, so a thread that the OS preempts does not hold the others up; results do not depend
 * on it, because every unit is computed by one thread in a fixed order and partial sums are
 * combined in a fixed order.
 */
#include "conv2d.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"

#ifdef _OPENMP
#include <omp.h>
#define FC_PRAGMA(x) _Pragma(#x)
#define FC_OMP(x) FC_PRAGMA(omp x)
static int fc_thread_id(void) { return omp_get_thread_num(); }
#else
#define FC_OMP(x)
static int fc_thread_id(void) { return 0; }
#endif

#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64) || defined(_M_IX86)
#include <xmmintrin.h>
/* Flush denormals to zero (FTZ) and treat denormal inputs as zero (DAZ) in this thread. */
static unsigned fc_denormals_off(void)
{
    unsigned old = _mm_getcsr();
    _mm_setcsr(old | 0x8040u);
    return old;
}
static void fc_denormals_restore(unsigned old) { _mm_setcsr(old); }
#else
static unsigned fc_denormals_off(void) { return 0; }
static void fc_denormals_restore(unsigned old) { (void)old; }
#endif

/* Per-thread scratch of the convolution paths is allocated by each thread inside the parallel
 * region: glibc serves each thread from its own arena, so the memory a thread gets is the
 * memory it used the call before, still in its core's caches. Slices of one block allocated
 * before the region changed hands from call to call, and when the host ran our two vCPUs on
 * two L3s every line of them crossed between the caches (lenet_c1 forward, 2 threads: 0.199 ->
 * 0.150 ms across L3s, 0.158 -> 0.150 within one). */

static int thread_alloc_failures = 0; /* bit t: thread t's allocations fail (tests) */
static ptrdiff_t thread_allocs_denied = 0; /* how many of them the mask has failed */

int fc_conv2d_fail_thread_allocs(int mask)
{
    const int previous = thread_alloc_failures;
    thread_alloc_failures = mask;
    return previous;
}

ptrdiff_t fc_conv2d_thread_allocs_denied(void) { return thread_allocs_denied; }

/* `bytes` from fc_alloc (NULL for 0 bytes); a failed allocation clears *ready. */
static void *fc_thread_alloc(size_t bytes, int *ready)
{
    if (bytes == 0) return NULL;
    const int t = fc_thread_id();
    void *m = NULL;
    if (t < 31 && (thread_alloc_failures >> t & 1)) {
        FC_OMP(atomic update)
        thread_allocs_denied++;
    } else {
        m = fc_alloc(bytes);
    }
    if (m == NULL) *ready = 0;
    return m;
}

/* Returns `ready` (whether this thread's scratch is all there) and, if not, marks the call as
 * failed: that thread skips its share, the others finish theirs, and the call then reports
 * FC_CONV_NOMEM. */
static int fc_thread_ready(int ready, int *failed)
{
    if (!ready) {
        FC_OMP(atomic write)
        *failed = 1;
    }
    return ready;
}

static int conv_paths = FC_PATH_ALL;

int fc_conv2d_set_paths(int mask)
{
    const int previous = conv_paths;
    conv_paths = mask & (FC_PATH_ALL | FC_PATH_WINOGRAD4_ALWAYS);
    return previous;
}

static ptrdiff_t stream_min_bytes = FC_STREAM_MIN_BYTES;

ptrdiff_t fc_conv2d_set_stream_min_bytes(ptrdiff_t bytes)
{
    return fc_swap_stream_min_bytes(&stream_min_bytes, bytes);
}

int fc_conv2d_flat_lanes(int double_precision)
{
    const fc_kernel_table *kt = fc_get_kernels();
    return double_precision ? kt->flat_vl_f64 : kt->flat_vl_f32;
}

static ptrdiff_t ceil_div(ptrdiff_t a, ptrdiff_t b) { return (a + b - 1) / b; }
static ptrdiff_t round_up(ptrdiff_t a, ptrdiff_t b) { return ceil_div(a, b) * b; }
static ptrdiff_t min_pd(ptrdiff_t a, ptrdiff_t b) { return a < b ? a : b; }
static ptrdiff_t max_pd(ptrdiff_t a, ptrdiff_t b) { return a > b ? a : b; }

/* 1x1 kernel, stride 1, no padding: the patch matrix is the input itself. */
static int is_pointwise(const fc_conv2d_params *p)
{
    return p->kh == 1 && p->kw == 1 && p->stride_h == 1 && p->stride_w == 1 &&
           p->pad_top == 0 && p->pad_bottom == 0 && p->pad_left == 0 && p->pad_right == 0;
}

/* groups == C: the direct depthwise kernels, vectorised over channels. A single channel
 * (groups == C == 1, e.g. the first layer of a grey-scale net) is an ordinary convolution
 * and runs far faster as a GEMM over its taps. */
static int is_depthwise(const fc_conv2d_params *p)
{
    return p->groups == p->c && p->c > 1;
}

/* Number of output-pixel chunks of the weight-gradient reduction: a function of the shape
 * only (never of the thread count), so the summation order is fixed. */
static ptrdiff_t weight_grad_chunks(ptrdiff_t pixels, ptrdiff_t dw_elems, size_t elem_size)
{
    const ptrdiff_t max_chunks = 16, min_pixels = 1024;
    const double max_bytes = 64.0 * 1024 * 1024; /* extra partial sums, all chunks */
    ptrdiff_t chunks = min_pd(max_chunks, max_pd(1, pixels / min_pixels));
    while (chunks > 1 && (double)(chunks - 1) * (double)dw_elems * (double)elem_size > max_bytes)
        chunks--;
    return chunks;
}

/* Output rows per band of the backward-data scatter: bands b and b + 2 never touch the same
 * input row. Depends on the shape only. */
static ptrdiff_t scatter_band_rows(const fc_conv2d_params *p, ptrdiff_t target_pixels)
{
    ptrdiff_t min_rows = ceil_div((p->kh - 1) * p->dil_h + 1, p->stride_h);
    ptrdiff_t rows = max_pd(min_rows, ceil_div(target_pixels, p->out_w));
    /* Keep some bands per image for parallelism on small batches. */
    ptrdiff_t few = max_pd(min_rows, p->out_h / 4);
    return max_pd(1, min_pd(rows, few));
}

/* Walks over consecutive output pixels m = (n * OH + oh) * OW + ow. */
static void pixel_at(const fc_conv2d_params *p, ptrdiff_t m, ptrdiff_t *n, ptrdiff_t *oh, ptrdiff_t *ow)
{
    const ptrdiff_t pixels = p->out_h * p->out_w;
    *n = m / pixels;
    *oh = (m % pixels) / p->out_w;
    *ow = m % p->out_w;
}

static inline void next_pixel(const fc_conv2d_params *p, ptrdiff_t *n, ptrdiff_t *oh, ptrdiff_t *ow)
{
    if (++*ow == p->out_w) {
        *ow = 0;
        if (++*oh == p->out_h) { *oh = 0; ++*n; }
    }
}

/* Zero-bordered input rows (few-channel layers, one group, no width dilation): row n * H + ih
 * holds padded columns [0, padded_row_width) (column pc = input column pc - pad_left, zero
 * outside the image), so the KW * C patch values of one kernel row are one contiguous run. */
static ptrdiff_t padded_row_width(const fc_conv2d_params *p)
{
    return (p->out_w - 1) * p->stride_w + p->kw;
}

/* Framed images (the forward of few-channel layers): image n is framed_rows rows of
 * padded_row_width * C values, framed row r holding input row r - pad_top with zero borders
 * (all zeros outside the image). Every kernel row of every output pixel is then one run
 * inside its image: a pixel's runs are dil_h rows apart, and those of consecutive pixels of
 * an output row stride_w * C values apart, so the pointers of a tile within one output row
 * are one shared table plus the offset of its first pixel. */
static ptrdiff_t framed_rows(const fc_conv2d_params *p)
{
    return (p->out_h - 1) * p->stride_h + (p->kh - 1) * p->dil_h + 1;
}

static ptrdiff_t framed_offset(const fc_conv2d_params *p, ptrdiff_t n, ptrdiff_t oh, ptrdiff_t ow)
{
    return ((n * framed_rows(p) + oh * p->stride_h) * padded_row_width(p) + ow * p->stride_w) * p->c;
}

/* The shared run tables of framed tiles (framed_shapes in conv2d_impl.h), and the one a tile
 * of `rows` pixels takes, `a` of them left in its output row (the rest in the next row, or in
 * the next image's first row if next_image). */
#define FC_FRAMED_TABLES(mr) (3 * (ptrdiff_t)(mr) - 2)
static ptrdiff_t framed_table(int mr, ptrdiff_t rows, ptrdiff_t a, int next_image)
{
    return rows <= a ? rows - 1 : (next_image ? 2 * (ptrdiff_t)mr - 1 : mr) + a - 1;
}

/* With OW < mr, tables of whole tiles spanning three output rows or more (LeNet-5 C3's
 * 10-pixel rows in 24-pixel tiles), which would otherwise each build their own: a tile within
 * one image that starts at column ow takes table FC_FRAMED_TABLES(mr) + ow; one that crosses
 * into the next image with `left` < mr of its pixels in its own takes FC_FRAMED_TABLES(mr) +
 * OW + left - 1 (left fixes where it starts). The count of all tables: */
static ptrdiff_t framed_tables_count(const fc_conv2d_params *p, int mr)
{
    return FC_FRAMED_TABLES(mr) + (p->out_w < mr ? p->out_w + mr - 1 : 0);
}

/* The offset from a tile of mr pixels of an output row to the next one in that row. */
static ptrdiff_t framed_tile_step(const fc_conv2d_params *p, ptrdiff_t mr)
{
    return mr * p->stride_w * p->c;
}

/* Walks consecutive output pixels m = (n * OH + oh) * OW + ow, keeping the offset in the
 * zero-bordered rows of kernel row 0's run (`at`, advanced by an addition per pixel; valid
 * only for kernel rows inside the image) and the input row ih0 of kernel row 0. */
typedef struct {
    ptrdiff_t n, oh, ow, ih0, at;
} run_walker;

static inline void run_walker_row(const fc_conv2d_params *p, run_walker *rw)
{
    rw->ih0 = rw->oh * p->stride_h - p->pad_top;
    rw->at = ((rw->n * p->h + rw->ih0) * padded_row_width(p) + rw->ow * p->stride_w) * p->c;
}

static inline run_walker run_walker_at(const fc_conv2d_params *p, ptrdiff_t m)
{
    run_walker rw;
    pixel_at(p, m, &rw.n, &rw.oh, &rw.ow);
    run_walker_row(p, &rw);
    return rw;
}

static inline void run_walker_next(const fc_conv2d_params *p, run_walker *rw)
{
    if (++rw->ow < p->out_w) {
        rw->at += p->stride_w * p->c;
        return;
    }
    rw->ow = 0;
    if (++rw->oh == p->out_h) { rw->oh = 0; ++rw->n; }
    run_walker_row(p, rw);
}

/* Offset of the run of kernel row i of the walker's pixel, or -1 when that kernel row lies in
 * the top/bottom padding. row_step = dil_h * padded_row_width * C. */
static inline ptrdiff_t run_offset(const fc_conv2d_params *p, const run_walker *rw, ptrdiff_t i,
                                   ptrdiff_t row_step)
{
    const ptrdiff_t ih = rw->ih0 + i * p->dil_h;
    return (ih >= 0 && ih < p->h) ? rw->at + i * row_step : -1;
}

/* A max pooling fused into a forward pass: windows h x w, strides equal to them, no padding
 * (the pooled output is (N, OH / h, OW / w, F), rounded down). */
typedef struct {
    ptrdiff_t h, w;
} pool_window;

/* Output pixel (n * OH + oh) * OW at which pooled row `row` (= n * (OH / h) + its row) starts:
 * the first of the pool->h output rows it is taken from. */
static inline ptrdiff_t pooled_row_pixel(const fc_conv2d_params *p, const pool_window *pool,
                                         ptrdiff_t row)
{
    const ptrdiff_t pool_oh = p->out_h / pool->h;
    return ((row / pool_oh) * p->out_h + (row % pool_oh) * pool->h) * p->out_w;
}

#define FC_T float
#define FC_SFX f32
#include "conv2d_impl.h"
#undef FC_T
#undef FC_SFX

#define FC_T double
#define FC_SFX f64
#include "conv2d_impl.h"
#undef FC_T
#undef FC_SFX
