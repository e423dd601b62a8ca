/* Direct depthwise convolution kernels (groups == C, F = C * depth_multiplier), written once
 * and included by every gemm_<isa>.c (once per dtype) so the channel loops are vectorised
 * with that file's instruction set. Contracts are in gemm.h (fc_dw_*_fn).
 *
 * The includer defines FC_T (element type) and FC_SFX (f32 / f64).
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

static void FC_DW_NAME(dw_forward)(const fc_conv2d_params *p, const FC_T *x, const FC_T *w,
                                   const FC_T *bias, FC_T *y, ptrdiff_t row)
{
    const ptrdiff_t n = row / p->out_h, oh = row % p->out_h;
    const ptrdiff_t C = p->c, F = p->f, mult = F / C;
    for (ptrdiff_t ow = 0; ow < p->out_w; ow++) {
        FC_T *FC_DW_RESTRICT yo = y + (row * p->out_w + ow) * F;
        for (ptrdiff_t f = 0; f < F; f++) yo[f] = 0;
        for (ptrdiff_t i = 0; i < p->kh; i++) {
            ptrdiff_t ih = oh * p->stride_h - p->pad_top + i * p->dil_h;
            if (ih < 0 || ih >= p->h) continue;
            for (ptrdiff_t j = 0; j < p->kw; j++) {
                ptrdiff_t iw = ow * p->stride_w - p->pad_left + j * p->dil_w;
                if (iw < 0 || iw >= p->w) continue;
                FC_DW_NAME(dw_madd)(yo, x + ((n * p->h + ih) * p->w + iw) * C,
                                    w + (i * p->kw + j) * F, C, mult);
            }
        }
        if (bias != NULL)
            for (ptrdiff_t f = 0; f < F; f++) yo[f] += bias[f];
    }
}

static void FC_DW_NAME(dw_backward_data)(const fc_conv2d_params *p, const FC_T *dy,
                                         const FC_T *w, FC_T *dx, ptrdiff_t row)
{
    const ptrdiff_t n = row / p->h, ih = row % p->h;
    const ptrdiff_t C = p->c, F = p->f, mult = F / C;
    for (ptrdiff_t iw = 0; iw < p->w; iw++) {
        FC_T *FC_DW_RESTRICT dxo = dx + (row * p->w + iw) * C;
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
                if (mult == 1) {
                    for (ptrdiff_t c = 0; c < C; c++) dxo[c] += g[c] * wt[c];
                } else {
                    for (ptrdiff_t c = 0; c < C; c++) {
                        FC_T s = 0;
                        for (ptrdiff_t d = 0; d < mult; d++) s += g[c * mult + d] * wt[c * mult + d];
                        dxo[c] += s;
                    }
                }
            }
        }
    }
}

static void FC_DW_NAME(dw_backward_weights)(const fc_conv2d_params *p, const FC_T *x,
                                            const FC_T *dy, FC_T *dw, FC_T *db, ptrdiff_t m0,
                                            ptrdiff_t m1)
{
    const ptrdiff_t C = p->c, F = p->f, mult = F / C, pixels = p->out_h * p->out_w;
    for (ptrdiff_t m = m0; m < m1; m++) {
        const ptrdiff_t n = m / pixels, oh = (m % pixels) / p->out_w, ow = m % p->out_w;
        const FC_T *FC_DW_RESTRICT g = dy + m * F;
        if (db != NULL)
            for (ptrdiff_t f = 0; f < F; f++) db[f] += g[f];
        for (ptrdiff_t i = 0; i < p->kh; i++) {
            ptrdiff_t ih = oh * p->stride_h - p->pad_top + i * p->dil_h;
            if (ih < 0 || ih >= p->h) continue;
            for (ptrdiff_t j = 0; j < p->kw; j++) {
                ptrdiff_t iw = ow * p->stride_w - p->pad_left + j * p->dil_w;
                if (iw < 0 || iw >= p->w) continue;
                const FC_T *FC_DW_RESTRICT xp = x + ((n * p->h + ih) * p->w + iw) * C;
                FC_T *FC_DW_RESTRICT dwt = dw + (i * p->kw + j) * F;
                if (mult == 1) {
                    for (ptrdiff_t c = 0; c < C; c++) dwt[c] += xp[c] * g[c];
                } else {
                    for (ptrdiff_t c = 0; c < C; c++)
                        for (ptrdiff_t d = 0; d < mult; d++)
                            dwt[c * mult + d] += xp[c] * g[c * mult + d];
                }
            }
        }
    }
}

#undef FC_DW_NAME
#undef FC_DW_CAT
#undef FC_DW_CAT_
#undef FC_DW_RESTRICT
