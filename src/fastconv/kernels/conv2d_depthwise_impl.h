/* Direct depthwise convolution kernels (groups == C, F = C * depth_multiplier), written once
 * and included by every gemm_<isa>.c (once per dtype) so the channel loops are vectorised
 * with that file's instruction set. Contracts are in gemm.h (fc_dw_*_fn).
 *
 * The includer defines FC_T (element type), FC_SFX (f32 / f64) and the vector abstraction of
 * gemm_simd_impl.h (FC_VT, FC_VLEN, FC_VZERO, FC_VLOAD, FC_VSET1, FC_VFMA, FC_VADD,
 * FC_VSTORE, FC_VLOAD_N, FC_VSTORE_N; FC_VLEN may be 1 with FC_VT = FC_T for portable C).
 * With one filter per channel (multiplier 1), blocks of 4 vectors of channels accumulate
 * in registers over the taps; other multipliers use plain loops.
 * Every output element is produced by one call, in a fixed order: deterministic.
 */
#if defined(_MSC_VER)
#define FC_DW_RESTRICT __restrict
#else
#define FC_DW_RESTRICT __restrict__
#endif
#define FC_DW_CAT_(a, b) a##_##b
#define FC_DW_CAT(a, b) FC_DW_CAT_(a, b)
#define FC_DW_NAME(base) FC_DW_CAT(base, FC_SFX)

#ifndef FC_DW_ONCE
#define FC_DW_ONCE
static inline ptrdiff_t min_dw(ptrdiff_t a, ptrdiff_t b) { return a < b ? a : b; }
#endif

/* y[c*mult + d] += x[c] * w[c*mult + d] over one pixel. */
static inline void FC_DW_NAME(dw_madd)(FC_T *FC_DW_RESTRICT y, const FC_T *FC_DW_RESTRICT x,
                                       const FC_T *FC_DW_RESTRICT w, ptrdiff_t channels,
                                       ptrdiff_t mult)
{
    if (mult == 1) {
        for (ptrdiff_t c = 0; c < channels; c++) y[c] += x[c] * w[c];
    } else {
        for (ptrdiff_t c = 0; c < channels; c++)
            for (ptrdiff_t d = 0; d < mult; d++) y[c * mult + d] += x[c] * w[c * mult + d];
    }
}

