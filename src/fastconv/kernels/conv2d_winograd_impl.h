/* Winograd F(m x m, 3x3) convolution (m = 2 or 4) for one dtype; included by conv2d_impl.h
 * (FC_T / FC_SFX and the driver helpers defined).
 *
 * A 3x3, stride-1, undilated, ungrouped convolution computes each m x m block of outputs
 * (a "tile") from an a x a block of inputs d (a = m + 2) with a^2 products per (channel,
 * filter) instead of 9 m^2: Y = A^T [ sum_c (G g_cf G^T) .* (B^T d_c B) ] A (Lavin & Gray,
 * "Fast Algorithms for Convolutional Neural Networks", 2016): 16 for 4 outputs with m = 2,
 * 36 for 16 with m = 4. The a^2 element-wise products summed over channels are a^2 GEMMs,
 * V_xi (tiles x C) @ U_xi (C x F), run by the same microkernels as the direct path.
 *
 * Work is split into blocks of `tb` consecutive tiles; each thread transforms a block's
 * inputs into its own V (a^2 x tb x C), multiplies into its own M (a^2 x tb x F) and
 * transforms M into the output tiles, so V and M stay in the core's L2. A tile's result
 * depends only on its own data: the same for any thread count or block size. The input and
 * output transforms are the ISA table's (winograd_simd_impl.h), vectorised over channels.
 *
 * Rounding differs from the direct sum (the transforms combine inputs before the products):
 * with m = 2 relative errors stay at a few units of the dtype's precision times the
 * magnitude of the inputs, as for the direct path; m = 4 (larger transform coefficients)
 * about 10x that, as in cuDNN / NNPACK. Tests compare both with the reference.
 */

/* Padding (values: one 64-byte line of float32, two of float64) after each transform point's
 * block of V, M and D. */
#ifndef FC_WINO_PAD
#define FC_WINO_PAD ((ptrdiff_t)16)
/* Largest transformed kernels (bytes) for 4x4 tiles (see winograd_tile) */
#define FC_WINO4_MAX_U_BYTES (20.0 * 1024 * 1024)
#endif

/* Tile `tile` of the (n, ty, tx) grid with th x tw tiles per image. */
typedef struct {
    ptrdiff_t n, ty, tx;
} FC_FN(wino_tile);

static inline FC_FN(wino_tile) FC_FN(wino_tile_at)(ptrdiff_t tile, ptrdiff_t th, ptrdiff_t tw)
{
    FC_FN(wino_tile) t = {tile / (th * tw), (tile / tw) % th, tile % tw};
    return t;
}

/* The a x a input block of tile t (m x m outputs): src[i * a + j] = channel 0 of x at
 * (n, m * ty - pad_top + i, m * tx - pad_left + j), or `zeros` outside the image. */
static inline void FC_FN(wino_input_block)(const fc_conv2d_params *p, const FC_T *x,
                                           const FC_T *zeros, FC_FN(wino_tile) t, int m,
                                           const FC_T **src)
{
    const int a = m + 2;
    const ptrdiff_t ih0 = m * t.ty - p->pad_top, iw0 = m * t.tx - p->pad_left;
    for (int i = 0; i < a; i++)
        for (int j = 0; j < a; j++) {
            const ptrdiff_t ih = ih0 + i, iw = iw0 + j;
            src[i * a + j] = (ih >= 0 && ih < p->h && iw >= 0 && iw < p->w)
                                 ? x + ((t.n * p->h + ih) * p->w + iw) * p->c : zeros;
        }
}

/* Whether p is a convolution this path computes, and one it pays for (enough channels and
 * filters for the GEMMs to run near the microkernels' speed). */
static int FC_FN(winograd_applies)(const fc_conv2d_params *p)
{
    return p->kh == 3 && p->kw == 3 && p->stride_h == 1 && p->stride_w == 1 && p->dil_h == 1 &&
           p->dil_w == 1 && p->groups == 1 && p->c >= 16 && p->f >= 16 &&
           p->out_h >= 2 && p->out_w >= 2;
}

