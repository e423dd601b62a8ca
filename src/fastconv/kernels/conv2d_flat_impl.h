/* Flat-row direct convolution for one dtype; included by conv2d_impl.h (FC_T, FC_SFX, FC_FN,
 * FC_KT defined). Kernels: conv2d_flat_simd_impl.h.
 *
 * For layers with fewer filters than a vector (LeNet's 6) and few input channels (flat_plan),
 * the implicit GEMM leaves most vector lanes empty (one vector of filters) and spends its time
 * building a pointer or a short copy per pixel and tap. Here the lanes run along an output row in its
 * NHWC order, element e = ow * F + f of row (n, oh). Tap (i, j, c) adds
 *     x[n, oh * sh - pt + i * dh, ow * sw - pl + j * dw, c] * W[i, j, c, f]
 * to element e. In an "expanded" copy of input row ih, channel c, column phase ph < sw, where
 * every value is repeated F times, X[q * F + f] = x[n, ih, q * sw + ph - pl, c] (0 outside the
 * image), that operand is one contiguous stretch for the whole output row: phase (j * dw) % sw,
 * starting at pixel (j * dw) / sw. The tap's weights are a pattern (lane e: filter e mod F)
 * repeating every lcm(VL, F) lanes.
 * Output rows are short (28 x 6 values), so a band of them runs as one sequence: the
 * expanded rows of each (channel, column phase, row phase ih mod sh) are stacked in a plane,
 * qw pixels each (qw - OW more than an output row: the pixels the taps reach past its end),
 * and the kernel computes "wide" output rows of qw pixels, whose first OW are copied out (the
 * rest is the price of one long sequence: (KW - 1) / qw more work). A thread expands the band
 * of one image into its own buffer (one broadcast store per input value and vector of F)
 * and calls the kernel once per band with one pointer per tap.
 *
 * Used for the forward pass, for stride-1 input gradients (the adjoint convolution, whose F
 * is the layer's C: a first layer's adjoint has one "filter") and for the weight gradient:
 * per lane sums of X_t[e] * dy[e] over each output row (its own pixels only) of fixed chunks
 * of rows (a function of the shape only), folded to dW[t, f] in a fixed order: bit-identical
 * for any thread count.
 */
#ifndef FC_FLAT_SHARED
#define FC_FLAT_SHARED

/* Bytes of expanded planes per thread for a band (more rows per band: fewer input rows
 * expanded twice, longer kernel sequences), and the most a band of one output row may need
 * for the path to apply. */
#define FC_FLAT_BAND_BYTES ((ptrdiff_t)256 * 1024)
#define FC_FLAT_ROW_BYTES_MAX ((ptrdiff_t)1024 * 1024)
/* Largest weight-pattern period (vectors) the kernels unroll for; most input channels. */
#define FC_FLAT_MAX_PERIOD 8
#define FC_FLAT_MAX_C 8

typedef struct {
    ptrdiff_t vl, period, pv; /* lanes per vector, vectors per pattern, pv = lcm(vl, F) */
    ptrdiff_t taps;           /* KH * KW * C */
    ptrdiff_t qw, ld;         /* pixels per wide row, ld = qw * F values */
    ptrdiff_t dmin, dmax;     /* least / greatest floor((i * dh - pt) / sh) over kernel rows */
    ptrdiff_t slack;          /* values after a plane: taps start up to a row late, and the
                               * kernel reads whole blocks */
    ptrdiff_t band;           /* output rows per band */
} flat_geom;

static ptrdiff_t gcd_pd(ptrdiff_t a, ptrdiff_t b)
{
    while (b != 0) { const ptrdiff_t t = a % b; a = b; b = t; }
    return a;
}