/* One output pixel of a multiplier-1 depthwise forward: yo[c] = sum_taps x * w (+ bias). */
static inline void FC_DW_NAME(dw_forward_pixel)(const fc_conv2d_params *p, const FC_T *ximg,
                                                const FC_T *w, const FC_T *bias, FC_T *yo,
                                                ptrdiff_t ih0, ptrdiff_t iw0)
{
    const ptrdiff_t C = p->c;
    ptrdiff_t c0 = 0;
    /* Taps inside the image: i in [i0, i1), j in [j0, j1). */
    ptrdiff_t i0 = 0, i1 = p->kh, j0 = 0, j1 = p->kw;
    while (i0 < i1 && ih0 + i0 * p->dil_h < 0) i0++;
    while (i1 > i0 && ih0 + (i1 - 1) * p->dil_h >= p->h) i1--;
    while (j0 < j1 && iw0 + j0 * p->dil_w < 0) j0++;
    while (j1 > j0 && iw0 + (j1 - 1) * p->dil_w >= p->w) j1--;
#define FC_DW_TAPS(BODY)                                                                      \
    for (ptrdiff_t i = i0; i < i1; i++) {                                                     \
        const FC_T *xr = ximg + ((ih0 + i * p->dil_h) * p->w + iw0) * C + c0;                  \
        const FC_T *wr = w + i * p->kw * C + c0;                                               \
        for (ptrdiff_t j = j0; j < j1; j++) {                                                 \
            const FC_T *xp = xr + j * p->dil_w * C;                                            \
            const FC_T *wp = wr + j * C;                                                       \
            BODY                                                                               \
        }                                                                                      \
    }
    for (; c0 + 4 * FC_VLEN <= C; c0 += 4 * FC_VLEN) {
        FC_VT a0 = FC_VZERO(), a1 = FC_VZERO(), a2 = FC_VZERO(), a3 = FC_VZERO();
        FC_DW_TAPS(a0 = FC_VFMA(FC_VLOAD(xp), FC_VLOAD(wp), a0);
                   a1 = FC_VFMA(FC_VLOAD(xp + FC_VLEN), FC_VLOAD(wp + FC_VLEN), a1);
                   a2 = FC_VFMA(FC_VLOAD(xp + 2 * FC_VLEN), FC_VLOAD(wp + 2 * FC_VLEN), a2);
                   a3 = FC_VFMA(FC_VLOAD(xp + 3 * FC_VLEN), FC_VLOAD(wp + 3 * FC_VLEN), a3);)
        if (bias != NULL) {
            a0 = FC_VADD(a0, FC_VLOAD(bias + c0));
            a1 = FC_VADD(a1, FC_VLOAD(bias + c0 + FC_VLEN));
            a2 = FC_VADD(a2, FC_VLOAD(bias + c0 + 2 * FC_VLEN));
            a3 = FC_VADD(a3, FC_VLOAD(bias + c0 + 3 * FC_VLEN));
        }
        FC_VSTORE(yo + c0, a0);
        FC_VSTORE(yo + c0 + FC_VLEN, a1);
        FC_VSTORE(yo + c0 + 2 * FC_VLEN, a2);
        FC_VSTORE(yo + c0 + 3 * FC_VLEN, a3);
    }
    for (; c0 + 2 * FC_VLEN <= C; c0 += 2 * FC_VLEN) {
        FC_VT a0 = FC_VZERO(), a1 = FC_VZERO();
        FC_DW_TAPS(a0 = FC_VFMA(FC_VLOAD(xp), FC_VLOAD(wp), a0);
                   a1 = FC_VFMA(FC_VLOAD(xp + FC_VLEN), FC_VLOAD(wp + FC_VLEN), a1);)
        if (bias != NULL) {
            a0 = FC_VADD(a0, FC_VLOAD(bias + c0));
            a1 = FC_VADD(a1, FC_VLOAD(bias + c0 + FC_VLEN));
        }
        FC_VSTORE(yo + c0, a0);
        FC_VSTORE(yo + c0 + FC_VLEN, a1);
    }
    for (; c0 + FC_VLEN <= C; c0 += FC_VLEN) {
        FC_VT a0 = FC_VZERO();
        FC_DW_TAPS(a0 = FC_VFMA(FC_VLOAD(xp), FC_VLOAD(wp), a0);)
        if (bias != NULL) a0 = FC_VADD(a0, FC_VLOAD(bias + c0));
        FC_VSTORE(yo + c0, a0);
    }
    if (c0 < C) {
        const int left = (int)(C - c0);
        FC_VT a0 = FC_VZERO();
        FC_DW_TAPS(a0 = FC_VFMA(FC_VLOAD_N(xp, left), FC_VLOAD_N(wp, left), a0);)
        if (bias != NULL) a0 = FC_VADD(a0, FC_VLOAD_N(bias + c0, left));
        FC_VSTORE_N(yo + c0, a0, left);
    }
#undef FC_DW_TAPS
}

static void FC_DW_NAME(dw_forward)(const fc_conv2d_params *p, const FC_T *x, const FC_T *w,
                                   const FC_T *bias, FC_T *y, ptrdiff_t row)
{
    const ptrdiff_t n = row / p->out_h, oh = row % p->out_h;
    const ptrdiff_t C = p->c, F = p->f, mult = F / C;
    const FC_T *ximg = x + n * p->h * p->w * C;
    for (ptrdiff_t ow = 0; ow < p->out_w; ow++) {
        FC_T *FC_DW_RESTRICT yo = y + (row * p->out_w + ow) * F;
        const ptrdiff_t ih0 = oh * p->stride_h - p->pad_top, iw0 = ow * p->stride_w - p->pad_left;
        if (mult == 1) {
            FC_DW_NAME(dw_forward_pixel)(p, ximg, w, bias, yo, ih0, iw0);
            continue;
        }
        for (ptrdiff_t f = 0; f < F; f++) yo[f] = 0;
        for (ptrdiff_t i = 0; i < p->kh; i++) {
            ptrdiff_t ih = ih0 + i * p->dil_h;
            if (ih < 0 || ih >= p->h) continue;
            for (ptrdiff_t j = 0; j < p->kw; j++) {
                ptrdiff_t iw = iw0 + j * p->dil_w;
                if (iw < 0 || iw >= p->w) continue;
                FC_DW_NAME(dw_madd)(yo, ximg + (ih * p->w + iw) * C, w + (i * p->kw + j) * F, C, mult);
            }
        }
        if (bias != NULL)
            for (ptrdiff_t f = 0; f < F; f++) yo[f] += bias[f];
    }
}