/* Output tile size: 4 where it pays (and the path mask allows it), else 2. 4x4 tiles need
 * 36 / 16 products per output against 16 / 4, but 2.25x the transformed kernels (36 C F
 * values, packed on every call and read by every block of tiles), and partial tiles at the
 * border compute outputs that are thrown away. Measured on Zen 4 (2 threads, the two sizes
 * alternated in one process, 4x4 time / 2x2 time):
 * - kernels beyond FC_WINO4_MAX_U_BYTES: 512 x 512 channels (37.7 MB, more than the L3)
 *   1.26-1.36; from 128 x 128 to 256 x 512 (2.4-18.9 MB) with many tiles 0.68-0.96;
 * - few tiles, where the packing weighs: forward and input gradient 1.08-1.27 with t2, t4
 *   tiles of each size at 16 t2 - 36 t4 (products per (c, f) saved) = 104-832, 0.69-0.95 from
 *   1372 on (the 20 extra kernel values per (c, f) cost about 64 tiles' products each);
 * - the weight gradient (weight_grad) won with 4x4 tiles at any tile count up to 128 x 128
 *   channels (0.63-0.96; its products reduce over the tiles), lost with 256 x 256 and few
 *   tiles (1.11);
 * - partial tiles at the border count through t4 and t2 (the tiles over the padded grid),
 *   which replaced a rule on the fraction of thrown-away outputs: 13x13 outputs (AlexNet's
 *   conv3-5, 1.51x the outputs computed) had stayed on 2x2 tiles; 32x13x13x256 -> 384 with 4x4
 *   tiles 0.86 forward and input gradient, 0.62 weight gradient (with weight_grad_chunks' 2
 *   chunks), 8x13x13x384 -> 384 forward 1.00. */
static int FC_FN(winograd_tile)(const fc_conv2d_params *p, int weight_grad)
{
    if (!(conv_paths & FC_PATH_WINOGRAD4)) return 2;
    if (conv_paths & FC_PATH_WINOGRAD4_ALWAYS) return 4; /* (tests) */
    if (36.0 * (double)(p->c * p->f) * (double)sizeof(FC_T) > FC_WINO4_MAX_U_BYTES) return 2;
    const double t4 = (double)(p->n * ceil_div(p->out_h, 4) * ceil_div(p->out_w, 4));
    const double t2 = (double)(p->n * ceil_div(p->out_h, 2) * ceil_div(p->out_w, 2));
    if (36.0 * t4 >= 16.0 * t2) return 2; /* no fewer products (e.g. 5x5 or 6x6 outputs) */
    const int few_tiles = 16.0 * t2 - 36.0 * t4 < 20.0 * 64;
    return few_tiles && !(weight_grad && p->c * p->f <= 128 * 128) ? 2 : 4;
}

/* y = act(conv_p(x, w) + bias); `transposed` as in implicit_gemm_conv (w is then the HWIO kernel
 * of the convolution whose input gradient p describes). With `pool` (its window dividing the
 * tile size m), y is the max pooling of that output: each output tile goes to a scratch tile,
 * whose windows are pooled into y. */
