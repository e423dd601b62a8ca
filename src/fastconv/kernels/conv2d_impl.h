/* Convolution driver for one dtype; included by conv2d.c with FC_T / FC_SFX defined. */
#define FC_CI_CAT_(a, b) a##_##b
#define FC_CI_CAT(a, b) FC_CI_CAT_(a, b)
#define FC_FN(base) FC_CI_CAT(base, FC_SFX)
#define FC_KT(kt, field) ((kt)->FC_CI_CAT(field, FC_SFX))

/* Largest reduction length per microkernel call: keeps a B panel (KC x NR) in L1/L2. */
#define FC_KC_MAX ((ptrdiff_t)320)
/* The framed few-channel forward reads whole kernel rows per call, at most this many values:
 * an 11x11x3 kernel (363) in one call rather than 9 rows and then 2, which stored and reloaded
 * the tile between (alex_c1 forward 5.45 -> 5.37 ms p10, 2 threads); its B panel (363 x 64
 * floats, 93 KiB) streams from L2 at a few loads per 24 multiply-adds. */
#define FC_ROW_KC_MAX ((ptrdiff_t)512)
/* Output pixels per block of the forward / backward-data GEMMs, in microtiles. */
#define FC_MB_TILES 8
/* Few-channel forwards (K = KH * KW * C_g small) take more tiles per block, up to this many:
 * at least FC_BLOCK_MACS multiply-adds per block, so that handing out a block (a counter, which
 * both cores wrote when this was chosen, before fc_share) and setting up its tables stay small
 * next to its work. */
#define FC_MB_TILES_MAX 64
#ifndef FC_BLOCK_MACS
#define FC_BLOCK_MACS ((ptrdiff_t)65536)
#endif
/* Below this many channels per group, the forward copies patches into rows (see
 * implicit_gemm_conv) rather than reading them through the indirection table. */
#define FC_PATCH_ROWS_MAX_CG 8
/* Output pixels per sub-block of the weight-gradient GEMM. */
#define FC_WB_PIXELS ((ptrdiff_t)256)
/* Pixel blocks up to which a dense-like layer reads its weights in place (no packing). */
#define FC_IN_PLACE_MAX_BLOCKS 4

/* Copy columns [k0, k0 + kn) of the group-`g` patch rows of output pixels [m0, m0 + mb)
 * into dst (row r at dst + r * ld); padding taps give zeros. Column k = tap * C_g + c. */
static void FC_FN(pack_patches)(const fc_conv2d_params *p, const FC_T *x, ptrdiff_t g,
                                ptrdiff_t m0, ptrdiff_t mb, ptrdiff_t k0, ptrdiff_t kn,
                                FC_T *dst, ptrdiff_t ld)
{
    const ptrdiff_t cg = p->c / p->groups;
    const ptrdiff_t t_first = k0 / cg, c_first = k0 - t_first * cg;
    const ptrdiff_t i_first = t_first / p->kw, j_first = t_first % p->kw;
    ptrdiff_t n, oh, ow;
    pixel_at(p, m0, &n, &oh, &ow);
    for (ptrdiff_t r = 0; r < mb; r++) {
        FC_T *row = dst + r * ld;
        const ptrdiff_t ih0 = oh * p->stride_h - p->pad_top, iw0 = ow * p->stride_w - p->pad_left;
        const FC_T *ximg = x + n * p->h * p->w * p->c + g * cg;
        ptrdiff_t k = k0, c = c_first, i = i_first, j = j_first;
        while (k < k0 + kn) {
            const ptrdiff_t len = min_pd(cg - c, k0 + kn - k);
            const ptrdiff_t ih = ih0 + i * p->dil_h, iw = iw0 + j * p->dil_w;
            FC_T *out = row + (k - k0);
            if (ih >= 0 && ih < p->h && iw >= 0 && iw < p->w) {
                const FC_T *src = ximg + (ih * p->w + iw) * p->c + c;
                if (len >= 16) memcpy(out, src, (size_t)len * sizeof(FC_T));
                else for (ptrdiff_t q = 0; q < len; q++) out[q] = src[q];
            } else {
                for (ptrdiff_t q = 0; q < len; q++) out[q] = 0;
            }
            k += len;
            c = 0;
            if (++j == p->kw) { j = 0; i++; }
        }
        next_pixel(p, &n, &oh, &ow);
    }
}

/* Add dpatch rows of output pixels [m0, m0 + mb), group g, into dx (col2im). */
static void FC_FN(scatter_patches)(const fc_kernel_table *kt, const fc_conv2d_params *p,
                                   const FC_T *src, ptrdiff_t ld, ptrdiff_t g, ptrdiff_t m0,
                                   ptrdiff_t mb, FC_T *dx)
{
    const ptrdiff_t cg = p->c / p->groups;
    ptrdiff_t n, oh, ow;
    pixel_at(p, m0, &n, &oh, &ow);
    for (ptrdiff_t r = 0; r < mb; r++) {
        const FC_T *row = src + r * ld;
        FC_T *dimg = dx + n * p->h * p->w * p->c + g * cg;
        for (ptrdiff_t i = 0; i < p->kh; i++) {
            const ptrdiff_t ih = oh * p->stride_h - p->pad_top + i * p->dil_h;
            if (ih < 0 || ih >= p->h) continue;
            for (ptrdiff_t j = 0; j < p->kw; j++) {
                const ptrdiff_t iw = ow * p->stride_w - p->pad_left + j * p->dil_w;
                if (iw < 0 || iw >= p->w) continue;
                FC_T *dst = dimg + (ih * p->w + iw) * p->c;
                FC_KT(kt, add_into)(dst, row + (i * p->kw + j) * cg, cg);
            }
        }
        next_pixel(p, &n, &oh, &ow);
    }
}

/* ------------------------------------------------------------------------------------ */
/* Forward                                                                              */
/* ------------------------------------------------------------------------------------ */

/* y[0, n) = numpy.maximum(y, 0): v when v > 0 or v is NaN, else +0 (the output ReLU fused
 * into a forward pass, applied while the block just written is in cache). */
static inline void FC_FN(relu_in_place)(FC_T *y, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        const FC_T v = y[i];
        y[i] = (v > (FC_T)0 || v != v) ? v : (FC_T)0;
    }
}

/* The fused output activation `act` (conv2d.h: FC_ACT_*) of y[0, n). */
static inline void FC_FN(activate)(const fc_kernel_table *kt, int act, FC_T *y, ptrdiff_t n)
{
    if (act == FC_ACT_RELU) FC_FN(relu_in_place)(y, n);
    else if (act == FC_ACT_TANH) FC_KT(kt, act_tanh)(y, n);
}

static int FC_FN(depthwise_forward)(const fc_kernel_table *kt, const fc_conv2d_params *p,
                                    const FC_T *x, const FC_T *w, const FC_T *bias, FC_T *y,
                                    int num_threads)
{
    const ptrdiff_t rows = p->n * p->out_h;
    if (num_threads > rows) num_threads = (int)rows;
    (void)num_threads;
    fc_share row_share;
    fc_share_init(&row_share, rows, num_threads, 8, FC_SHARE_EAGER);
    FC_OMP(parallel num_threads(num_threads))
    {
        unsigned csr = fc_denormals_off();
        /* Rows are small: hand them out 8 at a time (fewer grabs, contiguous memory). */
        FC_SHARE_FOR(&row_share, row) FC_KT(kt, dw_forward)(p, x, w, bias, y, row);
        FC_OMP(barrier)
        fc_denormals_restore(csr);
    }
    return FC_CONV_OK;
}

/* Indirection rows of output pixels [m0, m0 + mb) for every tap: ind[(tile * taps + t) * mr + i]
 * points at input pixel (n, ih, iw) (channel 0) of row tile * mr + i, or at `zeros` where the
 * tap falls in the padding. Rows past mb repeat the block's last row. */
static void FC_FN(build_indirection)(const fc_conv2d_params *p, const FC_T *x, const FC_T *zeros,
                                     ptrdiff_t m0, ptrdiff_t mb, int mr, const FC_T **ind)
{
    const ptrdiff_t taps = p->kh * p->kw;
    const ptrdiff_t slots = ceil_div(mb, mr) * mr;
    const FC_T **last = ind + ((mb - 1) / mr) * taps * mr + (mb - 1) % mr;
    const FC_T **dst = ind; /* slot r: ind + (r / mr) * taps * mr + r % mr, walked without divisions */
    ptrdiff_t n, oh, ow;
    pixel_at(p, m0, &n, &oh, &ow);
    for (ptrdiff_t r = 0, lane = 0; r < slots; r++) {
        if (r < mb) {
            const ptrdiff_t ih0 = oh * p->stride_h - p->pad_top, iw0 = ow * p->stride_w - p->pad_left;
            const FC_T *img = x + n * p->h * p->w * p->c;
            ptrdiff_t t = 0;
            for (ptrdiff_t i = 0; i < p->kh; i++) {
                const ptrdiff_t ih = ih0 + i * p->dil_h;
                const int row_ok = ih >= 0 && ih < p->h;
                for (ptrdiff_t j = 0; j < p->kw; j++, t++) {
                    const ptrdiff_t iw = iw0 + j * p->dil_w;
                    dst[t * mr] = (row_ok && iw >= 0 && iw < p->w) ? img + (ih * p->w + iw) * p->c : zeros;
                }
            }
            next_pixel(p, &n, &oh, &ow);
        } else { /* padding rows of the last tile: repeat row mb - 1 */
            for (ptrdiff_t t = 0; t < taps; t++) dst[t * mr] = last[t * mr];
        }
        if (++lane == mr) { lane = 0; dst += (taps - 1) * mr + 1; } else dst++;
    }
}

/* Patch rows of output pixels [m0, m0 + mb) for the group whose channels start at c0:
 * dst[r * ld + (i * KW + j) * C_g + c] = x[n, ih, iw, c0 + c], or 0 in the padding
 * (K = KH * KW * C_g <= ld). With one group and no width dilation, a kernel row that lies
 * inside the image is one contiguous run of KW * C values: short runs (first layers) are
 * copied by a plain loop, since a memcpy call per run would cost more than the copy. */
static void FC_FN(build_patch_rows)(const fc_conv2d_params *p, const FC_T *x, ptrdiff_t c0,
                                    ptrdiff_t m0, ptrdiff_t mb, FC_T *dst, ptrdiff_t ld)
{
    const ptrdiff_t cg = p->c / p->groups, rowlen = p->kw * cg;
    const int runs = p->groups == 1 && p->dil_w == 1;
    ptrdiff_t n, oh, ow;
    pixel_at(p, m0, &n, &oh, &ow);
    for (ptrdiff_t r = 0; r < mb; r++) {
        const ptrdiff_t ih0 = oh * p->stride_h - p->pad_top, iw0 = ow * p->stride_w - p->pad_left;
        const FC_T *img = x + n * p->h * p->w * p->c + c0;
        for (ptrdiff_t i = 0; i < p->kh; i++) {
            const ptrdiff_t ih = ih0 + i * p->dil_h;
            FC_T *seg = dst + r * ld + i * rowlen;
            if (ih < 0 || ih >= p->h) {
                for (ptrdiff_t q = 0; q < rowlen; q++) seg[q] = 0;
                continue;
            }
            const FC_T *src = img + ih * p->w * p->c;
            if (runs && iw0 >= 0 && iw0 + p->kw <= p->w) {
                const FC_T *run = src + iw0 * p->c;
                if (rowlen >= 32) memcpy(seg, run, (size_t)rowlen * sizeof(FC_T));
                else for (ptrdiff_t q = 0; q < rowlen; q++) seg[q] = run[q];
                continue;
            }
            for (ptrdiff_t j = 0; j < p->kw; j++) {
                const ptrdiff_t iw = iw0 + j * p->dil_w;
                if (iw >= 0 && iw < p->w)
                    for (ptrdiff_t c = 0; c < cg; c++) seg[j * cg + c] = src[iw * p->c + c];
                else
                    for (ptrdiff_t c = 0; c < cg; c++) seg[j * cg + c] = 0;
            }
        }
        next_pixel(p, &n, &oh, &ow);
    }
}

