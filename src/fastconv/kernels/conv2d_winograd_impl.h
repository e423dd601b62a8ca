/* Winograd F(2x2, 3x3) convolution for one dtype; included by conv2d_impl.h (FC_T / FC_SFX
 * and the driver helpers defined).
 *
 * A 3x3, stride-1, undilated, ungrouped convolution computes each 2x2 block of outputs
 * (a "tile") from a 4x4 block of inputs d with 16 products per (channel, filter) instead of
 * 36: Y = A^T [ sum_c (G g_cf G^T) .* (B^T d_c B) ] A (Lavin & Gray, "Fast Algorithms for
 * Convolutional Neural Networks", 2016). The 16 element-wise products summed over channels
 * are 16 GEMMs, V_xi (tiles x C) @ U_xi (C x F), run by the same microkernels as the
 * direct path; the transforms are additions only (G has halves, exact in binary).
 *
 * Work is split into blocks of `tb` consecutive tiles; each thread transforms a block's
 * inputs into its own V (16 x tb x C), multiplies into its own M (16 x tb x F) and
 * transforms M into the output tiles, so V and M stay in the core's L2. A tile's result
 * depends only on its own data: the same for any thread count or block size. The input and
 * output transforms are the ISA table's (winograd_simd_impl.h), vectorised over channels.
 *
 * Rounding differs from the direct sum (the transforms add and subtract inputs before the
 * products): relative errors stay at a few units of the dtype's precision times the
 * magnitude of the inputs, as for the direct path (tests compare both with the reference).
 */

/* U = G g G^T of one 3x3 kernel slice g[i][j] = w[(i * 3 + j) * gstride]. */
static void FC_FN(winograd_kernel_transform)(const FC_T *w, ptrdiff_t gstride, FC_T u[16])
{
    FC_T t[4][3];
    const FC_T half = (FC_T)0.5;
    for (int j = 0; j < 3; j++) { /* G g: rows (g0, (g0+g1+g2)/2, (g0-g1+g2)/2, g2) */
        const FC_T g0 = w[j * gstride], g1 = w[(3 + j) * gstride], g2 = w[(6 + j) * gstride];
        t[0][j] = g0;
        t[1][j] = (g0 + g1 + g2) * half;
        t[2][j] = (g0 - g1 + g2) * half;
        t[3][j] = g2;
    }
    for (int i = 0; i < 4; i++) {
        u[i * 4 + 0] = t[i][0];
        u[i * 4 + 1] = (t[i][0] + t[i][1] + t[i][2]) * half;
        u[i * 4 + 2] = (t[i][0] - t[i][1] + t[i][2]) * half;
        u[i * 4 + 3] = t[i][2];
    }
}

/* Whether p is a convolution this path computes, and one it pays for (enough channels and
 * filters for the 16 GEMMs to run near the microkernels' speed). */
static int FC_FN(winograd_applies)(const fc_conv2d_params *p)
{
    return p->kh == 3 && p->kw == 3 && p->stride_h == 1 && p->stride_w == 1 && p->dil_h == 1 &&
           p->dil_w == 1 && p->groups == 1 && p->c >= 16 && p->f >= 16 &&
           p->out_h >= 2 && p->out_w >= 2;
}

/* y = conv_p(x, w) + bias; `transposed` as in implicit_gemm_conv (w is then the HWIO kernel
 * of the convolution whose input gradient p describes). */