static int FC_FN(winograd_conv)(const fc_kernel_table *kt, const fc_conv2d_params *p,
                                const FC_T *x, const FC_T *w, int transposed, const FC_T *bias,
                                int act, const pool_window *pool, FC_T *y, int num_threads)
{
    const ptrdiff_t C = p->c, F = p->f;
    const int m = FC_FN(winograd_tile)(p, 0), a = m + 2, a2 = a * a;
    const FC_FN(gemm_set) gs = FC_FN(pick_gemm)(kt, F, C <= 128);
    const int mr = gs.mr, nr = gs.nr;
    const ptrdiff_t panels = ceil_div(F, nr);
    const ptrdiff_t th = ceil_div(p->out_h, m), tw = ceil_div(p->out_w, m);
    const ptrdiff_t tiles = p->n * th * tw;
    /* Tiles per block: V and M of a block (a^2 * tb * (C + F) values) in about 512 KiB. */
    const ptrdiff_t budget = (ptrdiff_t)(512 * 1024 / sizeof(FC_T)) / (a2 * (C + F));
    const ptrdiff_t tb = max_pd(mr, min_pd(8 * mr, budget / mr * mr));
    const ptrdiff_t blocks = ceil_div(tiles, tb);
    if (num_threads > blocks) num_threads = (int)blocks;
    /* V and M hold a2 blocks of tb rows; each block padded by a cache line (FC_WINO_PAD), so that
     * the a2 streams a transform writes or reads are not a multiple of 4 KiB apart: they would
     * all fall in one L1 set (e.g. tb * C = 48 * 64 values = 12 KiB). */
    const ptrdiff_t vxs = tb * C + FC_WINO_PAD, mxs = tb * F + FC_WINO_PAD; /* block strides */
    const ptrdiff_t vsize = a2 * vxs, msize = a2 * mxs + (pool ? m * m * F : 0);
    const ptrdiff_t pool_oh = pool ? p->out_h / pool->h : 0, pool_ow = pool ? p->out_w / pool->w : 0;
    const int relu_after_pool = pool && act == FC_ACT_RELU; /* (see max_pool_rows) */
    const FC_CI_CAT(FC_CI_CAT(fc_wino_input, FC_SFX), fn) input = m == 4 ? FC_KT(kt, wino4_input) : FC_KT(kt, wino_input);
    const FC_CI_CAT(FC_CI_CAT(fc_wino_output, FC_SFX), fn) output = m == 4 ? FC_KT(kt, wino4_output) : FC_KT(kt, wino_output);

    FC_T *upack = (FC_T *)fc_alloc((size_t)(a2 * panels * C * nr) * sizeof(FC_T));
    FC_T *zeros = (FC_T *)fc_alloc((size_t)C * sizeof(FC_T));
    if (upack == NULL || zeros == NULL) {
        fc_free(upack);
        fc_free(zeros);
        return FC_CONV_NOMEM;
    }
    memset(zeros, 0, (size_t)C * sizeof(FC_T));
    int failed = 0;

    fc_share blk_share;
    fc_share_init(&blk_share, blocks, num_threads, 1, FC_SHARE_EAGER);
    FC_OMP(parallel num_threads(num_threads))
    {
        unsigned csr = fc_denormals_off();
        FC_OMP(for schedule(static))
        for (ptrdiff_t cp = 0; cp < C * panels; cp++)
            FC_KT(kt, wino_kernel)(w, transposed, C, F, a, nr, panels, cp / panels, cp % panels, upack);
        int ready = 1; /* V and M blocks per thread, allocated by the thread (see fc_thread_alloc) */
        FC_T *v = (FC_T *)fc_thread_alloc((size_t)(vsize + msize) * sizeof(FC_T), &ready);
        FC_T *mbuf = v != NULL ? v + vsize : NULL;
        if (fc_thread_ready(ready, &failed)) FC_SHARE_FOR(&blk_share, blk) {
            const ptrdiff_t t0 = blk * tb, tn = min_pd(tb, tiles - t0);
            /* inputs -> V: v[xi * vxs + t * C + c] */
            for (ptrdiff_t t = 0; t < tn; t++) {
                const FC_T *src[36];
                FC_FN(wino_input_block)(p, x, zeros, FC_FN(wino_tile_at)(t0 + t, th, tw), m, src);
                input(src, C, v + t * C, vxs);
            }
            /* M_xi = V_xi @ U_xi */
            for (int xi = 0; xi < a2; xi++)
                for (ptrdiff_t pj = 0; pj < panels; pj++) {
                    const FC_T *bp = upack + (xi * panels + pj) * C * nr;
                    const int cols = (int)min_pd(nr, F - pj * nr);
                    for (ptrdiff_t ir = 0; ir < tn; ir += mr)
                        gs.rowa(C, v + xi * vxs + ir * C, C, bp, nr, mbuf + xi * mxs + ir * F + pj * nr,
                                F, (int)min_pd(mr, tn - ir), cols, 0, NULL);
                }
            /* M -> output tiles */
            for (ptrdiff_t t = 0; t < tn; t++) {
                const FC_FN(wino_tile) tl = FC_FN(wino_tile_at)(t0 + t, th, tw);
                const ptrdiff_t n = tl.n, ty = tl.ty, tx = tl.tx;
                const int out_rows = (int)min_pd(m, p->out_h - m * ty);
                const int out_cols = (int)min_pd(m, p->out_w - m * tx);
                FC_T *y_rows[4], *tile_rows = mbuf + a2 * mxs; /* (pool: m x m x F scratch) */
                for (int r = 0; r < out_rows; r++)
                    y_rows[r] = pool ? tile_rows + r * m * F
                                     : y + ((n * p->out_h + m * ty + r) * p->out_w + m * tx) * F;
                output(mbuf + t * F, mxs, F, bias, y_rows, out_rows, out_cols);
                if (act && !relu_after_pool)
                    for (int r = 0; r < out_rows; r++) FC_FN(activate)(kt, act, y_rows[r], out_cols * F);
                if (pool) /* the tile's whole windows (m / pool->h per column, as many per row) */
                    for (ptrdiff_t i = 0; i < out_rows / pool->h; i++)
                        FC_FN(max_pool_rows)(kt, tile_rows + i * pool->h * m * F, m * F, pool->h, pool->w,
                                             out_cols / pool->w, F, 0, F, relu_after_pool,
                                             y + ((n * pool_oh + ty * (m / pool->h) + i) * pool_ow +
                                                  tx * (m / pool->w)) * F);
            }
        }
        fc_free(v);
        FC_OMP(barrier)
        fc_denormals_restore(csr);
    }
    fc_free(upack);
    fc_free(zeros);
    return failed ? FC_CONV_NOMEM : FC_CONV_OK;
}