/* Slack (elements) after the zero row of a padded-row buffer: copy_run over-reads up to
 * FC_RUN_CHUNK - 1 values past a run. */
#define FC_RUN_CHUNK 8

/* Input row `row` = n * H + ih with zero borders: dst[pc * C + c] = x[n, ih, pc - pad_left, c]
 * (0 outside the image) for pc < padded_row_width. */
static void FC_FN(build_padded_row)(const fc_conv2d_params *p, const FC_T *x, ptrdiff_t row,
                                    FC_T *dst)
{
    /* Columns [first, last) lie inside the image; pad_left may be negative (adjoint passes). */
    const ptrdiff_t wp = padded_row_width(p), c = p->c;
    const ptrdiff_t first = min_pd(max_pd(p->pad_left, 0), wp);
    const ptrdiff_t last = max_pd(first, min_pd(p->pad_left + p->w, wp));
    for (ptrdiff_t e = 0; e < first * c; e++) dst[e] = 0;
    if (last > first)
        memcpy(dst + first * c, x + (row * p->w + first - p->pad_left) * c,
               (size_t)((last - first) * c) * sizeof(FC_T));
    for (ptrdiff_t e = last * c; e < wp * c; e++) dst[e] = 0;
}

/* Zero-bordered rows of x: N * H rows of padded_row_width * C values, then one zero row (what
 * kernel rows in the top/bottom padding read), then FC_RUN_CHUNK values of slack. Returns NULL
 * if out of memory; padded_rows_fill writes the image rows. */
static FC_T *FC_FN(padded_rows_alloc)(const fc_conv2d_params *p)
{
    const ptrdiff_t wpc = padded_row_width(p) * p->c;
    FC_T *xpad = (FC_T *)fc_alloc((size_t)((p->n * p->h + 1) * wpc + FC_RUN_CHUNK) * sizeof(FC_T));
    if (xpad != NULL) memset(xpad + p->n * p->h * wpc, 0, (size_t)(wpc + FC_RUN_CHUNK) * sizeof(FC_T));
    return xpad;
}

static const FC_T *FC_FN(zero_row)(const fc_conv2d_params *p, const FC_T *xpad)
{
    return xpad + p->n * p->h * padded_row_width(p) * p->c;
}

/* Every thread of the team calls it: the rows are shared out (ends with the loop's barrier). */
static void FC_FN(padded_rows_fill)(const fc_conv2d_params *p, const FC_T *x, FC_T *xpad)
{
    const ptrdiff_t wpc = padded_row_width(p) * p->c;
    FC_OMP(for schedule(static))
    for (ptrdiff_t row = 0; row < p->n * p->h; row++)
        FC_FN(build_padded_row)(p, x, row, xpad + row * wpc);
}

/* Framed images of x (see framed_rows). Every thread of the team calls it (ends with the
 * loop's barrier). */
static void FC_FN(framed_fill)(const fc_conv2d_params *p, const FC_T *x, FC_T *xf)
{
    const ptrdiff_t hf = framed_rows(p), wpc = padded_row_width(p) * p->c;
    FC_OMP(for schedule(static))
    for (ptrdiff_t row = 0; row < p->n * hf; row++) {
        const ptrdiff_t n = row / hf, ih = row % hf - p->pad_top;
        FC_T *dst = xf + row * wpc;
        if (ih >= 0 && ih < p->h) FC_FN(build_padded_row)(p, x, n * p->h + ih, dst);
        else memset(dst, 0, (size_t)wpc * sizeof(FC_T));
    }
}

/* The shared run tables (KH * mr pointers each: for kernel row i and tile row r, xf plus the
 * offset of that run from the tile's first pixel; a tile passes its first pixel's
 * framed_offset as the indirect kernel's a_offset):
 *   table rows - 1 (1 <= rows <= mr): tiles of `rows` pixels within one output row (rows past
 *     `rows` repeat the last);
 *   table mr + a - 1 (1 <= a < mr): whole tiles whose first `a` pixels end an output row and
 *     the others start the next row of the same image;
 *   table 2 * mr - 1 + a - 1: the same where the next row is the next image's first.
 * Whole tiles straddling a row (most of them when mr does not divide OW: mnist's 28-pixel rows
 * in 12-pixel tiles) then need no table of their own. */
/* Fills table t: tile row r's runs at min(r, rows - 1) pixels from the first, plus `jump` for
 * the rows from `a` on (those in the next row or image). */
static void FC_FN(framed_fill_table)(const fc_conv2d_params *p, const FC_T *xf, int mr,
                                     const FC_T **shapes, ptrdiff_t t, ptrdiff_t rows,
                                     ptrdiff_t a, ptrdiff_t jump)
{
    const ptrdiff_t kh = p->kh, step = p->stride_w * p->c;
    const ptrdiff_t row_step = p->dil_h * padded_row_width(p) * p->c;
    for (ptrdiff_t i = 0; i < kh; i++)
        for (ptrdiff_t r = 0; r < mr; r++)
            shapes[(t * kh + i) * mr + r] =
                xf + i * row_step + min_pd(r, rows - 1) * step + (r < a ? 0 : jump);
}

static void FC_FN(framed_shapes)(const fc_conv2d_params *p, const FC_T *xf, int mr, const FC_T **shapes)
{
    const ptrdiff_t step = p->stride_w * p->c, pw = padded_row_width(p) * p->c;
    /* From a row's pixel OW - a to pixel 0 of the next row (image), less the a pixels' steps:
     * positive, as the padded row holds (OW - 1) * stride_w + KW >= the skipped pixels' span.
     * A table no tile can take (one output row, one image) jumps nowhere: in-range pointers. */
    const ptrdiff_t next_row = p->out_h > 1 ? p->stride_h * pw - p->out_w * step : 0;
    const ptrdiff_t next_image =
        p->n > 1 ? (framed_rows(p) - (p->out_h - 1) * p->stride_h) * pw - p->out_w * step : 0;
    for (ptrdiff_t rows = 1; rows <= mr; rows++)
        FC_FN(framed_fill_table)(p, xf, mr, shapes, framed_table(mr, rows, mr, 0), rows, mr, 0);
    for (ptrdiff_t a = 1; a < mr; a++) {
        FC_FN(framed_fill_table)(p, xf, mr, shapes, framed_table(mr, mr, a, 0), mr, a, next_row);
        FC_FN(framed_fill_table)(p, xf, mr, shapes, framed_table(mr, mr, a, 1), mr, a, next_image);
    }
    if (p->out_w < mr) { /* (framed_tables_count) */
        const ptrdiff_t kh = p->kh, row_step = p->dil_h * pw, per_image = p->out_h * p->out_w;
        for (ptrdiff_t u = 0; u < p->out_w + mr - 1; u++) {
            /* a tile of the table's kind, in image 0 (the offsets do not depend on the image) */
            const ptrdiff_t q0 = u < p->out_w ? u : per_image - (u - p->out_w + 1);
            ptrdiff_t n = 0, oh = max_pd(q0, 0) / p->out_w, ow = max_pd(q0, 0) % p->out_w;
            const ptrdiff_t first = framed_offset(p, 0, oh, ow);
            const FC_T **table = shapes + (FC_FRAMED_TABLES(mr) + u) * kh * mr;
            for (ptrdiff_t r = 0; r < mr; r++) {
                /* (past the last image, or no such tile: a table no whole tile takes, kept in
                 * range) */
                const ptrdiff_t delta = q0 >= 0 && n < p->n ? framed_offset(p, n, oh, ow) - first : 0;
                for (ptrdiff_t i = 0; i < kh; i++) table[i * mr + r] = xf + i * row_step + delta;
                next_pixel(p, &n, &oh, &ow);
            }
        }
    }
}

/* How the indirect kernel reads a tile of a framed image: through `tab` (KH * mr pointers)
 * with a_offset `off`; `run` tiles from this one (this one included) share tab, with
 * offsets mr * stride_w * C apart: one kernel call computes them all. */
typedef struct {
    const FC_T *const *tab;
    ptrdiff_t off, run;
} FC_FN(framed_tile);

/* The tiles of output pixels [m0, m0 + mb) (tile t: pixels from m0 + t * mr). A tile within
 * one output row, or a whole one across the end of a row, takes a shared table; any other
 * (a partial tile across rows, or one spanning three rows) gets its own in own + t * KH * mr
 * (offset 0). */
static void FC_FN(framed_tiles)(const fc_conv2d_params *p, const FC_T *xf, const FC_T *const *shapes,
                                ptrdiff_t m0, ptrdiff_t mb, int mr, const FC_T **own,
                                FC_FN(framed_tile) *tiles)
{
    const ptrdiff_t kh = p->kh, row_step = p->dil_h * padded_row_width(p) * p->c;
    const ptrdiff_t tile_step = framed_tile_step(p, mr), count = ceil_div(mb, mr);
    const FC_T *const *whole = shapes + (mr - 1) * kh * mr; /* the shape of a whole tile */
    ptrdiff_t n, oh, ow;
    pixel_at(p, m0, &n, &oh, &ow);
    for (ptrdiff_t t = 0; t < count; t++) {
        const ptrdiff_t rows = min_pd(mr, mb - t * mr);
        const ptrdiff_t a = p->out_w - ow; /* pixels left in this output row */
        if (rows <= a || (rows == mr && rows - a <= p->out_w)) {
            tiles[t].tab = shapes + framed_table(mr, rows, a, oh + 1 == p->out_h) * kh * mr;
            tiles[t].off = framed_offset(p, n, oh, ow);
            if (rows <= a) {
                ow += rows - 1; /* to the tile's last pixel, then on to the next one */
            } else { /* into the next row (or image), to the tile's last pixel */
                ow = rows - a - 1;
                if (++oh == p->out_h) { oh = 0; ++n; }
            }
            next_pixel(p, &n, &oh, &ow);
            continue;
        }
        if (rows == mr && p->out_w < mr) { /* a whole tile over three rows or more */
            const ptrdiff_t left = (p->out_h - oh) * p->out_w - ow; /* pixels left in its image */
            const ptrdiff_t table = FC_FRAMED_TABLES(mr) + (left >= mr ? ow : p->out_w + left - 1);
            tiles[t].tab = shapes + table * kh * mr;
            tiles[t].off = framed_offset(p, n, oh, ow);
            const ptrdiff_t q = oh * p->out_w + ow + mr, per_image = p->out_h * p->out_w;
            n += q / per_image;
            oh = (q % per_image) / p->out_w;
            ow = q % p->out_w;
            continue;
        }
        const FC_T **dst = own + t * kh * mr;
        for (ptrdiff_t r = 0; r < rows; r++) {
            const FC_T *run = xf + framed_offset(p, n, oh, ow);
            for (ptrdiff_t i = 0; i < kh; i++) dst[i * mr + r] = run + i * row_step;
            next_pixel(p, &n, &oh, &ow);
        }
        for (ptrdiff_t i = 0; i < kh; i++) /* padding rows of the tile: repeat its last row */
            for (ptrdiff_t r = rows; r < mr; r++) dst[i * mr + r] = dst[i * mr + rows - 1];
        tiles[t].tab = dst;
        tiles[t].off = 0;
    }
    for (ptrdiff_t t = count - 1; t >= 0; t--) { /* runs of whole tiles at consecutive offsets */
        const int chained = t + 1 < count && tiles[t].tab == whole && tiles[t + 1].tab == whole &&
                            tiles[t + 1].off == tiles[t].off + tile_step;
        tiles[t].run = chained ? tiles[t + 1].run + 1 : 1;
    }
}