static int FC_FN(winograd_conv)(const fc_kernel_table *kt, const fc_conv2d_params *p,
                                const FC_T *x, const FC_T *w, int transposed, const FC_T *bias,
                                FC_T *y, int num_threads)
{
    const ptrdiff_t C = p->c, F = p->f;
    const FC_FN(gemm_set) gs = FC_FN(pick_gemm)(kt, F, C <= 128);
    const int mr = gs.mr, nr = gs.nr;
    const ptrdiff_t panels = ceil_div(F, nr);
    const ptrdiff_t th = ceil_div(p->out_h, 2), tw = ceil_div(p->out_w, 2);
    const ptrdiff_t tiles = p->n * th * tw;
    /* Tiles per block: V and M of a block (16 * tb * (C + F) values) in about 512 KiB. */
    const ptrdiff_t budget = (ptrdiff_t)(512 * 1024 / sizeof(FC_T)) / (16 * (C + F));
    const ptrdiff_t tb = max_pd(mr, min_pd(8 * mr, budget / mr * mr));
    const ptrdiff_t blocks = ceil_div(tiles, tb);
    if (num_threads > blocks) num_threads = (int)blocks;
    const ptrdiff_t vsize = 16 * tb * C, msize = 16 * tb * F;

    FC_T *upack = (FC_T *)fc_alloc((size_t)(16 * panels * C * nr) * sizeof(FC_T));
    FC_T *work = (FC_T *)fc_alloc((size_t)(num_threads * (vsize + msize) + C) * sizeof(FC_T));
    if (upack == NULL || work == NULL) {
        fc_free(upack);
        fc_free(work);
        return FC_CONV_NOMEM;
    }
    FC_T *zeros = work + num_threads * (vsize + msize);
    memset(zeros, 0, (size_t)C * sizeof(FC_T));

    FC_OMP(parallel num_threads(num_threads))
    {
        unsigned csr = fc_denormals_off();
        /* Kernel transform, packed as 16 B operands: upack[((xi * panels + pj) * C + c) * nr + j]
         * = U_xi[c][pj * nr + j] (zero past F). Slice (c, f): w[i, j, c, f], or for the
         * adjoint w[2 - i, 2 - j, f, c] (w is then (3, 3, F, C) in p's terms). */
        FC_OMP(for schedule(static))
        for (ptrdiff_t cf = 0; cf < C * panels * nr; cf++) {
            const ptrdiff_t c = cf / (panels * nr), fcol = cf % (panels * nr);
            const ptrdiff_t pj = fcol / nr, j = fcol % nr;
            FC_T u[16];
            if (fcol >= F) {
                for (int xi = 0; xi < 16; xi++) u[xi] = 0;
            } else if (!transposed) {
                FC_FN(winograd_kernel_transform)(w + c * F + fcol, C * F, u);
            } else { /* flipped taps: slice element (i, j) = w[8 - (i * 3 + j)] */
                FC_T g[9];
                for (int t = 0; t < 9; t++) g[t] = w[((8 - t) * F + fcol) * C + c];
                FC_FN(winograd_kernel_transform)(g, 1, u);
            }
            for (int xi = 0; xi < 16; xi++) upack[((xi * panels + pj) * C + c) * nr + j] = u[xi];
        }
        FC_T *v = work + (ptrdiff_t)fc_thread_id() * (vsize + msize);
        FC_T *m = v + vsize;
        FC_OMP(for schedule(dynamic, 1))
        for (ptrdiff_t blk = 0; blk < blocks; blk++) {
            const ptrdiff_t t0 = blk * tb, tn = min_pd(tb, tiles - t0);
            /* inputs -> V: v[(xi * tb + t) * C + c] */
            for (ptrdiff_t t = 0; t < tn; t++) {
                const ptrdiff_t tile = t0 + t, n = tile / (th * tw), ty = (tile / tw) % th,
                                tx = tile % tw;
                const ptrdiff_t ih0 = 2 * ty - p->pad_top, iw0 = 2 * tx - p->pad_left;
                const FC_T *src[16];
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 4; j++) {
                        const ptrdiff_t ih = ih0 + i, iw = iw0 + j;
                        src[i * 4 + j] = (ih >= 0 && ih < p->h && iw >= 0 && iw < p->w)
                                             ? x + ((n * p->h + ih) * p->w + iw) * C : zeros;
                    }
                FC_KT(kt, wino_input)(src, C, v + t * C, tb * C);
            }
            /* M_xi = V_xi @ U_xi */
            for (int xi = 0; xi < 16; xi++)
                for (ptrdiff_t pj = 0; pj < panels; pj++) {
                    const FC_T *bp = upack + (xi * panels + pj) * C * nr;
                    const int cols = (int)min_pd(nr, F - pj * nr);
                    for (ptrdiff_t ir = 0; ir < tn; ir += mr)
                        gs.rowa(C, v + (xi * tb + ir) * C, C, bp, m + (xi * tb + ir) * F + pj * nr,
                                F, (int)min_pd(mr, tn - ir), cols, 0, NULL);
                }
            /* M -> output tiles */
            for (ptrdiff_t t = 0; t < tn; t++) {
                const ptrdiff_t tile = t0 + t, n = tile / (th * tw), ty = (tile / tw) % th,
                                tx = tile % tw;
                const int out_rows = (int)min_pd(2, p->out_h - 2 * ty);
                const int out_cols = (int)min_pd(2, p->out_w - 2 * tx);
                FC_T *y_rows[2];
                y_rows[0] = y + ((n * p->out_h + 2 * ty) * p->out_w + 2 * tx) * F;
                y_rows[1] = out_rows > 1 ? y_rows[0] + p->out_w * F : y_rows[0];
                FC_KT(kt, wino_output)(m + t * F, tb * F, F, bias, y_rows, out_rows, out_cols);
            }
        }
        fc_denormals_restore(csr);
    }
    fc_free(upack);
    fc_free(work);
    return FC_CONV_OK;
}