/* Weight gradient, tile t0 + t of a block: its input block into row t of V (v, vxs apart per
 * transform point) and its output-gradient block (0 past the edge) into row t of D. */
static inline void FC_FN(wino_wg_tile)(const fc_conv2d_params *p, const FC_T *x, const FC_T *dy,
                                       const FC_T *zeros, int m, ptrdiff_t th, ptrdiff_t tw,
                                       ptrdiff_t tile, ptrdiff_t t,
                                       FC_CI_CAT(FC_CI_CAT(fc_wino_input, FC_SFX), fn) input,
                                       FC_CI_CAT(FC_CI_CAT(fc_wino_dy, FC_SFX), fn) dy_transform,
                                       FC_T *v, ptrdiff_t vxs, FC_T *d, ptrdiff_t dxs,
                                       ptrdiff_t nr, ptrdiff_t tb)
{
    const ptrdiff_t C = p->c, F = p->f;
    const FC_FN(wino_tile) tl = FC_FN(wino_tile_at)(tile, th, tw);
    const FC_T *src[36];
    FC_FN(wino_input_block)(p, x, zeros, tl, m, src);
    input(src, C, v + t * C, vxs);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) {
            const ptrdiff_t oh = m * tl.ty + i, ow = m * tl.tx + j;
            const int inside = oh < p->out_h && ow < p->out_w;
            src[i * m + j] = inside ? dy + ((tl.n * p->out_h + oh) * p->out_w + ow) * F : zeros;
        }
    dy_transform(src, F, d + t * nr, dxs, nr, tb * nr);
}

/* Weight gradient, item k of a block's a^2 x panels GEMMs: Q_xi (+)= V_xi^T @ D_xi for the
 * filters of panel pj (xi = k / panels, pj = k % panels); rows = channels, reduction over the
 * block's tn tiles. Each item writes its own part of Q. */
static inline void FC_FN(wino_wg_gemm)(const FC_FN(gemm_set) *gs, ptrdiff_t k, ptrdiff_t panels,
                                       ptrdiff_t C, ptrdiff_t F, ptrdiff_t tn, ptrdiff_t tb,
                                       const FC_T *v, ptrdiff_t vxs, const FC_T *d,
                                       ptrdiff_t dxs, FC_T *q, int accumulate)
{
    const ptrdiff_t xi = k / panels, pj = k % panels, nr = gs->nr;
    const FC_T *bp = d + xi * dxs + pj * tb * nr;
    const int cols = (int)min_pd(nr, F - pj * nr);
    for (ptrdiff_t cc = 0; cc < C; cc += gs->mr)
        gs->cola(tn, v + xi * vxs + cc, C, bp, nr, q + (xi * C + cc) * F + pj * nr, F,
                 (int)min_pd(gs->mr, C - cc), cols, accumulate, NULL);
}

/* Weight gradient, after a block's tn of tb tiles are transformed: zeros V's rows past the
 * last (a short block: gemm_cola reads them as slack) and adds the block's bias sums to cdb:
 * transform point (1, 1) of A e A^T is the sum of the block e (row 1 of A is all ones), so
 * the tiles' D rows there sum dy (padding columns are 0). */