/* dst[0, len) = src[0, len), copying whole chunks of FC_RUN_CHUNK values (a constant-size copy
 * the compiler inlines, where a memcpy call per short run costs more than the run): writes up
 * to FC_RUN_CHUNK - 1 values past len, so runs must be written in increasing order into rows
 * with that much slack. */
static inline void FC_FN(copy_run)(FC_T *dst, const FC_T *src, ptrdiff_t len)
{
    for (ptrdiff_t q = 0; q < len; q += FC_RUN_CHUNK)
        memcpy(dst + q, src + q, FC_RUN_CHUNK * sizeof(FC_T));
}

/* Patch rows (the layout of build_patch_rows, one group, no width dilation) of output pixels
 * [m0, m0 + mb) from zero-bordered input rows: KH branch-free run copies per pixel. Row
 * stride ld >= K + FC_RUN_CHUNK - 1. With `ones_column`, column K of every row is 1 (the
 * weight gradient's GEMM then sums dy into its row K: the bias gradient). */
static void FC_FN(patch_rows_from_padded)(const fc_conv2d_params *p, const FC_T *xpad,
                                          ptrdiff_t m0, ptrdiff_t mb, FC_T *dst, ptrdiff_t ld,
                                          int ones_column)
{
    const FC_T *zero_row = FC_FN(zero_row)(p, xpad);
    const ptrdiff_t rowlen = p->kw * p->c, row_step = p->dil_h * padded_row_width(p) * p->c;
    run_walker rw = run_walker_at(p, m0);
    for (ptrdiff_t r = 0; r < mb; r++) {
        for (ptrdiff_t i = 0; i < p->kh; i++) {
            const ptrdiff_t at = run_offset(p, &rw, i, row_step);
            FC_FN(copy_run)(dst + r * ld + i * rowlen, at >= 0 ? xpad + at : zero_row, rowlen);
        }
        if (ones_column) dst[r * ld + p->kh * rowlen] = 1; /* (after the runs' slack) */
        run_walker_next(p, &rw);
    }
}

/* Add dpatch rows of output pixels [m0, m0 + mb) (one group, no width dilation) into
 * zero-bordered dx rows (layout of build_padded_row): KH run additions per pixel, in the
 * order of scatter_patches, so the sums are the same. */
static void FC_FN(scatter_patches_padded)(const fc_kernel_table *kt, const fc_conv2d_params *p,
                                          const FC_T *src, ptrdiff_t ld, ptrdiff_t m0,
                                          ptrdiff_t mb, FC_T *dxpad)
{
    const ptrdiff_t rowlen = p->kw * p->c, row_step = p->dil_h * padded_row_width(p) * p->c;
    run_walker rw = run_walker_at(p, m0);
    for (ptrdiff_t r = 0; r < mb; r++) {
        for (ptrdiff_t i = 0; i < p->kh; i++) {
            const ptrdiff_t at = run_offset(p, &rw, i, row_step);
            if (at < 0) continue; /* kernel row in the padding */
            FC_KT(kt, add_into)(dxpad + at, src + r * ld + i * rowlen, rowlen);
        }
        run_walker_next(p, &rw);
    }
}

/* dx row `row` = n * H + ih from its zero-bordered copy (columns the convolution never reads
 * get 0). */
static void FC_FN(unpad_row)(const fc_conv2d_params *p, const FC_T *src, ptrdiff_t row, FC_T *dx)
{
    /* Input columns [iw0, iw1) have a padded column (iw + pad_left in [0, wp)). */
    const ptrdiff_t wp = padded_row_width(p), c = p->c;
    const ptrdiff_t iw0 = min_pd(max_pd(-p->pad_left, 0), p->w);
    const ptrdiff_t iw1 = max_pd(iw0, min_pd(p->w, wp - p->pad_left));
    FC_T *dst = dx + row * p->w * c;
    for (ptrdiff_t e = 0; e < iw0 * c; e++) dst[e] = 0;
    if (iw1 > iw0)
        memcpy(dst + iw0 * c, src + (iw0 + p->pad_left) * c, (size_t)((iw1 - iw0) * c) * sizeof(FC_T));
    for (ptrdiff_t e = iw1 * c; e < p->w * c; e++) dst[e] = 0;
}

/* The microkernels of one GEMM: the table's wide set; its narrow set (one vector of columns,
 * more rows) when the GEMM has at most that many columns, where a wide tile would mostly
 * multiply padding; its broad set (more columns, fewer rows) when the GEMM's columns fill
 * broad panels as well as wide ones and the reduction is short (`broad_ok`: measured faster
 * for <= 128 channels, slower for 256). Every set gives the same result for each element. */
typedef struct {
    int mr, nr;
    FC_CI_CAT(FC_CI_CAT(fc_gemm, FC_SFX), fn) rowa, cola;
    FC_CI_CAT(FC_CI_CAT(fc_gemm_ind, FC_SFX), fn) ind;
} FC_FN(gemm_set);

static FC_FN(gemm_set) FC_FN(pick_gemm)(const fc_kernel_table *kt, ptrdiff_t columns, int broad_ok)
{
    FC_FN(gemm_set) set = {FC_KT(kt, mr), FC_KT(kt, nr), FC_KT(kt, gemm_rowa), FC_KT(kt, gemm_cola),
                           FC_KT(kt, gemm_ind)};
    const ptrdiff_t nr_b = FC_KT(kt, nr_b);
    if ((conv_paths & FC_PATH_NARROW) && FC_KT(kt, nr_n) < set.nr && columns <= FC_KT(kt, nr_n)) {
        FC_FN(gemm_set) narrow = {FC_KT(kt, mr_n), FC_KT(kt, nr_n), FC_KT(kt, gemm_rowa_n),
                                  FC_KT(kt, gemm_cola_n), FC_KT(kt, gemm_ind_n)};
        set = narrow;
    } else if ((conv_paths & FC_PATH_BROAD) && broad_ok && nr_b > set.nr &&
               round_up(columns, nr_b) <= round_up(columns, set.nr)) {
        FC_FN(gemm_set) broad = {FC_KT(kt, mr_b), FC_KT(kt, nr_b), FC_KT(kt, gemm_rowa_b),
                                 FC_KT(kt, gemm_cola_b), FC_KT(kt, gemm_ind_b)};
        set = broad;
    }
    return set;
}

/* dst[c * nr + j] = src[j * lds + c] for c < n, j < cols, and 0 for cols <= j < nr: a block
 * of transposed weights. A function of its own (not inlined into the parallel region) so that
 * its loop keeps its indices in registers: the inlined loop spilled them, ~3x slower (dense
 * 3136 -> 128 input gradient). Four source rows per pass: each destination row is then written
 * in runs of four. */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((noinline))
#endif
static void FC_FN(pack_transposed)(const FC_T *src, ptrdiff_t lds, ptrdiff_t cols, ptrdiff_t n,
                                   ptrdiff_t nr, FC_T *dst)
{
    ptrdiff_t j = 0;
    for (; j + 4 <= cols; j += 4) {
        const FC_T *s0 = src + j * lds, *s1 = s0 + lds, *s2 = s1 + lds, *s3 = s2 + lds;
        FC_T *d = dst + j;
        for (ptrdiff_t c = 0; c < n; c++, d += nr) {
            d[0] = s0[c];
            d[1] = s1[c];
            d[2] = s2[c];
            d[3] = s3[c];
        }
    }
    for (; j < cols; j++)
        for (ptrdiff_t c = 0; c < n; c++) dst[c * nr + j] = src[j * lds + c];
    for (; j < nr; j++)
        for (ptrdiff_t c = 0; c < n; c++) dst[c * nr + j] = 0;
}

/* Max pooling, fused into a forward pass: pooled row dst (pw_out x F values) from ph
 * consecutive output rows (row r at src + r * lds), windows of ph x pw from column 0, columns
 * [f0, f0 + cols) of each pixel. Each window's values are taken in row-major order, a later
 * one replacing the maximum when greater or NaN: the bits of the pooling kernels (first
 * maximum kept on ties, NaN propagated). With `relu`, the pooled values are rectified
 * (relu_in_place): the bits of pooling rectified values, the ReLU being monotone (+0 for
 * every non-positive maximum, NaN kept), on a quarter of the values for 2 x 2 windows. */
static void FC_FN(max_pool_rows)(const fc_kernel_table *kt, const FC_T *restrict src, ptrdiff_t lds,
                                 ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t pw_out, ptrdiff_t F,
                                 ptrdiff_t f0, ptrdiff_t cols, int relu, FC_T *restrict dst)
{
    /* the ISA's vectors (this unit's loop ran four floats at a time: a third of the 64x28x28x1
     * -> 32 forward with its pool) */
    FC_KT(kt, pool_max)(src + f0, lds, ph, pw, pw_out, F, cols, dst + f0);
    if (relu)
        for (ptrdiff_t q = 0; q < pw_out; q++) FC_FN(relu_in_place)(dst + q * F + f0, cols);
}

/* Microtiles per pixel block of a few-channel forward (M pixels, K reductions, F filters):
 * FC_BLOCK_MACS multiply-adds or more, between FC_MB_TILES and FC_MB_TILES_MAX, yet at least
 * four blocks per thread where M allows. */
static ptrdiff_t FC_FN(few_channel_tiles)(ptrdiff_t M, ptrdiff_t K, ptrdiff_t F, int mr, int num_threads)
{
    const ptrdiff_t want = ceil_div(FC_BLOCK_MACS, mr * K * F);
    const ptrdiff_t spread = ceil_div(M, 4 * (ptrdiff_t)num_threads * mr);
    return max_pd(FC_MB_TILES, min_pd(min_pd(want, FC_MB_TILES_MAX), spread));
}

/* y = conv_p(x, W) + bias as an implicit GEMM (then the activation `act` per finished block).
 * With `transposed`, `w` is the HWIO kernel of
 * the convolution whose *input gradient* p describes (stride 1): p's input is that conv's dy
 * (C = its F), p's output its dx, and p's kernel is w with the taps flipped and the two
 * channel axes swapped (the adjoint of a stride-1 convolution). With `pool` (not NULL), y is
 * the max pooling of that output (pool_window), computed a block of pool->h whole output rows
 * at a time in a scratch block that is pooled as it finishes. */