/* floor(a / b) for b > 0 and any a. */
static ptrdiff_t floor_div(ptrdiff_t a, ptrdiff_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

/* Wide rows of one plane for a band of `rows` output rows, and values of all planes. */
static ptrdiff_t flat_plane_rows(const flat_geom *g, ptrdiff_t rows) { return rows + g->dmax - g->dmin; }
static ptrdiff_t flat_plane_len(const flat_geom *g, ptrdiff_t rows)
{
    return flat_plane_rows(g, rows) * g->ld + g->slack;
}
static ptrdiff_t flat_band_values(const fc_conv2d_params *p, const flat_geom *g, ptrdiff_t rows)
{
    return p->c * p->stride_w * p->stride_h * flat_plane_len(g, rows);
}

/* Fills *g and returns 1 if the flat path applies to p with vectors of vl elements: one group,
 * fewer filters than a vector (where the GEMM leaves lanes empty) and few input channels
 * (the expansion costs a store per input value and channel: with 32 channels and one filter
 * it costs more than the multiply-adds; measured slower than the GEMM paths for 16-64
 * channels, and for 32-64 filters even with one channel), a pattern of at most
 * FC_FLAT_MAX_PERIOD vectors, and a band of one row within the size limit. */
static int flat_plan(const fc_conv2d_params *p, ptrdiff_t vl, size_t elem, flat_geom *g)
{
    if (p->groups != 1 || vl < 1) return 0;
    if (p->f >= vl || p->c > FC_FLAT_MAX_C) return 0;
    g->vl = vl;
    g->pv = vl / gcd_pd(vl, p->f) * p->f;
    g->period = g->pv / vl;
    if (g->period > FC_FLAT_MAX_PERIOD) return 0;
    g->taps = p->kh * p->kw * p->c;
    g->qw = p->out_w + (p->kw - 1) * p->dil_w / p->stride_w;
    g->ld = g->qw * p->f;
    g->dmin = floor_div(-p->pad_top, p->stride_h);
    g->dmax = floor_div((p->kh - 1) * p->dil_h - p->pad_top, p->stride_h);
    g->slack = round_up(g->ld + 24 * vl, 16); /* a tap's shift within a row + a whole block */
    ptrdiff_t rows = 1;
    if ((ptrdiff_t)elem * flat_band_values(p, g, 1) > FC_FLAT_ROW_BYTES_MAX) return 0;
    while (rows < p->out_h && (ptrdiff_t)elem * flat_band_values(p, g, rows + 1) <= FC_FLAT_BAND_BYTES)
        rows++;
    g->band = rows;
    return 1;
}

/* The params of the stride-1 input gradient of p as a convolution of dy (see
 * fc_conv2d_backward). */
static fc_conv2d_params adjoint_params(const fc_conv2d_params *p)
{
    fc_conv2d_params adj = *p;
    adj.h = p->out_h; adj.w = p->out_w; adj.c = p->f;
    adj.f = p->c; adj.out_h = p->h; adj.out_w = p->w;
    adj.pad_top = (p->kh - 1) * p->dil_h - p->pad_top;
    adj.pad_bottom = (p->kh - 1) * p->dil_h - p->pad_bottom;
    adj.pad_left = (p->kw - 1) * p->dil_w - p->pad_left;
    adj.pad_right = (p->kw - 1) * p->dil_w - p->pad_right;
    return adj;
}

/* Whether kernel row i + 1's taps read the wide row below kernel row i's: in flat_tap_rows,
 * the same row phase of (i * dh - pad_top) / sh and the next wide row. That is dh == sh, or
 * one kernel row; as the layers reject a stride above 1 together with a dilation above 1, in
 * practice stride and dilation 1 down the height, or one kernel row. */
static int flat_rows_stacked(const fc_conv2d_params *p)
{
    const ptrdiff_t sh = p->stride_h;
    for (ptrdiff_t i = 0; i + 1 < p->kh; i++) {
        const ptrdiff_t a = i * p->dil_h - p->pad_top, b = a + p->dil_h;
        if (b - floor_div(b, sh) * sh != a - floor_div(a, sh) * sh || floor_div(b, sh) != floor_div(a, sh) + 1)
            return 0;
    }
    return 1;
}

#endif /* FC_FLAT_SHARED */

static int FC_FN(flat_plan_for)(const fc_kernel_table *kt, const fc_conv2d_params *p, flat_geom *g)
{
    return (conv_paths & FC_PATH_FLAT) && flat_plan(p, FC_KT(kt, flat_vl), sizeof(FC_T), g);
}

/* Expands what output rows [oh0, oh1) of image n read into buf: plane (c, column phase pw,
 * row phase ph) at buf + ((c * sw + pw) * sh + ph) * plane_len holds wide row
 * rho = ihq - oh0 - dmin of input row ih = ihq * sh + ph (zeros outside the image). */
static void FC_FN(flat_expand_band)(const fc_kernel_table *kt, const fc_conv2d_params *p,
                                    const flat_geom *g, const FC_T *x, ptrdiff_t n,
                                    ptrdiff_t oh0, ptrdiff_t oh1, FC_T *buf)
{
    const ptrdiff_t R = p->f, C = p->c, sw = p->stride_w, sh = p->stride_h;
    const ptrdiff_t plane_rows = flat_plane_rows(g, oh1 - oh0), plane_len = flat_plane_len(g, oh1 - oh0);
    for (ptrdiff_t c = 0; c < C; c++)
        for (ptrdiff_t pw = 0; pw < sw; pw++) {
            /* pixels q with 0 <= q * sw + pw - pl < W */
            const ptrdiff_t q0 = min_pd(g->qw, max_pd(0, -floor_div(pw - p->pad_left, sw)));
            const ptrdiff_t q1 = max_pd(q0, min_pd(g->qw, floor_div(p->w - 1 + p->pad_left - pw, sw) + 1));
            for (ptrdiff_t ph = 0; ph < sh; ph++) {
                FC_T *plane = buf + ((c * sw + pw) * sh + ph) * plane_len;
                for (ptrdiff_t rho = 0; rho < plane_rows; rho++) {
                    FC_T *dst = plane + rho * g->ld;
                    const ptrdiff_t ih = (oh0 + g->dmin + rho) * sh + ph;
                    if (ih < 0 || ih >= p->h || q1 == q0) {
                        memset(dst, 0, (size_t)g->ld * sizeof(FC_T));
                        continue;
                    }
                    for (ptrdiff_t e = 0; e < q0 * R; e++) dst[e] = 0;
                    FC_KT(kt, flat_expand)(x + ((n * p->h + ih) * p->w + q0 * sw + pw - p->pad_left) * C + c,
                                           sw * C, q1 - q0, R, dst + q0 * R);
                    for (ptrdiff_t e = q1 * R; e < g->ld; e++) dst[e] = 0; /* after the expansion's overrun */
                }
                /* the slack: the overrun of the last row, and what whole blocks read past it */
                memset(plane + plane_rows * g->ld, 0, (size_t)g->slack * sizeof(FC_T));
            }
        }
}

/* src[t] for the first output row of a band expanded at buf with `rows` rows; taps (i, j, c)
 * in HWIO order. */
static void FC_FN(flat_tap_rows)(const fc_conv2d_params *p, const flat_geom *g, const FC_T *buf,
                                 ptrdiff_t rows, const FC_T **src)
{
    const ptrdiff_t C = p->c, sw = p->stride_w, sh = p->stride_h, plane_len = flat_plane_len(g, rows);
    ptrdiff_t t = 0;
    for (ptrdiff_t i = 0; i < p->kh; i++) {
        const ptrdiff_t off = i * p->dil_h - p->pad_top; /* ih = oh * sh + off */
        const ptrdiff_t ph = off - floor_div(off, sh) * sh, rho = floor_div(off, sh) - g->dmin;
        for (ptrdiff_t j = 0; j < p->kw; j++) {
            const ptrdiff_t shift = j * p->dil_w, pw = shift % sw, start = rho * g->ld + shift / sw * p->f;
            for (ptrdiff_t c = 0; c < C; c++, t++)
                src[t] = buf + ((c * sw + pw) * sh + ph) * plane_len + start;
        }
    }
}

/* y = act(conv_p(x, W) + bias) by flat rows; `w` and `transposed` as in
 * implicit_gemm_conv. */
static int FC_FN(flat_conv)(const fc_kernel_table *kt, const fc_conv2d_params *p, const flat_geom *g,
                            const FC_T *x, const FC_T *w, int transposed, const FC_T *bias,
                            int act, FC_T *y, int num_threads)
{
    const ptrdiff_t F = p->f, taps = g->taps, pv = g->pv, row_len = p->out_w * F;
    const ptrdiff_t bands = ceil_div(p->out_h, g->band), units = p->n * bands;
    /* kernel rows one wide row apart: the kernel may compute two output rows at once */
    const ptrdiff_t row_taps = p->kw * p->c;
    const int stacked = flat_rows_stacked(p);
    const ptrdiff_t buf_values = flat_band_values(p, g, g->band) + g->band * g->ld + g->slack;
    if (num_threads > units) num_threads = (int)units;
    FC_T *wpat = (FC_T *)fc_alloc((size_t)(taps * pv + pv) * sizeof(FC_T));
    if (wpat == NULL) return FC_CONV_NOMEM;
    int failed = 0;
    FC_T *bpat = wpat + taps * pv;
    /* tap t = (i * KW + j) * C + c, lane e: W[t, e mod F] (the adjoint: the flipped tap,
     * channel and filter swapped) */
    const ptrdiff_t spatial = p->kh * p->kw;
    for (ptrdiff_t t = 0; t < taps; t++)
        for (ptrdiff_t e = 0; e < pv; e++) {
            const ptrdiff_t f = e % F;
            wpat[t * pv + e] = !transposed ? w[t * F + f]
                                           : w[((spatial - 1 - t / p->c) * F + f) * p->c + t % p->c];
        }
    for (ptrdiff_t e = 0; e < pv; e++) bpat[e] = bias != NULL ? bias[e % F] : 0;

    fc_share u_share;
    fc_share_init(&u_share, units, num_threads, 1, FC_SHARE_EAGER);
    FC_OMP(parallel num_threads(num_threads))
    {
        unsigned csr = fc_denormals_off();
        int ready = 1; /* scratch per thread, allocated by the thread (see fc_thread_alloc) */
        FC_T *buf = (FC_T *)fc_thread_alloc((size_t)buf_values * sizeof(FC_T), &ready);
        const FC_T **src = (const FC_T **)fc_thread_alloc((size_t)taps * sizeof(FC_T *), &ready);
        FC_T *wide = buf != NULL ? buf + flat_band_values(p, g, g->band) : NULL; /* output rows */
        if (fc_thread_ready(ready, &failed)) FC_SHARE_FOR(&u_share, u) {
            const ptrdiff_t n = u / bands, oh0 = (u % bands) * g->band;
            const ptrdiff_t rows = min_pd(p->out_h - oh0, g->band);
            FC_FN(flat_expand_band)(kt, p, g, x, n, oh0, oh0 + rows, buf);
            FC_FN(flat_tap_rows)(p, g, buf, rows, src);
            FC_KT(kt, flat_conv)(taps, src, wpat, (int)g->period, bias != NULL ? bpat : NULL, wide,
                                 rows * g->ld, row_taps, stacked ? g->ld : 0);
            for (ptrdiff_t r = 0; r < rows; r++) {
                FC_T *out = y + (n * p->out_h + oh0 + r) * row_len;
                memcpy(out, wide + r * g->ld, (size_t)row_len * sizeof(FC_T));
                if (act) FC_FN(activate)(kt, act, out, row_len);
            }
        }
        fc_free(buf); fc_free((void *)src);
        FC_OMP(barrier)
        fc_denormals_restore(csr);
    }
    fc_free(wpat);
    return failed ? FC_CONV_NOMEM : FC_CONV_OK;
}

/* dW (and db if not NULL) of p by flat rows: chunk ch sums output rows [ch * R / chunks,
 * (ch + 1) * R / chunks) (R = N * OH; bands from the chunk's first row and each image's first
 * row) per lane, then the chunks and the lanes of each filter are added in a fixed order. */
static int FC_FN(flat_weight_grad)(const fc_kernel_table *kt, const fc_conv2d_params *p,
                                   const flat_geom *g, const FC_T *dy, const FC_T *x, FC_T *dw,
                                   FC_T *db, int num_threads)
{
    const ptrdiff_t F = p->f, taps = g->taps, pv = g->pv, row_len = p->out_w * F;
    const ptrdiff_t rows_total = p->n * p->out_h, acc_len = taps * pv + pv;
    const ptrdiff_t chunks = weight_grad_chunks(rows_total * p->out_w, acc_len, sizeof(FC_T));
    const ptrdiff_t buf_values = flat_band_values(p, g, g->band);
    if (num_threads > chunks) num_threads = (int)chunks;
    FC_T *acc = (FC_T *)fc_alloc((size_t)(chunks * acc_len) * sizeof(FC_T));
    if (acc == NULL) return FC_CONV_NOMEM;
    memset(acc, 0, (size_t)(chunks * acc_len) * sizeof(FC_T));
    int failed = 0;

    fc_share ch_share;
    fc_share_init(&ch_share, chunks, num_threads, 1, FC_SHARE_EAGER);
    FC_OMP(parallel num_threads(num_threads))
    {
        unsigned csr = fc_denormals_off();
        int ready = 1; /* scratch per thread, allocated by the thread (see fc_thread_alloc) */
        FC_T *buf = (FC_T *)fc_thread_alloc((size_t)buf_values * sizeof(FC_T), &ready);
        const FC_T **src = (const FC_T **)fc_thread_alloc((size_t)taps * sizeof(FC_T *), &ready);
        if (fc_thread_ready(ready, &failed)) FC_SHARE_FOR(&ch_share, ch) {
            FC_T *cacc = acc + ch * acc_len;
            const ptrdiff_t r1 = (ch + 1) * rows_total / chunks;
            for (ptrdiff_t r0 = ch * rows_total / chunks; r0 < r1;) {
                const ptrdiff_t n = r0 / p->out_h, oh0 = r0 % p->out_h;
                const ptrdiff_t rows = min_pd(min_pd(g->band, p->out_h - oh0), r1 - r0);
                FC_FN(flat_expand_band)(kt, p, g, x, n, oh0, oh0 + rows, buf);
                FC_FN(flat_tap_rows)(p, g, buf, rows, src);
                /* row by row: only the output's own pixels multiply (past a row's end the
                 * expanded input holds real values, which an inf would turn into NaN * 0) */
                FC_KT(kt, flat_dw)(taps, src, 0, g->ld, dy + r0 * row_len, row_len, rows, row_len,
                                   (int)g->period, cacc, db != NULL ? cacc + taps * pv : NULL);
                r0 += rows;
            }
        }
        fc_free(buf); fc_free((void *)src);
        FC_OMP(barrier)
        /* fold: dW[t, f] = sum over chunks, then over the lanes k * F + f of the pattern */
        FC_OMP(for schedule(static))
        for (ptrdiff_t t = 0; t <= taps; t++) { /* t == taps: the bias */
            if (t == taps && db == NULL) continue;
            FC_T *dst = t < taps ? dw + t * F : db;
            for (ptrdiff_t f = 0; f < F; f++) {
                FC_T s = 0;
                for (ptrdiff_t ch = 0; ch < chunks; ch++)
                    for (ptrdiff_t e = f; e < pv; e += F) s += acc[ch * acc_len + t * pv + e];
                dst[f] = s;
            }
        }
        fc_denormals_restore(csr);
    }
    fc_free(acc);
    return failed ? FC_CONV_NOMEM : FC_CONV_OK;
}