static inline void FC_FN(wino_wg_block_end)(const fc_kernel_table *kt, int a, ptrdiff_t C,
                                            ptrdiff_t panels, ptrdiff_t nr, ptrdiff_t tn,
                                            ptrdiff_t tb, FC_T *v, ptrdiff_t vxs,
                                            const FC_T *d, ptrdiff_t dxs, FC_T *cdb)
{
    if (tn < tb)
        for (int xi = 0; xi < a * a; xi++)
            memset(v + xi * vxs + tn * C, 0, (size_t)min_pd(FC_MAX_MR, (tb - tn) * C) * sizeof(FC_T));
    for (ptrdiff_t pj = 0; pj < panels; pj++)
        FC_KT(kt, add_rows)(cdb + pj * nr, d + (a + 1) * dxs + pj * tb * nr, tn, nr);
}

/* Weight (and bias) gradient of a convolution winograd_applies() accepts. For L = sum y * dy,
 * dL/dg = G^T [ sum_tiles (A dy_t A^T) .* (B^T d_t B) ] G: the input blocks transform as in
 * the forward, the output-gradient blocks by the transpose of the output transform, and the
 * a^2 sums over tiles are GEMMs Q_xi (C x F) = V_xi^T @ D_xi with the tiles as the
 * reduction (up to 64 per GEMM call, so each Q tile is loaded and stored rarely). Tiles are
 * summed in fixed chunks (shape only) whose partial Q (and bias sums) are added in chunk
 * order before the one output transform: the same bits for any thread count. */