static int FC_FN(implicit_gemm_conv)(const fc_kernel_table *kt, const fc_conv2d_params *p,
                                     const FC_T *x, const FC_T *w, int transposed,
                                     const FC_T *bias, int act, const pool_window *pool, FC_T *y,
                                     int num_threads)
{
    /* broad tiles: measured faster with <= 128 channels per group, and on 1x1 / dense layers
     * of any width (64 x 3136 -> 128: 7-17%) */
    const FC_FN(gemm_set) gs = FC_FN(pick_gemm)(kt, p->f / p->groups, p->c / p->groups <= 128 || is_pointwise(p));
    const int mr = gs.mr, nr = gs.nr;
    const ptrdiff_t G = p->groups, cg = p->c / G, fg = p->f / G, F = p->f;
    const ptrdiff_t taps = p->kh * p->kw, K = taps * cg, M = p->n * p->out_h * p->out_w;
    const ptrdiff_t panels = ceil_div(fg, nr);
    const int direct = is_pointwise(p);
    /* Pixel blocks of mb_max pixels; with a pool, of the pool->h output rows of one pooled row
     * (block b: pooled row b of the (N * OH / pool->h) x (OW / pool->w) output). */
    const ptrdiff_t pool_oh = pool ? p->out_h / pool->h : 0, pool_ow = pool ? p->out_w / pool->w : 0;
    const int few_channels = !direct && cg < FC_PATCH_ROWS_MAX_CG;
    const ptrdiff_t mb_max = pool ? round_up(pool->h * p->out_w, mr)
                                  : (ptrdiff_t)mr * (few_channels ? FC_FN(few_channel_tiles)(M, K, F, mr, num_threads)
                                                                   : FC_MB_TILES);
    const ptrdiff_t mblocks = pool ? p->n * pool_oh : ceil_div(M, mb_max);
    /* A ReLU is applied by the microkernels as they store a tile's last reduction block
     * (FC_GEMM_RELU); other activations in a pass over each finished unit. A pool then takes
     * the rectified values (the bits of pooling them, see max_pool_rows). */
    const int post_act = act == FC_ACT_RELU ? FC_ACT_NONE : act;
    /* Flags of a tile's last reduction block: the ReLU, and non-temporal stores for a large
     * output written once (FC_STREAM_MIN_BYTES; not when a pass or a pool reads it back). */
    const int stream = !pool && !post_act && M * F * (ptrdiff_t)sizeof(FC_T) >= stream_min_bytes;
    const int last_flags = (act == FC_ACT_RELU ? FC_GEMM_RELU : 0) | (stream ? FC_GEMM_STREAM : 0);
    /* Dense layers (1x1 over few pixel blocks) read the full column panels of the weights in
     * place (rows F apart): packing them would cost more than the few blocks that read them
     * (64 x 400 -> 120: 0.107 -> 0.087 ms; batch 1: 0.041 -> 0.019 ms). A last, partial panel
     * is packed (zero-padded). Over many blocks the packed, contiguous panels win (strided
     * rows conflict in L1: 64x28x28x64 -> 128 forward 10.6 -> 15.0 ms in place), unless W's
     * rows are the panel itself (exactly NR filters, one group). */
    const int w_in_place = direct && !transposed && (mblocks <= FC_IN_PLACE_MAX_BLOCKS || (G == 1 && F == nr));
    /* Reduction blocks: whole taps of kcc channels (tpb taps per block); the direct path
     * blocks K = C_g the same way with a single tap. */
    const ptrdiff_t cblocks = ceil_div(cg, FC_KC_MAX), kcc = ceil_div(cg, cblocks);
    const ptrdiff_t tblocks0 = ceil_div(taps, max_pd(1, FC_KC_MAX / kcc));
    const ptrdiff_t tpb = ceil_div(taps, tblocks0), tblocks = ceil_div(taps, tpb);
    /* Few channels per group (first layers): each tap would give the indirect kernel only a
     * few multiply-adds per pointer. With one group and no width dilation, the KW taps of a
     * kernel row are one contiguous run of the framed images (framed_rows): the indirect
     * kernel then reads KH runs of KW * C values per pixel (in blocks of `rpb` kernel rows, at
     * most FC_ROW_KC_MAX values) through a table shared by the tiles within an output row, and
     * nothing is copied or built per pixel. Otherwise (groups,
     * width dilation) the block's patches are copied into contiguous rows of K values (one
     * reduction block) for the row kernel. */
    const int row_ind = few_channels && G == 1 && p->dil_w == 1 && p->kw * cg <= FC_KC_MAX;
    const int patch_rows = few_channels && !row_ind && K <= FC_KC_MAX;
    const ptrdiff_t rpb = max_pd(1, FC_ROW_KC_MAX / (p->kw * cg));
    const ptrdiff_t tloop = (direct || row_ind || patch_rows) ? 1 : tblocks; /* tap blocks */
    /* Work units: pixel blocks, each split into `splits` ranges of the G * panels column
     * panels when there are too few blocks to keep every thread busy (dense layers, small
     * batches). Every output tile is still computed by one thread in one order, so the
     * results do not depend on the split. */
    const ptrdiff_t gpanels = G * panels;
    const ptrdiff_t splits = mblocks >= 2 * (ptrdiff_t)num_threads ? 1
                             : min_pd(gpanels, ceil_div(2 * (ptrdiff_t)num_threads, mblocks));
    const ptrdiff_t units = mblocks * splits;
    if (num_threads > units) num_threads = (int)units; /* no idle threads, no idle buffers */

    FC_T *wpack = (FC_T *)fc_alloc((size_t)(G * panels * K * nr) * sizeof(FC_T));
    FC_T *zeros = NULL, *xframed = NULL;
    const FC_T **shapes = NULL;
    const ptrdiff_t tiles_max = ceil_div(mb_max, mr);
    /* Per thread (allocated by each thread in the region, see fc_thread_alloc): pooled blocks;
     * pointer tables (the indirect kernel's, or the framed tiles' rows); tiles; patch rows. */
    const ptrdiff_t yblk_n = pool ? mb_max * F : 0;
    const ptrdiff_t ind_n = row_ind ? mb_max * p->kh : (!direct && !patch_rows) ? mb_max * taps : 0;
    const ptrdiff_t ftiles_n = row_ind ? tiles_max : 0, patches_n = patch_rows ? mb_max * K : 0;
    int failed = wpack == NULL;
    if (!direct && !patch_rows && !row_ind)
        failed |= (zeros = (FC_T *)fc_alloc((size_t)p->c * sizeof(FC_T))) == NULL;
    if (row_ind) { /* framed images; shared run tables */
        const size_t framed = (size_t)(p->n * framed_rows(p) * padded_row_width(p) * p->c);
        failed |= (xframed = (FC_T *)fc_alloc(framed * sizeof(FC_T))) == NULL;
        failed |= (shapes = (const FC_T **)fc_alloc((size_t)(framed_tables_count(p, mr) * p->kh * mr) * sizeof(FC_T *))) == NULL;
    }
    if (failed) {
        fc_free(wpack); fc_free(zeros); fc_free(xframed); fc_free((void *)shapes);
        return FC_CONV_NOMEM;
    }
    if (zeros != NULL) memset(zeros, 0, (size_t)p->c * sizeof(FC_T));
    if (shapes != NULL) FC_FN(framed_shapes)(p, xframed, mr, shapes);

    fc_share unit_share;
    fc_share_init(&unit_share, units, num_threads, 1, FC_SHARE_EAGER);
    FC_OMP(parallel num_threads(num_threads))
    {
        unsigned csr = fc_denormals_off();
        /* Weights -> panels: wpack[((g * panels + pj) * K + k) * nr + j] = W[k, g, pj*nr + j]
         * (k = tap * C_g + c), W = w or its transposed adjoint. */
        if (!transposed) {
            /* by (panel, block of rows): no divisions per row */
            const ptrdiff_t kblk = 64, kblocks = ceil_div(K, kblk);
            FC_OMP(for schedule(static))
            for (ptrdiff_t u = 0; u < G * panels * kblocks; u++) {
                const ptrdiff_t gp = u / kblocks, g = gp / panels, pj = gp % panels;
                const ptrdiff_t f0 = pj * nr, cols = min_pd(nr, fg - f0);
                if (w_in_place && cols == nr) continue; /* read from w itself */
                const ptrdiff_t k0 = (u % kblocks) * kblk, k1 = min_pd(K, k0 + kblk);
                for (ptrdiff_t k = k0; k < k1; k++) {
                    FC_T *dst = wpack + (gp * K + k) * nr;
                    const FC_T *src = w + k * F + g * fg + f0;
                    for (ptrdiff_t j = 0; j < cols; j++) dst[j] = src[j];
                    for (ptrdiff_t j = cols; j < nr; j++) dst[j] = 0;
                }
            }
        } else {
            /* w is (KH, KW, fg, p->c): the flipped tap, whose filter j is our output column and
             * whose channel is our channel. One (panel, tap) block at a time, reading rows of
             * w (contiguous over the channel) and writing within the block. */
            FC_OMP(for schedule(static))
            for (ptrdiff_t u = 0; u < G * panels * taps; u++) {
                const ptrdiff_t gp = u / taps, tap = u % taps, g = gp / panels, pj = gp % panels;
                const ptrdiff_t f0 = pj * nr, cols = min_pd(nr, fg - f0);
                FC_FN(pack_transposed)(w + ((taps - 1 - tap) * fg + f0) * p->c + g * cg, p->c, cols,
                                       cg, nr, wpack + (gp * K + tap * cg) * nr);
            }
        }
        if (xframed != NULL) FC_FN(framed_fill)(p, x, xframed);
        int ready = 1; /* scratch per thread, allocated by the thread (see fc_thread_alloc) */
        const FC_T **ind_own = (const FC_T **)fc_thread_alloc((size_t)ind_n * sizeof(FC_T *), &ready);
        FC_T *patches_own = (FC_T *)fc_thread_alloc((size_t)patches_n * sizeof(FC_T), &ready);
        FC_T *yblk_own = (FC_T *)fc_thread_alloc((size_t)yblk_n * sizeof(FC_T), &ready);
        FC_FN(framed_tile) *ftiles_own =
            (FC_FN(framed_tile) *)fc_thread_alloc((size_t)ftiles_n * sizeof(*ftiles_own), &ready);
        if (fc_thread_ready(ready, &failed)) FC_SHARE_FOR(&unit_share, unit) {
            const ptrdiff_t blk = unit / splits, part = unit % splits;
            const ptrdiff_t gp0 = part * gpanels / splits, gp1 = (part + 1) * gpanels / splits;
            const ptrdiff_t m0 = pool ? pooled_row_pixel(p, pool, blk) : blk * mb_max;
            const ptrdiff_t mb = pool ? pool->h * p->out_w : min_pd(mb_max, M - m0);
            FC_T *yb = pool ? yblk_own : y + m0 * F; /* where the block's output rows go */
            if (row_ind) FC_FN(framed_tiles)(p, xframed, shapes, m0, mb, mr, ind_own, ftiles_own);
            else if (ind_own != NULL) FC_FN(build_indirection)(p, x, zeros, m0, mb, mr, ind_own);
            for (ptrdiff_t g = gp0 / panels; g * panels < gp1; g++) {
                const ptrdiff_t pj0 = max_pd(gp0 - g * panels, 0), pj1 = min_pd(gp1 - g * panels, panels);
                if (patches_own != NULL) FC_FN(build_patch_rows)(p, x, g * cg, m0, mb, patches_own, K);
                for (ptrdiff_t cb = 0; cb < cblocks; cb++) {
                    const ptrdiff_t c0 = cb * kcc, kn = min_pd(kcc, cg - c0);
                    for (ptrdiff_t tb = 0; tb < tloop; tb++) {
                        const ptrdiff_t t0 = tb * tpb, tn = min_pd(tpb, taps - t0);
                        const int first = cb == 0 && tb == 0;
                        const int last = cb == cblocks - 1 && tb == tloop - 1;
                        for (ptrdiff_t pj = pj0; pj < pj1; pj++) {
                            const ptrdiff_t f0 = g * fg + pj * nr;
                            const int cols = (int)min_pd(nr, fg - pj * nr);
                            /* B: this panel's rows in w itself (rows F apart), or packed */
                            const int b_in_place = w_in_place && cols == nr;
                            const FC_T *bp = b_in_place ? w + c0 * F + f0
                                                        : wpack + ((g * panels + pj) * K + t0 * cg + c0) * nr;
                            const ptrdiff_t ldb = b_in_place ? F : nr;
                            const FC_T *bias_p = (last && bias != NULL) ? bias + f0 : NULL;
                            const int acc_flags = (first ? 0 : FC_GEMM_ACCUMULATE) | (last ? last_flags : 0);
                            if (row_ind) { /* runs of tiles; KH runs of KW * C, rpb per call */
                                const ptrdiff_t kc = p->kw * cg, step = framed_tile_step(p, mr);
                                for (ptrdiff_t tile = 0; tile * mr < mb; tile += ftiles_own[tile].run) {
                                    const FC_FN(framed_tile) *ft = ftiles_own + tile;
                                    const int rows = (int)min_pd(mr, mb - tile * mr);
                                    for (ptrdiff_t r0 = 0; r0 < p->kh; r0 += rpb) {
                                        const ptrdiff_t rn = min_pd(rpb, p->kh - r0);
                                        gs.ind(rn, kc, ft->tab + r0 * mr, ft->off, step, ft->run,
                                               bp + r0 * kc * nr, kc * nr, yb + tile * mr * F + f0, F,
                                               rows, cols, (r0 > 0 ? FC_GEMM_ACCUMULATE : 0) |
                                               (r0 + rn == p->kh && last ? last_flags : 0),
                                               r0 + rn == p->kh ? bias_p : NULL);
                                    }
                                }
                                continue;
                            }
                            for (ptrdiff_t ir = 0, tile = 0; ir < mb; ir += mr, tile++) { /* tile = ir / mr */
                                FC_T *c = yb + ir * F + f0;
                                const int rows = (int)min_pd(mr, mb - ir);
                                if (direct)
                                    gs.rowa(kn, x + (m0 + ir) * p->c + g * cg + c0, p->c,
                                            bp, ldb, c, F, rows, cols, acc_flags, bias_p);
                                else if (patches_own != NULL) /* one block: K = taps * cg */
                                    gs.rowa(K, patches_own + ir * K, K, bp, nr, c, F, rows,
                                                         cols, acc_flags, bias_p);
                                else
                                    gs.ind(tn, kn, ind_own + (tile * taps + t0) * mr, g * cg + c0, 0, 1,
                                           bp, cg * nr, c, F, rows, cols, acc_flags, bias_p);
                            }
                        }
                    }
                }
            }
            if (post_act || pool) { /* the unit's rows, its panels' columns: one span [f0, f1) */
                const ptrdiff_t f0 = (gp0 / panels) * fg + (gp0 % panels) * nr;
                const ptrdiff_t f1 = ((gp1 - 1) / panels) * fg + min_pd(fg, ((gp1 - 1) % panels + 1) * nr);
                if (post_act) {
                    if (f0 == 0 && f1 == F) FC_FN(activate)(kt, post_act, yb, mb * F); /* contiguous rows */
                    else
                        for (ptrdiff_t r = 0; r < mb; r++) FC_FN(activate)(kt, post_act, yb + r * F + f0, f1 - f0);
                }
                if (pool)
                    FC_FN(max_pool_rows)(kt, yb, p->out_w * F, pool->h, pool->w, pool_ow, F, f0, f1 - f0, 0,
                                         y + blk * pool_ow * F);
            }
        }
        fc_free((void *)ind_own); fc_free(patches_own); fc_free(yblk_own); fc_free(ftiles_own);
        FC_OMP(barrier)
        if (stream) fc_store_fence(); /* (before the region's end: y is read after it) */
        fc_denormals_restore(csr);
    }
    fc_free(wpack);
    fc_free(zeros);
    fc_free(xframed);
    fc_free((void *)shapes);
    return failed ? FC_CONV_NOMEM : FC_CONV_OK;
}