/* One dx pixel of a multiplier-1 depthwise conv: gather dy * w over the taps that hit it. */
static inline void FC_DW_NAME(dw_backward_data_pixel)(const fc_conv2d_params *p, const FC_T *dyimg,
                                                      const FC_T *w, FC_T *dxo, ptrdiff_t ih,
                                                      ptrdiff_t iw)
{
    const ptrdiff_t C = p->c;
    ptrdiff_t c0 = 0;
#define FC_DW_TAPS(BODY)                                                                      \
    for (ptrdiff_t i = 0; i < p->kh; i++) {                                                   \
        const ptrdiff_t t = ih + p->pad_top - i * p->dil_h;                                    \
        if (t < 0 || t % p->stride_h) continue;                                                \
        const ptrdiff_t oh = t / p->stride_h;                                                  \
        if (oh >= p->out_h) continue;                                                          \
        for (ptrdiff_t j = 0; j < p->kw; j++) {                                               \
            const ptrdiff_t u = iw + p->pad_left - j * p->dil_w;                               \
            if (u < 0 || u % p->stride_w) continue;                                            \
            const ptrdiff_t ow = u / p->stride_w;                                              \
            if (ow >= p->out_w) continue;                                                      \
            const FC_T *gp = dyimg + (oh * p->out_w + ow) * C + c0;                            \
            const FC_T *wp = w + (i * p->kw + j) * C + c0;                                     \
            BODY                                                                               \
        }                                                                                      \
    }
    for (; c0 + 4 * FC_VLEN <= C; c0 += 4 * FC_VLEN) {
        FC_VT a0 = FC_VZERO(), a1 = FC_VZERO(), a2 = FC_VZERO(), a3 = FC_VZERO();
        FC_DW_TAPS(a0 = FC_VFMA(FC_VLOAD(gp), FC_VLOAD(wp), a0);
                   a1 = FC_VFMA(FC_VLOAD(gp + FC_VLEN), FC_VLOAD(wp + FC_VLEN), a1);
                   a2 = FC_VFMA(FC_VLOAD(gp + 2 * FC_VLEN), FC_VLOAD(wp + 2 * FC_VLEN), a2);
                   a3 = FC_VFMA(FC_VLOAD(gp + 3 * FC_VLEN), FC_VLOAD(wp + 3 * FC_VLEN), a3);)
        FC_VSTORE(dxo + c0, a0);
        FC_VSTORE(dxo + c0 + FC_VLEN, a1);
        FC_VSTORE(dxo + c0 + 2 * FC_VLEN, a2);
        FC_VSTORE(dxo + c0 + 3 * FC_VLEN, a3);
    }
    for (; c0 + 2 * FC_VLEN <= C; c0 += 2 * FC_VLEN) {
        FC_VT a0 = FC_VZERO(), a1 = FC_VZERO();
        FC_DW_TAPS(a0 = FC_VFMA(FC_VLOAD(gp), FC_VLOAD(wp), a0);
                   a1 = FC_VFMA(FC_VLOAD(gp + FC_VLEN), FC_VLOAD(wp + FC_VLEN), a1);)
        FC_VSTORE(dxo + c0, a0);
        FC_VSTORE(dxo + c0 + FC_VLEN, a1);
    }
    for (; c0 + FC_VLEN <= C; c0 += FC_VLEN) {
        FC_VT a0 = FC_VZERO();
        FC_DW_TAPS(a0 = FC_VFMA(FC_VLOAD(gp), FC_VLOAD(wp), a0);)
        FC_VSTORE(dxo + c0, a0);
    }
    if (c0 < C) {
        const int left = (int)(C - c0);
        FC_VT a0 = FC_VZERO();
        FC_DW_TAPS(a0 = FC_VFMA(FC_VLOAD_N(gp, left), FC_VLOAD_N(wp, left), a0);)
        FC_VSTORE_N(dxo + c0, a0, left);
    }
#undef FC_DW_TAPS
}