static int FC_FN(winograd_weight_grad)(const fc_kernel_table *kt, const fc_conv2d_params *p,
                                       const FC_T *dy, const FC_T *x, FC_T *dw, FC_T *db,
                                       int num_threads)
{
    const ptrdiff_t C = p->c, F = p->f;
    /* 4x4 tiles where the forward takes them, partial tiles included: the fewer multiplies pay
     * on every path. 64x14x14x32 -> 64 (mnist_c2), 2 threads: AVX2 host 3.0-4.3 -> 2.5-3.1 ms,
     * generic 7.2 -> 6.4-6.6 ms; AVX-512 on Zen 4 (two builds' calls alternated in one process,
     * p10) 1.31 -> 1.08, 1.36 -> 1.11 and 2.50 -> 2.12 ms, 1 thread 2.79 -> 2.49 ms. (An earlier
     * session had measured 2x2 tiles faster with AVX-512 on another host.) */
    const int m = FC_FN(winograd_tile)(p, 1);
    const int a = m + 2, a2 = a * a;
    const FC_FN(gemm_set) gs = FC_FN(pick_gemm)(kt, F, C <= 128);
    const int nr = gs.nr;
    const ptrdiff_t panels = ceil_div(F, nr), fp = panels * nr;
    const ptrdiff_t th = ceil_div(p->out_h, m), tw = ceil_div(p->out_w, m);
    const ptrdiff_t tiles = p->n * th * tw;
    const ptrdiff_t q_elems = a2 * C * F, stride = q_elems + fp; /* a chunk's Q, then its bias sums */
    /* Chunks of >= 256 tiles, at most 16, partial sums within 64 MiB. Below 4 chunks, more of
     * >= 64 tiles while the extra partial sums stay within 8 MiB: one chunk runs on one thread
     * (64x7x7x128 -> 128 with 4x4 tiles, 256 tiles: 0.60x the time with 4 chunks), but extra
     * partials of 9-14 MB each cost more than a second thread gains (8x13x13x384 -> 384 with
     * 2x2 tiles: 1.12x the time with 4 chunks instead of 1). */
    const double few_partials_bytes = 8.0 * 1024 * 1024;
    ptrdiff_t chunks = min_pd(16, max_pd(1, tiles / 256));
    while (chunks < 4 && chunks < tiles / 64 &&
           (double)chunks * (double)stride * sizeof(FC_T) <= few_partials_bytes)
        chunks++;
    while (chunks > 1 && (double)chunks * (double)stride * sizeof(FC_T) > 64.0 * 1024 * 1024) chunks--;
    /* Tiles per GEMM block: 64, or fewer to keep V and D of a block within about 8 MiB (L3).
     * 256 (V and D 3.5 MB for mnist_c2) made the two threads' blocks compete for L3: weight
     * gradient, 2 threads, calls alternated in one process, p10 2.27 -> 1.98 ms (mnist_c2),
     * 3.58 -> 2.98 ms (64x16x16x64 -> 64), 6.30 -> 5.90 ms (64x8x8x128 -> 128); 32 and 16
     * tiles were slower again (each Q tile then loaded and stored too often). */
    const ptrdiff_t tb = max_pd(16, min_pd(64, (ptrdiff_t)(8 * 1024 * 1024 / sizeof(FC_T)) / (a2 * (C + fp))));
    /* One chunk whose Q is too large for partial sums (above): the team shares one V and D and
     * splits each block's tiles and GEMMs (the same sums in the same order: the bits of one
     * thread). 8x13x13x384 -> 384 (2x2 tiles, Q 9.4 MB) had run on one thread: 0.47x the time.
     * Not for small Q, whose few tiles make the barriers and the exchange of V and D between
     * the cores cost more than the second thread gains (4x20x20x64 -> 64: 1.26x). */
    const int shared = chunks == 1 && num_threads > 1 && tiles > tb &&
                       (double)stride * sizeof(FC_T) > few_partials_bytes;
    if (!shared && num_threads > chunks) num_threads = (int)chunks;
    /* (each part a whole number of 64-byte lines: D holds the packed GEMM panels) */
    /* V and D blocks padded by a cache line each, as in winograd_conv (here tb * C and
     * panels * tb * nr are multiples of 4 KiB for most layers) */
    const ptrdiff_t vxs = tb * C + FC_WINO_PAD, dxs = panels * tb * nr + FC_WINO_PAD; /* block strides */
    const ptrdiff_t vsize = round_up(a2 * vxs + FC_MAX_MR, 16), dsize = round_up(a2 * dxs, 16);
    const ptrdiff_t per_thread = vsize + dsize;
    const FC_CI_CAT(FC_CI_CAT(fc_wino_input, FC_SFX), fn) input =
        m == 4 ? FC_KT(kt, wino4_input) : FC_KT(kt, wino_input);
    const FC_CI_CAT(FC_CI_CAT(fc_wino_dy, FC_SFX), fn) dy_transform =
        m == 4 ? FC_KT(kt, wino4_dy) : FC_KT(kt, wino_dy);

    FC_T *zeros = (FC_T *)fc_alloc((size_t)max_pd(C, F) * sizeof(FC_T));
    FC_T *qall = (FC_T *)fc_alloc((size_t)(chunks * stride) * sizeof(FC_T));
    FC_T *vshared = shared ? (FC_T *)fc_alloc((size_t)per_thread * sizeof(FC_T)) : NULL;
    if (zeros == NULL || qall == NULL || (shared && vshared == NULL)) {
        fc_free(zeros);
        fc_free(qall);
        fc_free(vshared);
        return FC_CONV_NOMEM;
    }
    memset(zeros, 0, (size_t)max_pd(C, F) * sizeof(FC_T));
    int failed = 0;

    fc_share ch_share;
    fc_share_init(&ch_share, chunks, num_threads, 1, FC_SHARE_EAGER);
    FC_OMP(parallel num_threads(num_threads))
    {
        unsigned csr = fc_denormals_off();
        int ready = 1; /* V and D blocks per thread, allocated by the thread (see fc_thread_alloc),
                        * or the team's one (shared) */
        FC_T *v = shared ? vshared : (FC_T *)fc_thread_alloc((size_t)per_thread * sizeof(FC_T), &ready);
        FC_T *d = v != NULL ? v + vsize : NULL;
        ready = fc_thread_ready(ready, &failed);
        /* Zero what the GEMMs and bias sums read but no transform writes (not the whole 3-4 MB
         * workspace: that memset was ~10% of mnist_c2's weight gradient): the cache-line pads
         * after each transform point's block and the slack past the last (gemm_cola reads up to
         * mr - 1 values past a block's last row), and D's padding columns (F % nr != 0). */
        if (ready && (!shared || fc_thread_id() == 0)) { /* (shared: before the first single's barrier) */
            for (int xi = 0; xi < a2; xi++) {
                memset(v + xi * vxs + tb * C, 0, (size_t)(vxs - tb * C) * sizeof(FC_T));
                memset(d + xi * dxs + panels * tb * nr, 0, (size_t)(dxs - panels * tb * nr) * sizeof(FC_T));
                if (F % nr != 0)
                    for (ptrdiff_t t = 0; t < tb; t++)
                        memset(d + xi * dxs + ((panels - 1) * tb + t) * nr + F % nr, 0,
                               (size_t)(nr - F % nr) * sizeof(FC_T));
            }
            memset(v + a2 * vxs, 0, (size_t)(vsize - a2 * vxs) * sizeof(FC_T));
            memset(d + a2 * dxs, 0, (size_t)(dsize - a2 * dxs) * sizeof(FC_T));
        }
        if (ready && shared) { /* one chunk, its blocks' tiles and GEMMs split between the team */
            FC_T *cdb = qall + q_elems;
            FC_OMP(single)
            memset(cdb, 0, (size_t)fp * sizeof(FC_T));
            for (ptrdiff_t t0 = 0; t0 < tiles; t0 += tb) {
                const ptrdiff_t tn = min_pd(tb, tiles - t0);
                FC_OMP(for schedule(static))
                for (ptrdiff_t t = 0; t < tn; t++)
                    FC_FN(wino_wg_tile)(p, x, dy, zeros, m, th, tw, t0 + t, t, input, dy_transform,
                                        v, vxs, d, dxs, nr, tb);
                FC_OMP(single) /* (then the implicit barrier: V and D complete) */
                FC_FN(wino_wg_block_end)(kt, a, C, panels, nr, tn, tb, v, vxs, d, dxs, cdb);
                FC_OMP(for schedule(static)) /* (its barrier: the next block may overwrite V, D) */
                for (ptrdiff_t k = 0; k < a2 * panels; k++)
                    FC_FN(wino_wg_gemm)(&gs, k, panels, C, F, tn, tb, v, vxs, d, dxs, qall, t0 > 0);
            }
        } else if (ready) FC_SHARE_FOR(&ch_share, ch) {
            FC_T *q = qall + ch * stride, *cdb = q + q_elems;
            const ptrdiff_t c0 = ch * tiles / chunks, c1 = (ch + 1) * tiles / chunks;
            memset(cdb, 0, (size_t)fp * sizeof(FC_T));
            for (ptrdiff_t t0 = c0; t0 < c1; t0 += tb) {
                const ptrdiff_t tn = min_pd(tb, c1 - t0);
                for (ptrdiff_t t = 0; t < tn; t++)
                    FC_FN(wino_wg_tile)(p, x, dy, zeros, m, th, tw, t0 + t, t, input, dy_transform,
                                        v, vxs, d, dxs, nr, tb);
                FC_FN(wino_wg_block_end)(kt, a, C, panels, nr, tn, tb, v, vxs, d, dxs, cdb);
                for (ptrdiff_t k = 0; k < a2 * panels; k++)
                    FC_FN(wino_wg_gemm)(&gs, k, panels, C, F, tn, tb, v, vxs, d, dxs, q, t0 > c0);
            }
        }
        if (!shared) fc_free(v);
        FC_OMP(barrier)
        /* chunk 0 += chunks 1.. (Q and bias sums), in chunk order */
        FC_FN(reduce_chunks)(qall + stride, chunks, q_elems, qall, qall + q_elems, fp);
        /* dW[i][j][c][f] = (G^T Q_cf G)[i][j], in double, over runs of consecutive (c, f) */
        FC_OMP(for schedule(static))
        for (ptrdiff_t cf0 = 0; cf0 < C * F; cf0 += FC_WINO_RUN)
            FC_KT(kt, wino_kernel_grad)(qall + cf0, C * F, a, dw + cf0, C * F, min_pd(FC_WINO_RUN, C * F - cf0));
        fc_denormals_restore(csr);
    }
    if (db != NULL) memcpy(db, qall + q_elems, (size_t)F * sizeof(FC_T));
    fc_free(zeros);
    fc_free(qall);
    fc_free(vshared);
    return failed ? FC_CONV_NOMEM : FC_CONV_OK;
}