/* Where chunk `ch` of a weight gradient sums: chunk 0 into dw and db themselves, chunk ch > 0
 * into part's slot ch - 1 (`dw_elems` weights then `nb` biases, the layout reduce_chunks
 * reads). Returns the weights' start; *cdb gets the biases' (NULL without db). */
static FC_T *FC_FN(chunk_slot)(FC_T *dw, FC_T *db, FC_T *part, ptrdiff_t ch, ptrdiff_t dw_elems,
                               ptrdiff_t nb, FC_T **cdb)
{
    FC_T *cdw = ch == 0 ? dw : part + (ch - 1) * (dw_elems + nb);
    *cdb = db == NULL ? NULL : ch == 0 ? db : cdw + dw_elems;
    return cdw;
}

/* dw += chunk partials 1..chunks-1 (each `dw_elems` weights then `nb` biases), and db likewise,
 * in chunk order for every element; called by every thread of the team, which splits the
 * elements into contiguous ranges (vectorisable; the order per element is the same for any
 * split). Ends with a barrier. */
static void FC_FN(reduce_chunks)(const FC_T *part, ptrdiff_t chunks, ptrdiff_t dw_elems, FC_T *dw,
                                 FC_T *db, ptrdiff_t nb)
{
    const ptrdiff_t stride = dw_elems + nb;
    int team = 1, me = 0;
#ifdef _OPENMP
    team = omp_get_num_threads();
    me = omp_get_thread_num();
#endif
    if (chunks > 1) {
        const ptrdiff_t e0 = stride * me / team, e1 = stride * (me + 1) / team;
        for (ptrdiff_t ch = 1; ch < chunks; ch++) {
            const FC_T *src = part + (ch - 1) * stride;
            const ptrdiff_t w1 = min_pd(e1, dw_elems);
            for (ptrdiff_t e = e0; e < w1; e++) dw[e] += src[e];
            if (db != NULL)
                for (ptrdiff_t e = max_pd(e0, dw_elems); e < e1; e++) db[e - dw_elems] += src[e];
        }
    }
    FC_OMP(barrier)
}

#include "conv2d_winograd_impl.h"
#include "conv2d_flat_impl.h"

/* y = act(conv(x, w) + bias) by the depthwise kernels or gemm_conv below: the full output. */
static int FC_FN(plain_forward)(const fc_kernel_table *kt, const fc_conv2d_params *p, const FC_T *x,
                                const FC_T *w, const FC_T *bias, int act, FC_T *y, int num_threads);

/* The pooled forward of a path that writes the whole output: into a workspace, then pooled. */
static int FC_FN(forward_then_pool)(const fc_kernel_table *kt, const fc_conv2d_params *p,
                                    const FC_T *x, const FC_T *w, const FC_T *bias, int act,
                                    const pool_window *pool, FC_T *y, int num_threads)
{
    const ptrdiff_t F = p->f, pool_oh = p->out_h / pool->h, pool_ow = p->out_w / pool->w;
    FC_T *full = (FC_T *)fc_alloc((size_t)(p->n * p->out_h * p->out_w * F) * sizeof(FC_T));
    if (full == NULL) return FC_CONV_NOMEM;
    const int status = FC_FN(plain_forward)(kt, p, x, w, bias, act, full, num_threads);
    if (status == FC_CONV_OK) {
        FC_OMP(parallel for schedule(static) num_threads(num_threads))
        for (ptrdiff_t row = 0; row < p->n * pool_oh; row++)
            FC_FN(max_pool_rows)(kt, full + pooled_row_pixel(p, pool, row) * F, p->out_w * F, pool->h, pool->w,
                                 pool_ow, F, 0, F, 0, y + row * pool_ow * F);
    }
    fc_free(full);
    return status;
}

/* Most kernel rows of the few-filter path (more: the implicit GEMM). */
#define FC_DOT_MAX_KH 32

/* One filter; or up to FC_DOT_MAX_F with at least four vectors of reduction per output, as
 * each (pixel, filter) sum ends with a reduction of its lanes that costs about three
 * instructions (64x28x28x12 -> 8, 1x1: 0.115 ms by the implicit GEMM, 0.249 here; 3x3 x 16
 * -> 8: 1.44 -> 0.74; 1x1 64 -> 4: 1.25 -> 0.74). */
static int FC_FN(dot_applies)(const fc_kernel_table *kt, const fc_conv2d_params *p)
{
    return (conv_paths & FC_PATH_DOT) && p->groups == 1 && p->dil_w == 1 && p->kh <= FC_DOT_MAX_KH &&
           (p->f == 1 || (p->f <= FC_DOT_MAX_F && p->kh * p->kw * p->c >= 4 * (ptrdiff_t)FC_KT(kt, flat_vl)));
}

/* y[q * F + f] for m pixels of one output row, the first reading input column iw, the next
 * ones `step` values further: the few-filter kernel over kernel columns [j0, j1) (inside the
 * image) of the kernel rows ki[t] whose input rows start at in_rows[t], t < runs. wv: the
 * weights as (kernel row, filter, kernel column, channel). */
static void FC_FN(dot_columns)(const fc_kernel_table *kt, ptrdiff_t runs, const FC_T *const *in_rows,
                               const ptrdiff_t *ki, const FC_T *wv, ptrdiff_t kw, ptrdiff_t C,
                               ptrdiff_t F, ptrdiff_t iw, ptrdiff_t j0, ptrdiff_t j1, ptrdiff_t step,
                               ptrdiff_t m, FC_T *y)
{
    const FC_T *src[FC_DOT_MAX_KH], *wr[FC_DOT_MAX_KH];
    for (ptrdiff_t t = 0; t < runs; t++) {
        src[t] = in_rows[t] + (iw + j0) * C;
        wr[t] = wv + (ki[t] * F * kw + j0) * C;
    }
    FC_KT(kt, dot_runs)(runs, (j1 - j0) * C, src, wr, kw * C, (int)F, step, m, y);
}

/* y = act(conv_p(x, w) + bias) for at most FC_DOT_MAX_F filters (dot_applies), `transposed`
 * as in implicit_gemm_conv: a GEMM tile would fill F of its NR columns, so the few-filter
 * kernel (conv2d_dot_impl.h) runs its lanes along the reduction instead, over the kernel
 * rows inside the image: for the pixels whose KW input columns all lie in the image, runs of
 * KW * C values (one call per output row); for each border pixel, the shorter runs of its
 * columns inside the image. */