static void FC_DW_NAME(dw_backward_data)(const fc_conv2d_params *p, const FC_T *dy,
                                         const FC_T *w, FC_T *dx, ptrdiff_t row)
{
    const ptrdiff_t n = row / p->h, ih = row % p->h;
    const ptrdiff_t C = p->c, F = p->f, mult = F / C;
    for (ptrdiff_t iw = 0; iw < p->w; iw++) {
        FC_T *FC_DW_RESTRICT dxo = dx + (row * p->w + iw) * C;
        if (mult == 1) {
            FC_DW_NAME(dw_backward_data_pixel)(p, dy + n * p->out_h * p->out_w * F, w, dxo, ih, iw);
            continue;
        }
        for (ptrdiff_t c = 0; c < C; c++) dxo[c] = 0;
        /* Gather: output pixels whose window puts tap (i, j) on (ih, iw). */
        for (ptrdiff_t i = 0; i < p->kh; i++) {
            ptrdiff_t t = ih + p->pad_top - i * p->dil_h;
            if (t < 0 || t % p->stride_h) continue;
            ptrdiff_t oh = t / p->stride_h;
            if (oh >= p->out_h) continue;
            for (ptrdiff_t j = 0; j < p->kw; j++) {
                ptrdiff_t u = iw + p->pad_left - j * p->dil_w;
                if (u < 0 || u % p->stride_w) continue;
                ptrdiff_t ow = u / p->stride_w;
                if (ow >= p->out_w) continue;
                const FC_T *FC_DW_RESTRICT g = dy + ((n * p->out_h + oh) * p->out_w + ow) * F;
                const FC_T *FC_DW_RESTRICT wt = w + (i * p->kw + j) * F;
                for (ptrdiff_t c = 0; c < C; c++) {
                    FC_T s = 0;
                    for (ptrdiff_t d = 0; d < mult; d++) s += g[c * mult + d] * wt[c * mult + d];
                    dxo[c] += s;
                }
            }
        }
    }
}

/* dw[tap][c] += sum over the pixels of one output-row segment of x * dy, multiplier 1:
 * register accumulation along the segment, one add into dw per tap and channel block. */
static inline void FC_DW_NAME(dw_weights_segment)(const fc_conv2d_params *p, const FC_T *ximg,
                                                  const FC_T *dyrow, FC_T *dw, ptrdiff_t oh,
                                                  ptrdiff_t ow0, ptrdiff_t ow1)
{
    const ptrdiff_t C = p->c;
    for (ptrdiff_t i = 0; i < p->kh; i++) {
        const ptrdiff_t ih = oh * p->stride_h - p->pad_top + i * p->dil_h;
        if (ih < 0 || ih >= p->h) continue;
        const FC_T *xrow = ximg + ih * p->w * C;
        for (ptrdiff_t j = 0; j < p->kw; j++) {
            /* Output columns whose tap j lands inside the image: [lo, hi). */
            const ptrdiff_t off = j * p->dil_w - p->pad_left;
            ptrdiff_t lo = ow0, hi = ow1;
            while (lo < hi && lo * p->stride_w + off < 0) lo++;
            while (hi > lo && (hi - 1) * p->stride_w + off >= p->w) hi--;
            if (lo >= hi) continue;
            FC_T *dwt = dw + (i * p->kw + j) * C;
            const ptrdiff_t xstep = p->stride_w * C;
            ptrdiff_t c0 = 0;
            for (; c0 + 4 * FC_VLEN <= C; c0 += 4 * FC_VLEN) {
                FC_VT a0 = FC_VZERO(), a1 = FC_VZERO(), a2 = FC_VZERO(), a3 = FC_VZERO();
                const FC_T *xp = xrow + (lo * p->stride_w + off) * C + c0;
                const FC_T *gp = dyrow + lo * C + c0;
                for (ptrdiff_t ow = lo; ow < hi; ow++, xp += xstep, gp += C) {
                    a0 = FC_VFMA(FC_VLOAD(xp), FC_VLOAD(gp), a0);
                    a1 = FC_VFMA(FC_VLOAD(xp + FC_VLEN), FC_VLOAD(gp + FC_VLEN), a1);
                    a2 = FC_VFMA(FC_VLOAD(xp + 2 * FC_VLEN), FC_VLOAD(gp + 2 * FC_VLEN), a2);
                    a3 = FC_VFMA(FC_VLOAD(xp + 3 * FC_VLEN), FC_VLOAD(gp + 3 * FC_VLEN), a3);
                }
                FC_VSTORE(dwt + c0, FC_VADD(FC_VLOAD(dwt + c0), a0));
                FC_VSTORE(dwt + c0 + FC_VLEN, FC_VADD(FC_VLOAD(dwt + c0 + FC_VLEN), a1));
                FC_VSTORE(dwt + c0 + 2 * FC_VLEN, FC_VADD(FC_VLOAD(dwt + c0 + 2 * FC_VLEN), a2));
                FC_VSTORE(dwt + c0 + 3 * FC_VLEN, FC_VADD(FC_VLOAD(dwt + c0 + 3 * FC_VLEN), a3));
            }
            for (; c0 + FC_VLEN <= C; c0 += FC_VLEN) {
                FC_VT a0 = FC_VZERO();
                const FC_T *xp = xrow + (lo * p->stride_w + off) * C + c0;
                const FC_T *gp = dyrow + lo * C + c0;
                for (ptrdiff_t ow = lo; ow < hi; ow++, xp += xstep, gp += C)
                    a0 = FC_VFMA(FC_VLOAD(xp), FC_VLOAD(gp), a0);
                FC_VSTORE(dwt + c0, FC_VADD(FC_VLOAD(dwt + c0), a0));
            }
            if (c0 < C) {
                const int left = (int)(C - c0);
                FC_VT a0 = FC_VZERO();
                const FC_T *xp = xrow + (lo * p->stride_w + off) * C + c0;
                const FC_T *gp = dyrow + lo * C + c0;
                for (ptrdiff_t ow = lo; ow < hi; ow++, xp += xstep, gp += C)
                    a0 = FC_VFMA(FC_VLOAD_N(xp, left), FC_VLOAD_N(gp, left), a0);
                FC_VSTORE_N(dwt + c0, FC_VADD(FC_VLOAD_N(dwt + c0, left), a0), left);
            }
        }
    }
}