static int FC_FN(dot_conv)(const fc_kernel_table *kt, const fc_conv2d_params *p, const FC_T *x,
                           const FC_T *w, int transposed, const FC_T *bias, int act, FC_T *y,
                           int num_threads)
{
    const ptrdiff_t C = p->c, F = p->f, kh = p->kh, kw = p->kw, rows = p->n * p->out_h;
    const ptrdiff_t sw = p->stride_w, pl = p->pad_left, OW = p->out_w;
    /* wv[((i * F + f) * kw + j) * C + c]: W[i, j, c, f] (HWIO), or for the adjoint the
     * layer's w[KH-1-i, KW-1-j, f, c] (its channels are our filters). One filter, not
     * transposed: HWIO is that order already. */
    FC_T *packed = NULL;
    if (transposed || F > 1) {
        packed = (FC_T *)fc_alloc((size_t)(kh * kw * C * F) * sizeof(FC_T));
        if (packed == NULL) return FC_CONV_NOMEM;
        for (ptrdiff_t i = 0; i < kh; i++)
            for (ptrdiff_t f = 0; f < F; f++)
                for (ptrdiff_t j = 0; j < kw; j++) {
                    FC_T *dst = packed + ((i * F + f) * kw + j) * C;
                    if (transposed) {
                        const FC_T *src = w + (((kh - 1 - i) * kw + kw - 1 - j) * F + f) * C;
                        for (ptrdiff_t c = 0; c < C; c++) dst[c] = src[c];
                    } else {
                        const FC_T *src = w + (i * kw + j) * C * F + f;
                        for (ptrdiff_t c = 0; c < C; c++) dst[c] = src[c * F];
                    }
                }
    }
    const FC_T *wv = packed != NULL ? packed : w;
    /* Output columns [lo, hi) read only input columns inside the image. */
    const ptrdiff_t lo = min_pd(ceil_div(max_pd(pl, 0), sw), OW), span = p->w + pl - kw;
    const ptrdiff_t hi = span < 0 ? lo : max_pd(lo, min_pd(OW, span / sw + 1));
    /* The others (border pixels) run one at a time, with shorter runs and F lane sums each.
     * Where they are most of a row and F > 1 (LeNet-5 C3's adjoint: 8 of 14 pixels), each
     * thread copies the row's kernel rows into zero-bordered rows (pad_l + W + pad_r pixels)
     * instead, and the whole row runs in blocks (6 -> 16 5x5, dx, 2 threads: 0.209 -> 0.181
     * ms). */
    const ptrdiff_t pad_l = max_pd(pl, 0), pad_r = max_pd(0, (OW - 1) * sw - pl + kw - p->w);
    const ptrdiff_t brow = (pad_l + p->w + pad_r) * C; /* values per bordered row */
    const int bordered = F > 1 && 2 * (OW - (hi - lo)) > OW;
    /* A thread's bordered rows: input row ih in slot ih % slots (the rows of an output row
     * fall in distinct slots), kept while the next output rows read it. */
    const ptrdiff_t slots = (kh - 1) * p->dil_h + 1;
    if (num_threads > rows) num_threads = (int)rows;
    int failed = 0;
    fc_share row_share;
    fc_share_init(&row_share, rows, num_threads, 4, FC_SHARE_EAGER);
    FC_OMP(parallel num_threads(num_threads))
    {
        unsigned csr = fc_denormals_off();
        int ready = 1; /* (scratch allocated by the thread: see fc_thread_alloc) */
        FC_T *rows_own = bordered ? (FC_T *)fc_thread_alloc((size_t)(slots * brow) * sizeof(FC_T), &ready) : NULL;
        ptrdiff_t *held = bordered ? (ptrdiff_t *)fc_thread_alloc((size_t)slots * sizeof(ptrdiff_t), &ready) : NULL;
        if (rows_own != NULL) memset(rows_own, 0, (size_t)(slots * brow) * sizeof(FC_T)); /* the borders */
        if (held != NULL)
            for (ptrdiff_t r = 0; r < slots; r++) held[r] = -1;
        if (fc_thread_ready(ready, &failed)) FC_SHARE_FOR(&row_share, row) {
            const ptrdiff_t n = row / p->out_h, oh = row % p->out_h;
            const FC_T *in_rows[FC_DOT_MAX_KH];
            ptrdiff_t runs = 0, ki[FC_DOT_MAX_KH];
            for (ptrdiff_t i = 0; i < kh; i++) { /* kernel rows inside the image */
                const ptrdiff_t ih = oh * p->stride_h - p->pad_top + i * p->dil_h;
                if (ih < 0 || ih >= p->h) continue;
                in_rows[runs] = x + (n * p->h + ih) * p->w * C;
                if (bordered) {
                    const ptrdiff_t slot = ih % slots;
                    FC_T *in = rows_own + slot * brow + pad_l * C;
                    if (held[slot] != n * p->h + ih) {
                        memcpy(in, in_rows[runs], (size_t)(p->w * C) * sizeof(FC_T));
                        held[slot] = n * p->h + ih;
                    }
                    in_rows[runs] = in;
                }
                ki[runs++] = i;
            }
            FC_T *yr = y + row * OW * F;
            if (bordered) {
                FC_FN(dot_columns)(kt, runs, in_rows, ki, wv, kw, C, F, -pl, 0, kw, sw * C, OW, yr);
            } else {
                for (ptrdiff_t ow = 0; ow < OW; ow++) {
                    if (ow == lo && hi > lo) ow = hi; /* past the interior pixels */
                    if (ow == OW) break;
                    /* kernel columns [j0, j1) inside the image */
                    const ptrdiff_t iw0 = ow * sw - pl, j0 = max_pd(0, -iw0), j1 = min_pd(kw, p->w - iw0);
                    if (j1 <= j0) { /* every tap in the padding */
                        for (ptrdiff_t f = 0; f < F; f++) yr[ow * F + f] = 0;
                        continue;
                    }
                    FC_FN(dot_columns)(kt, runs, in_rows, ki, wv, kw, C, F, iw0, j0, j1, 0, 1, yr + ow * F);
                }
                if (hi > lo)
                    FC_FN(dot_columns)(kt, runs, in_rows, ki, wv, kw, C, F, lo * sw - pl, 0, kw, sw * C,
                                       hi - lo, yr + lo * F);
            }
            if (bias != NULL)
                for (ptrdiff_t ow = 0; ow < OW; ow++)
                    for (ptrdiff_t f = 0; f < F; f++) yr[ow * F + f] += bias[f];
            if (act) FC_FN(activate)(kt, act, yr, OW * F);
        }
        fc_free(rows_own); fc_free(held);
        FC_OMP(barrier)
        fc_denormals_restore(csr);
    }
    fc_free(packed);
    return failed ? FC_CONV_NOMEM : FC_CONV_OK;
}

/* A convolution without groups' special paths: Winograd, flat rows or the few-filter path
 * where they apply (and are allowed), else the implicit GEMM. Arguments as
 * implicit_gemm_conv; a pool the chosen path cannot fuse (flat rows, few filters; Winograd
 * tiles the window does not divide) is applied after. */
static int FC_FN(gemm_conv)(const fc_kernel_table *kt, const fc_conv2d_params *p, const FC_T *x,
                            const FC_T *w, int transposed, const FC_T *bias, int act,
                            const pool_window *pool, FC_T *y, int num_threads)
{
    flat_geom fg;
    if ((conv_paths & FC_PATH_WINOGRAD) && FC_FN(winograd_applies)(p)) {
        const int m = FC_FN(winograd_tile)(p, 0);
        if (pool == NULL || (m % pool->h == 0 && m % pool->w == 0))
            return FC_FN(winograd_conv)(kt, p, x, w, transposed, bias, act, pool, y, num_threads);
    } else if (FC_FN(flat_plan_for)(kt, p, &fg)) {
        if (pool == NULL) return FC_FN(flat_conv)(kt, p, &fg, x, w, transposed, bias, act, y, num_threads);
    } else if (FC_FN(dot_applies)(kt, p)) {
        if (pool == NULL) return FC_FN(dot_conv)(kt, p, x, w, transposed, bias, act, y, num_threads);
    } else {
        return FC_FN(implicit_gemm_conv)(kt, p, x, w, transposed, bias, act, pool, y, num_threads);
    }
    return FC_FN(forward_then_pool)(kt, p, x, w, bias, act, pool, y, num_threads);
}

static int FC_FN(plain_forward)(const fc_kernel_table *kt, const fc_conv2d_params *p, const FC_T *x,
                                const FC_T *w, const FC_T *bias, int act, FC_T *y, int num_threads)
{
    if (is_depthwise(p)) {
        const int status = FC_FN(depthwise_forward)(kt, p, x, w, bias, y, num_threads);
        if (status == FC_CONV_OK && act) FC_FN(activate)(kt, act, y, p->n * p->out_h * p->out_w * p->f);
        return status;
    }
    return FC_FN(gemm_conv)(kt, p, x, w, 0, bias, act, NULL, y, num_threads);
}

int FC_FN(fc_conv2d_forward)(const fc_conv2d_params *p, const FC_T *x, const FC_T *w,
                             const FC_T *bias, int act, FC_T *y, int num_threads)
{
    return FC_FN(plain_forward)(fc_get_kernels(), p, x, w, bias, act, y, num_threads < 1 ? 1 : num_threads);
}

int FC_FN(fc_conv2d_forward_max_pool)(const fc_conv2d_params *p, const FC_T *x, const FC_T *w,
                                      const FC_T *bias, int act, ptrdiff_t pool_h, ptrdiff_t pool_w,
                                      FC_T *y, int num_threads)
{
    const fc_kernel_table *kt = fc_get_kernels();
    const pool_window pool = {pool_h, pool_w};
    if (num_threads < 1) num_threads = 1;
    if (pool_h <= 0) return FC_FN(plain_forward)(kt, p, x, w, bias, act, y, num_threads);
    if (p->n < 1 || pool_w < 1 || p->out_h / pool_h < 1 || p->out_w / pool_w < 1)
        return FC_CONV_OK; /* an empty pooled output: nothing to write */
    if (is_depthwise(p)) return FC_FN(forward_then_pool)(kt, p, x, w, bias, act, &pool, y, num_threads);
    return FC_FN(gemm_conv)(kt, p, x, w, 0, bias, act, &pool, y, num_threads);
}

/* ------------------------------------------------------------------------------------ */
/* Backward                                                                             */
/* ------------------------------------------------------------------------------------ */

/* Weight (and bias) gradient of a depthwise convolution, chunked as described on top. */
static int FC_FN(depthwise_backward)(const fc_kernel_table *kt, const fc_conv2d_params *p,
                                     const FC_T *dy, const FC_T *x, const FC_T *w, FC_T *dx,
                                     FC_T *dw, FC_T *db, int num_threads)
{
    const ptrdiff_t M = p->n * p->out_h * p->out_w, F = p->f;
    const ptrdiff_t dw_elems = p->kh * p->kw * F;
    const ptrdiff_t chunks = dw == NULL ? 0 : weight_grad_chunks(M, dw_elems + F, sizeof(FC_T));
    (void)num_threads; /* unused without OpenMP */
    /* Chunk 0 sums straight into dw / db; chunks 1.. into this workspace. */
    FC_T *part = NULL;
    if (chunks > 1) {
        part = (FC_T *)fc_alloc((size_t)((chunks - 1) * (dw_elems + F)) * sizeof(FC_T));
        if (part == NULL) return FC_CONV_NOMEM;
    }
    fc_share ch_share;
    fc_share_init(&ch_share, chunks, num_threads, 1, FC_SHARE_EAGER);
    fc_share row_share; /* (dx's rows) */
    fc_share_init(&row_share, p->n * p->h, num_threads, 8, FC_SHARE_EAGER);
    FC_OMP(parallel num_threads(num_threads))
    {
        unsigned csr = fc_denormals_off();
        FC_SHARE_FOR(&ch_share, ch) {
            FC_T *cdb, *cdw = FC_FN(chunk_slot)(dw, db, part, ch, dw_elems, F, &cdb);
            memset(cdw, 0, (size_t)dw_elems * sizeof(FC_T));
            if (cdb != NULL) memset(cdb, 0, (size_t)F * sizeof(FC_T));
            FC_KT(kt, dw_backward_weights)(p, x, dy, cdw, cdb, ch * M / chunks, (ch + 1) * M / chunks);
        }
        if (dx != NULL) FC_SHARE_FOR(&row_share, row) FC_KT(kt, dw_backward_data)(p, dy, w, dx, row);
        FC_OMP(barrier)
        FC_FN(reduce_chunks)(part, chunks, dw_elems, dw, db, F);
        fc_denormals_restore(csr);
    }
    fc_free(part);
    return FC_CONV_OK;
}

/* Whether the one-channel weight gradient (c1_weight_grad) computes p's: one input channel,
 * one group, stride 1, no dilation, and whole vectors of filters. */
static int FC_FN(c1_dw_applies)(const fc_kernel_table *kt, const fc_conv2d_params *p)
{
    return p->c == 1 && p->groups == 1 && p->stride_h == 1 && p->stride_w == 1 && p->dil_h == 1 &&
           p->dil_w == 1 && p->f % FC_KT(kt, flat_vl) == 0 && p->n > 0 && p->out_h > 0 && p->out_w > 0;
}

/* Weight (and bias) gradient of such a layer: fixed chunks of output rows (a function of the
 * shape only), each summed by the ISA's c1_dw kernel (the bias sums too) over the framed
 * images (framed_fill) into its own slot, then added in chunk order (reduce_chunks): the same bits for any thread
 * count. */
static int FC_FN(c1_weight_grad)(const fc_kernel_table *kt, const fc_conv2d_params *p,
                                 const FC_T *dy, const FC_T *x, FC_T *dw, FC_T *db, int num_threads)
{
    const ptrdiff_t F = p->f, ow_n = p->out_w, rows = p->n * p->out_h;
    const ptrdiff_t dw_elems = p->kh * p->kw * F, stride = dw_elems + F;
    const ptrdiff_t chunks = min_pd(rows, weight_grad_chunks(rows * ow_n, stride, sizeof(FC_T)));
    const ptrdiff_t hf = framed_rows(p), wpc = padded_row_width(p);
    FC_T *xf = (FC_T *)fc_alloc((size_t)(p->n * hf * wpc) * sizeof(FC_T));
    FC_T *part = chunks > 1 ? (FC_T *)fc_alloc((size_t)((chunks - 1) * stride) * sizeof(FC_T)) : NULL;
    if (xf == NULL || (chunks > 1 && part == NULL)) {
        fc_free(xf);
        fc_free(part);
        return FC_CONV_NOMEM;
    }
    if (num_threads > chunks) num_threads = (int)chunks;
    fc_share ch_share;
    fc_share_init(&ch_share, chunks, num_threads, 1, FC_SHARE_EAGER);
    FC_OMP(parallel num_threads(num_threads))
    {
        unsigned csr = fc_denormals_off();
        FC_FN(framed_fill)(p, x, xf);
        FC_SHARE_FOR(&ch_share, ch) {
            const ptrdiff_t r0 = ch * rows / chunks, r1 = (ch + 1) * rows / chunks;
            FC_T *cdb, *cdw = FC_FN(chunk_slot)(dw, db, part, ch, dw_elems, F, &cdb);
            FC_KT(kt, c1_dw)(xf, wpc, hf, p->out_h, ow_n, p->kh, p->kw, dy, F, r0, r1, cdw, cdb);
        }
        FC_OMP(barrier)
        FC_FN(reduce_chunks)(part, chunks, dw_elems, dw, db, F);
        fc_denormals_restore(csr);
    }
    fc_free(xf);
    fc_free(part);
    return FC_CONV_OK;
}