static void FC_DW_NAME(dw_backward_weights)(const fc_conv2d_params *p, const FC_T *x,
                                            const FC_T *dy, FC_T *dw, FC_T *db, ptrdiff_t m0,
                                            ptrdiff_t m1)
{
    const ptrdiff_t C = p->c, F = p->f, mult = F / C, pixels = p->out_h * p->out_w;
    if (db != NULL)
        for (ptrdiff_t m = m0; m < m1; m++) {
            const FC_T *FC_DW_RESTRICT g = dy + m * F;
            for (ptrdiff_t f = 0; f < F; f++) db[f] += g[f];
        }
    if (mult == 1) {
        /* Walk [m0, m1) as segments of output rows. */
        for (ptrdiff_t m = m0; m < m1;) {
            const ptrdiff_t n = m / pixels, oh = (m % pixels) / p->out_w, ow0 = m % p->out_w;
            const ptrdiff_t ow1 = min_dw(p->out_w, ow0 + (m1 - m));
            FC_DW_NAME(dw_weights_segment)(p, x + n * p->h * p->w * C,
                                           dy + (m - ow0) * F, dw, oh, ow0, ow1);
            m += ow1 - ow0;
        }
        return;
    }
    for (ptrdiff_t m = m0; m < m1; m++) {
        const ptrdiff_t n = m / pixels, oh = (m % pixels) / p->out_w, ow = m % p->out_w;
        const FC_T *FC_DW_RESTRICT g = dy + m * F;
        for (ptrdiff_t i = 0; i < p->kh; i++) {
            ptrdiff_t ih = oh * p->stride_h - p->pad_top + i * p->dil_h;
            if (ih < 0 || ih >= p->h) continue;
            for (ptrdiff_t j = 0; j < p->kw; j++) {
                ptrdiff_t iw = ow * p->stride_w - p->pad_left + j * p->dil_w;
                if (iw < 0 || iw >= p->w) continue;
                const FC_T *FC_DW_RESTRICT xp = x + ((n * p->h + ih) * p->w + iw) * C;
                FC_T *FC_DW_RESTRICT dwt = dw + (i * p->kw + j) * F;
                for (ptrdiff_t c = 0; c < C; c++)
                    for (ptrdiff_t d = 0; d < mult; d++)
                        dwt[c * mult + d] += xp[c] * g[c * mult + d];
            }
        }
    }
}

#undef FC_DW_NAME
#undef FC_DW_CAT
#undef FC_DW_CAT_
#undef FC_DW_RESTRICT