int FC_FN(fc_conv2d_backward)(const fc_conv2d_params *p, const FC_T *dy, const FC_T *x,
                              const FC_T *w, FC_T *dx, FC_T *dw, FC_T *db, int num_threads)
{
    const fc_kernel_table *kt = fc_get_kernels();
    if (num_threads < 1) num_threads = 1;
    if (dw == NULL) db = NULL; /* the bias gradient is summed with the kernel gradient */
    if (dw == NULL && dx == NULL) return FC_CONV_OK;
    if (is_depthwise(p)) return FC_FN(depthwise_backward)(kt, p, dy, x, w, dx, dw, db, num_threads);
    if (dw != NULL && (conv_paths & FC_PATH_WINOGRAD) && FC_FN(winograd_applies)(p)) {
        const int status = FC_FN(winograd_weight_grad)(kt, p, dy, x, dw, db, num_threads);
        if (status != FC_CONV_OK || dx == NULL) return status;
        dw = NULL; /* the input gradient below */
        db = NULL;
    }
    /* (the one-channel weight gradient shares the flat rows' switch: FC_PATH_FLAT off, the GEMM) */
    if (dw != NULL && (conv_paths & FC_PATH_FLAT) && FC_FN(c1_dw_applies)(kt, p)) {
        const int status = FC_FN(c1_weight_grad)(kt, p, dy, x, dw, db, num_threads);
        if (status != FC_CONV_OK || dx == NULL) return status;
        dw = NULL;
        db = NULL;
    }
    flat_geom flat;
    if (dw != NULL && FC_FN(flat_plan_for)(kt, p, &flat)) {
        const int status = FC_FN(flat_weight_grad)(kt, p, &flat, dy, x, dw, db, num_threads);
        if (status != FC_CONV_OK || dx == NULL) return status;
        dw = NULL;
        db = NULL;
    }
    const fc_conv2d_params adj = adjoint_params(p);

    /* mr x nr: the wide kernels (input gradient, dW^T); ws: the K x F weight-gradient GEMM. */
    const int mr = FC_KT(kt, mr), nr = FC_KT(kt, nr);
    const FC_FN(gemm_set) ws = FC_FN(pick_gemm)(kt, p->f / p->groups, is_pointwise(p));
    const ptrdiff_t G = p->groups, cg = p->c / G, fg = p->f / G, F = p->f;
    const ptrdiff_t K = p->kh * p->kw * cg, M = p->n * p->out_h * p->out_w;
    const ptrdiff_t dw_elems = K * F;
    /* Input gradient: stride 1 -> the adjoint convolution, an implicit GEMM of its own (run
     * after this function's parallel region) whose output channels are our C_g; larger
     * strides, or too few channels per group to fill half a microtile row (unless the flat
     * rows or the few-filter kernel take the adjoint) -> dy @ W^T and col2im here. */
    const int stride1 = p->stride_h == 1 && p->stride_w == 1;
    /* (the few-filter kernel takes an adjoint of several channels unless the scatter's GEMM
     * runs well, over 64 or more filters, while each dy vector feeds few multiply-adds there:
     * 64x32x32x3 -> 64 3x3, dx: 1.47 ms scattered, 1.62 by the kernel; 6 -> 64 5x5: 1.40, 1.11;
     * 6 -> 16 5x5 (LeNet-5 C3): 0.223, 0.202) */
    const int adj_dot = FC_FN(dot_applies)(kt, &adj) &&
                        (cg == 1 || fg < 64 || p->kh * p->kw * cg >= 64);
    const int dx_scatter = dx != NULL && (!stride1 || (2 * cg < nr && !FC_FN(flat_plan_for)(kt, &adj, &flat) &&
                                                       !adj_dot));

    /* --- weight gradient workspaces --- */
    const ptrdiff_t chunks = dw == NULL ? 0 : weight_grad_chunks(M, dw_elems + F, sizeof(FC_T));
    const ptrdiff_t fpanels = ceil_div(fg, ws.nr);
    const ptrdiff_t wb = FC_WB_PIXELS;
    /* Patch columns per pass: keep the patch buffer of a sub-block around 256 KiB. */
    /* (Few-channel layers take their whole patch rows in one pass up to 1024 columns: they
     * are copied from zero-bordered input rows, far cheaper than column ranges.) */
    const int few_channels = G == 1 && p->dil_w == 1 && cg < FC_PATCH_ROWS_MAX_CG && K <= 1024;
    const ptrdiff_t kcw = few_channels ? round_up(K, ws.mr)
        : min_pd(round_up(K, ws.mr), max_pd(ws.mr, (262144 / (ptrdiff_t)sizeof(FC_T) / wb) / ws.mr * ws.mr));
    const ptrdiff_t kwblocks = ceil_div(K, kcw);
    const ptrdiff_t ldw = kcw + FC_MAX_MR; /* >= kcw + mr - 1: gemm_cola reads whole microtiles */
    /* dy's full filter panels read in place (rows F apart) when at most two microtile rows
     * of patch columns read each: the copy then costs about as much as the GEMM (64x28x28x1
     * -> 32, dW: 0.73 -> 0.59 ms). With more, the packed contiguous panels win (11x11x3 -> 64
     * stride 4: 16.7 -> 19.5 ms in place; 1x1 64 -> 128: 15.1 -> 17.5 ms). With exactly NR
     * filters and one group, the rows of dy are the panel itself: always in place. */
    const int dy_in_place = K <= 2 * ws.mr || (G == 1 && F == ws.nr);
    /* --- input gradient workspaces --- */
    const ptrdiff_t kpanels = ceil_div(K, nr);
    const ptrdiff_t fblocks = ceil_div(fg, FC_KC_MAX), fc = ceil_div(fg, fblocks);
    const ptrdiff_t mb_max = (ptrdiff_t)mr * FC_MB_TILES;
    const ptrdiff_t ldd = round_up(K, nr) + 16;

    /* Few channels, one group, no width dilation, one patch block: patch rows are copied
     * from zero-bordered input rows (as in the forward's row-indirect path). */
    const int padded_rows = dw != NULL && few_channels;
    const ptrdiff_t wpc = padded_row_width(p) * p->c;
    /* Microtile rows x columns of dW: K x F as a rule; with few filters (e.g. 6) most of an
     * NR-wide column panel would be padding, so when patch rows fit one panel compute
     * dW^T = dy^T @ patches instead (rows: filters read straight from dy; columns: the patch
     * row itself as the packed panel) if that wastes fewer lanes. Same sums in the same order
     * either way, so the results are identical. */
    const double lanes_kf = (double)K / (double)round_up(K, ws.mr) * (double)fg / (double)round_up(fg, ws.nr);
    const double lanes_fk = (double)F / (double)round_up(F, mr) * (double)K / (double)nr;
    const int dw_transposed = padded_rows && K + FC_RUN_CHUNK - 1 <= nr && lanes_fk > lanes_kf;
    const ptrdiff_t frows = round_up(F, mr);
    /* The col2im scatter of such layers adds runs into zero-bordered dx rows. */
    const int scatter_padded = dx_scatter && G == 1 && p->dil_w == 1 && cg < FC_PATCH_ROWS_MAX_CG;
    /* Bias gradient from the weight-gradient GEMM: patch rows built per pixel (one block of
     * whole rows) with a spare microtile row past K take a constant-1 column K, whose row of
     * the GEMM's result is the sum of dy (a second pass over dy summing it cost ~20% of
     * 64x28x28x1 -> 32's weight gradient). Row K then lands just after the chunk's dW, so
     * every chunk, the first too, sums into a [dW | db] scratch block (part[ch]), and the
     * first is copied to dw / db before the others are added. */
    const int db_in_gemm = padded_rows && !dw_transposed && db != NULL && kwblocks == 1 &&
                           K % ws.mr != 0 && K + 1 <= kcw;
    FC_T *part = NULL, *wt = NULL, *xpad = NULL, *dxpad = NULL;
    int failed = 0;
    const ptrdiff_t part_chunks = db_in_gemm ? chunks : chunks - 1; /* scratch chunk blocks */
    if (part_chunks > 0) failed |= (part = (FC_T *)fc_alloc((size_t)(part_chunks * (dw_elems + F)) * sizeof(FC_T))) == NULL;
    /* Patch, dy and col2im buffers per thread (each thread allocates its own in the region,
     * see fc_thread_alloc), for a team no larger than the work. */
    const ptrdiff_t band_rows = scatter_band_rows(p, mb_max);
    const ptrdiff_t bands = ceil_div(p->out_h, band_rows);
    /* Weight-gradient units: the chunks, each split into `kparts` ranges of the patch-column
     * blocks when there are fewer chunks than threads (dense layers, small batches). A unit
     * owns whole rows of its chunk's dW, so the split does not change any sum. */
    const ptrdiff_t kparts = chunks == 0 || chunks >= num_threads ? 1 : min_pd(kwblocks, ceil_div(num_threads, chunks));
    const ptrdiff_t wunits = chunks * kparts;
    const ptrdiff_t units = max_pd(wunits, dx_scatter ? p->n * ((bands + 1) / 2) : 1);
    const int adjoint_threads = num_threads;
    if (num_threads > units) num_threads = (int)units;
    const ptrdiff_t pstride = wb * max_pd(ldw, nr); /* patch buffer per thread */
    const ptrdiff_t ystride = dw_transposed ? frows * nr + wb * F + mr : fpanels * wb * ws.nr;
    if (padded_rows)
        failed |= (xpad = FC_FN(padded_rows_alloc)(p)) == NULL;
    if (dx_scatter)
        failed |= (wt = (FC_T *)fc_alloc((size_t)(G * kpanels * fg * nr) * sizeof(FC_T))) == NULL;
    if (scatter_padded)
        failed |= (dxpad = (FC_T *)fc_alloc((size_t)(p->n * p->h * wpc) * sizeof(FC_T))) == NULL;
    if (failed) {
        fc_free(part); fc_free(wt); fc_free(xpad); fc_free(dxpad);
        return FC_CONV_NOMEM;
    }

    fc_share wu_share;
    fc_share_init(&wu_share, wunits, num_threads, 1, FC_SHARE_EAGER);
    fc_share q_share[2]; /* the scatter's two phases: even bands, then odd ones */
    for (int phase = 0; phase < 2; phase++)
        fc_share_init(&q_share[phase], p->n * ((bands + 1 - phase) / 2), num_threads, 1, FC_SHARE_EAGER);
    FC_OMP(parallel num_threads(num_threads))
    {
        unsigned csr = fc_denormals_off();
        if (xpad != NULL) FC_FN(padded_rows_fill)(p, x, xpad);
        /* a unit runs start to end on one thread: buffers per thread, allocated by the thread
         * (see fc_thread_alloc) */
        int ready = 1;
        FC_T *p_own = (FC_T *)fc_thread_alloc((size_t)pstride * sizeof(FC_T), &ready);
        FC_T *y_own = (FC_T *)fc_thread_alloc((size_t)ystride * sizeof(FC_T), &ready);
        FC_T *d_own = dx_scatter ? (FC_T *)fc_thread_alloc((size_t)(mb_max * ldd) * sizeof(FC_T), &ready)
                                 : NULL;
        ready = fc_thread_ready(ready, &failed);

        /* ---- dW, db: chunk ch sums pixels [ch*M/chunks, (ch+1)*M/chunks) ---- */
        if (ready) FC_SHARE_FOR(&wu_share, wu) {
            const ptrdiff_t ch = wu / kparts, kp = wu % kparts;
            const ptrdiff_t kb0 = kp * kwblocks / kparts, kb1 = (kp + 1) * kwblocks / kparts;
            FC_T *cdb, *cdw = db_in_gemm ? part + ch * (dw_elems + F)
                                         : FC_FN(chunk_slot)(dw, db, part, ch, dw_elems, F, &cdb);
            /* the bias gradient belongs to the chunk's first unit (summed here unless the
             * GEMM sums it) */
            if (kp > 0 || db_in_gemm) cdb = NULL;
            const ptrdiff_t c0 = ch * M / chunks, c1 = (ch + 1) * M / chunks;
            if (cdb != NULL) memset(cdb, 0, (size_t)F * sizeof(FC_T));
            for (ptrdiff_t m0 = c0; m0 < c1; m0 += wb) {
                const ptrdiff_t mb = min_pd(wb, c1 - m0);
                const int accumulate = m0 > c0;
                if (cdb != NULL) FC_KT(kt, add_rows)(cdb, dy + m0 * F, mb, F);
                if (dw_transposed) {
                    /* y_own: dW^T accumulators (frows x nr), then this block's dy rows with
                     * mr values of slack (gemm_cola reads whole microtile columns). */
                    FC_T *dwt = y_own, *dyb = y_own + frows * nr;
                    memcpy(dyb, dy + m0 * F, (size_t)(mb * F) * sizeof(FC_T));
                    for (ptrdiff_t e = mb * F; e < mb * F + mr; e++) dyb[e] = 0;
                    FC_FN(patch_rows_from_padded)(p, xpad, m0, mb, p_own, nr, 0);
                    for (ptrdiff_t f0 = 0; f0 < F; f0 += mr)
                        FC_KT(kt, gemm_cola)(mb, dyb + f0, F, p_own, nr, dwt + f0 * nr, nr,
                                             (int)min_pd(mr, F - f0), (int)K, accumulate, NULL);
                    continue;
                }
                for (ptrdiff_t g = 0; g < G; g++) {
                    /* dy rows of this group -> panels y_own[pj][r][nr] (zero-padded); with
                     * few patch columns (dy_in_place) full panels are read in place instead. */
                    for (ptrdiff_t pj = 0; pj < fpanels; pj++) {
                        const ptrdiff_t cols = min_pd(ws.nr, fg - pj * ws.nr);
                        if (dy_in_place && cols == ws.nr) continue;
                        for (ptrdiff_t r = 0; r < mb; r++) {
                            FC_T *dst = y_own + (pj * wb + r) * ws.nr;
                            const FC_T *src = dy + (m0 + r) * F + g * fg + pj * ws.nr;
                            for (ptrdiff_t j = 0; j < cols; j++) dst[j] = src[j];
                            for (ptrdiff_t j = cols; j < ws.nr; j++) dst[j] = 0;
                        }
                    }
                    for (ptrdiff_t kb = kb0; kb < kb1; kb++) {
                        const ptrdiff_t k0 = kb * kcw, kn = min_pd(kcw, K - k0);
                        if (xpad != NULL)
                            FC_FN(patch_rows_from_padded)(p, xpad, m0, mb, p_own, ldw, db_in_gemm);
                        else if (kwblocks == 1) /* whole patch rows: the cheaper copy */
                            FC_FN(build_patch_rows)(p, x, g * cg, m0, mb, p_own, ldw);
                        else
                            FC_FN(pack_patches)(p, x, g, m0, mb, k0, kn, p_own, ldw);
                        const ptrdiff_t krows = kn + db_in_gemm; /* (row K: the bias sums) */
                        for (ptrdiff_t kt0 = 0; kt0 < krows; kt0 += ws.mr) {
                            for (ptrdiff_t pj = 0; pj < fpanels; pj++) {
                                const int cols = (int)min_pd(ws.nr, fg - pj * ws.nr);
                                const int in_place = dy_in_place && cols == ws.nr;
                                ws.cola(mb, p_own + kt0, ldw,
                                        in_place ? dy + m0 * F + g * fg + pj * ws.nr : y_own + pj * wb * ws.nr,
                                        in_place ? F : ws.nr, cdw + (k0 + kt0) * F + g * fg + pj * ws.nr,
                                        F, (int)min_pd(ws.mr, krows - kt0), cols, accumulate, NULL);
                            }
                        }
                    }
                }
            }
            if (dw_transposed) /* dW[k, f] = dW^T[f, k] */
                for (ptrdiff_t k = 0; k < K; k++)
                    for (ptrdiff_t f = 0; f < F; f++) cdw[k * F + f] = y_own[f * nr + k];
        }
        FC_OMP(barrier)
        if (db_in_gemm && chunks > 0) { /* the first chunk's [dW | db] -> dw, db */
            FC_OMP(for schedule(static))
            for (ptrdiff_t e = 0; e < dw_elems + F; e++) {
                if (e < dw_elems) dw[e] = part[e];
                else db[e - dw_elems] = part[e];
            }
        }
        FC_FN(reduce_chunks)(db_in_gemm ? part + dw_elems + F : part, chunks, dw_elems, dw, db, F);

        if (dx_scatter) {
            /* W^T -> panels over K: wt[((g * kpanels + pk) * fg + f) * nr + j] = w[pk*nr + j, g, f]. */
            FC_OMP(for schedule(static))
            for (ptrdiff_t row = 0; row < G * kpanels * fg; row++) {
                const ptrdiff_t f = row % fg, gp = row / fg, g = gp / kpanels, pk = gp % kpanels;
                const ptrdiff_t k0 = pk * nr, cols = min_pd(nr, K - k0);
                FC_T *dst = wt + row * nr;
                for (ptrdiff_t j = 0; j < cols; j++) dst[j] = w[(k0 + j) * F + g * fg + f];
                for (ptrdiff_t j = cols; j < nr; j++) dst[j] = 0;
            }
            {
                FC_T *dsum = dxpad != NULL ? dxpad : dx; /* where the scatter adds */
                const ptrdiff_t total = dxpad != NULL ? p->n * p->h * wpc : p->n * p->h * p->w * p->c;
                FC_OMP(for schedule(static))
                for (ptrdiff_t e = 0; e < total; e++) dsum[e] = 0;
                for (int phase = 0; phase < 2; phase++) {
                    const ptrdiff_t per_image = (bands + 1 - phase) / 2;
                    if (ready) FC_SHARE_FOR(&q_share[phase], q) {
                        const ptrdiff_t n = q / per_image, band = 2 * (q % per_image) + phase;
                        const ptrdiff_t oh0 = band * band_rows, oh1 = min_pd(p->out_h, oh0 + band_rows);
                        const ptrdiff_t b0 = (n * p->out_h + oh0) * p->out_w, b1 = (n * p->out_h + oh1) * p->out_w;
                        for (ptrdiff_t m0 = b0; m0 < b1; m0 += mb_max) {
                            const ptrdiff_t mb = min_pd(mb_max, b1 - m0);
                            for (ptrdiff_t g = 0; g < G; g++) {
                                for (ptrdiff_t fb = 0; fb < fblocks; fb++) {
                                    const ptrdiff_t f0 = fb * fc, fn = min_pd(fc, fg - f0);
                                    for (ptrdiff_t pk = 0; pk < kpanels; pk++) {
                                        const FC_T *bp = wt + ((g * kpanels + pk) * fg + f0) * nr;
                                        const int cols = (int)min_pd(nr, K - pk * nr);
                                        for (ptrdiff_t ir = 0; ir < mb; ir += mr)
                                            FC_KT(kt, gemm_rowa)(fn, dy + (m0 + ir) * F + g * fg + f0, F, bp, nr,
                                                                 d_own + ir * ldd + pk * nr, ldd,
                                                                 (int)min_pd(mr, mb - ir), cols, fb > 0, NULL);
                                    }
                                }
                                if (dxpad != NULL) FC_FN(scatter_patches_padded)(kt, p, d_own, ldd, m0, mb, dxpad);
                                else FC_FN(scatter_patches)(kt, p, d_own, ldd, g, m0, mb, dx);
                            }
                        }
                    }
                    FC_OMP(barrier)
                }
                if (dxpad != NULL) {
                    FC_OMP(for schedule(static))
                    for (ptrdiff_t row = 0; row < p->n * p->h; row++)
                        FC_FN(unpad_row)(p, dxpad + row * wpc, row, dx);
                }
            }
        }
        fc_free(p_own); fc_free(y_own); fc_free(d_own);
        fc_denormals_restore(csr);
    }
    fc_free(part); fc_free(wt); fc_free(xpad); fc_free(dxpad);
    if (failed) return FC_CONV_NOMEM;
    if (dx != NULL && !dx_scatter) {
        /* dx[n, h, w] = sum over taps of dy[n, h + pt - i*dh, w + pl - j*dw] . W[i, j]^T */
        return FC_FN(gemm_conv)(kt, &adj, dy, w, 1, NULL, 0, NULL, dx, adjoint_threads);
    }
    return FC_CONV_OK;
}

#undef FC_RUN_CHUNK
#undef FC_DOT_MAX_KH
#undef FC_KC_MAX
#undef FC_ROW_KC_MAX
#undef FC_MB_TILES
#undef FC_PATCH_ROWS_MAX_CG
#undef FC_WB_PIXELS
#undef FC_IN_PLACE_MAX_BLOCKS
#undef FC_KT
#undef FC_FN
#undef FC_CI_CAT
#undef FC_CI_CAT_
