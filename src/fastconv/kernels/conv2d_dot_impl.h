/* Few-filter convolution kernel (driver: dot_conv in conv2d_impl.h), written once over the
 * vector abstraction of gemm_simd_impl.h and included per dtype by every ISA file.
 *
 * With few filters (F <= FC_DOT_MAX_F: e.g. the input gradient of a first layer, computed as
 * its adjoint convolution, whose "filters" are the layer's 1 to 8 input channels and whose
 * reduction is KH x KW x the layer's filters) a GEMM tile fills F of its NR columns. Here the
 * lanes run along the reduction instead: a kernel row of an output pixel is one contiguous
 * run of KW * C input values, multiplied lane by lane with the matching run of each filter's
 * weights, and each (pixel, filter) vector of partial sums is added up at the end. P pixels
 * at a time (FC_DOT_P), so that each weight vector loaded feeds P independent chains and each
 * input vector F of them.
 *
 * The lane sums of several filters: FC_VHSUM_BLOCK(v, n, out) (optional, from the includer)
 * stores the sums of the lanes of v[0..n), n <= FC_VLEN, to out[0..n) by a transposition that
 * costs about a third of n separate reductions, each sum with the same bits in any slot, so
 * that a pixel's results do not depend on how it is grouped. Without it, and for one filter,
 * the lanes of each vector are added by FC_VHSUM, or stored and added in order.
 *
 * FC_DOT_PIXELS (pixels per pass for one filter, default 8) is a setting an includer may
 * override before the first inclusion; it stays defined, as does FC_DOT_P. FC_DOT_MAX_F: gemm.h.
 */
#define FC_DOT_CAT_(a, b) a##_##b
#define FC_DOT_CAT(a, b) FC_DOT_CAT_(a, b)
#define FC_DOT_NAME(base) FC_DOT_CAT(base, FC_SFX)

#ifndef FC_DOT_PIXELS
#define FC_DOT_PIXELS 8
#endif
#ifndef FC_DOT_P
/* Pixels per block for F filters: P * F accumulators, P input vectors held (F > 1) and one
 * weight vector within the ISA's FC_FLAT_REGS registers, at most 8 pixels. */
#define FC_DOT_P_FIT(F) ((FC_FLAT_REGS - 1) / ((F) + 1))
#define FC_DOT_P(F) ((F) == 1 ? FC_DOT_PIXELS : FC_DOT_P_FIT(F) > 8 ? 8 : FC_DOT_P_FIT(F) < 1 ? 1 : FC_DOT_P_FIT(F))
#endif
#if defined(__GNUC__) && !defined(__clang__)
#define FC_DOT_UNROLL _Pragma("GCC unroll 32")
#elif defined(__clang__)
#define FC_DOT_UNROLL _Pragma("unroll")
#else
#define FC_DOT_UNROLL
#endif
#if defined(__GNUC__) || defined(__clang__)
#define FC_DOT_INLINE static inline __attribute__((always_inline))
#else
#define FC_DOT_INLINE static inline
#endif

static inline FC_T FC_DOT_NAME(dot_lanes)(FC_VT v)
{
#ifdef FC_VHSUM
    return FC_VHSUM(v);
#else
    FC_T lanes[FC_VLEN];
    FC_VSTORE(lanes, v);
    FC_T s = lanes[0];
    for (int l = 1; l < FC_VLEN; l++) s += lanes[l];
    return s;
#endif
}

/* out[i] = the sum of the lanes of acc[i], i < n (a compile-time constant once inlined). */
FC_DOT_INLINE void FC_DOT_NAME(dot_sums)(const FC_VT *acc, const int n, FC_T *out)
{
#ifdef FC_VHSUM_BLOCK
    FC_DOT_UNROLL
    for (int i = 0; i < n; i += FC_VLEN) FC_VHSUM_BLOCK(acc + i, n - i < FC_VLEN ? n - i : FC_VLEN, out + i);
#else
    FC_DOT_UNROLL
    for (int i = 0; i < n; i++) out[i] = FC_DOT_NAME(dot_lanes)(acc[i]);
#endif
}

/* y[q * F + f] for q < P (one block, constant F and P once inlined); see dot_runs. */
FC_DOT_INLINE void FC_DOT_NAME(dot_block)(const int F, const int P, ptrdiff_t runs, ptrdiff_t len,
                                          const FC_T *const *src, ptrdiff_t off, const FC_T *const *w,
                                          ptrdiff_t wstep, ptrdiff_t step, FC_T *y)
{
    const ptrdiff_t whole = len - len % FC_VLEN;
    const int rest = (int)(len % FC_VLEN);
    FC_VT acc[FC_DOT_PIXELS * FC_DOT_MAX_F];
    FC_DOT_UNROLL
    for (int i = 0; i < P * F; i++) acc[i] = FC_VZERO();
    for (ptrdiff_t t = 0; t < runs; t++) {
        const FC_T *a = src[t] + off, *wt = w[t];
        for (ptrdiff_t k = 0; k < whole; k += FC_VLEN) {
            FC_VT av[FC_DOT_PIXELS];
            FC_DOT_UNROLL
            for (int q = 0; q < P; q++) av[q] = FC_VLOAD(a + q * step + k);
            FC_DOT_UNROLL
            for (int f = 0; f < F; f++) {
                const FC_VT wv = FC_VLOAD(wt + f * wstep + k);
                FC_DOT_UNROLL
                for (int q = 0; q < P; q++) acc[q * F + f] = FC_VFMA(av[q], wv, acc[q * F + f]);
            }
        }
        if (rest) { /* (lanes past len: 0 * 0) */
            FC_VT av[FC_DOT_PIXELS];
            FC_DOT_UNROLL
            for (int q = 0; q < P; q++) av[q] = FC_VLOAD_N(a + q * step + whole, rest);
            FC_DOT_UNROLL
            for (int f = 0; f < F; f++) {
                const FC_VT wv = FC_VLOAD_N(wt + f * wstep + whole, rest);
                FC_DOT_UNROLL
                for (int q = 0; q < P; q++) acc[q * F + f] = FC_VFMA(av[q], wv, acc[q * F + f]);
            }
        }
    }
    if (F == 1) { /* (GCC interleaves these P reductions well by itself) */
        FC_DOT_UNROLL
        for (int q = 0; q < P; q++) y[q] = FC_DOT_NAME(dot_lanes)(acc[q]);
    } else {
        FC_DOT_NAME(dot_sums)(acc, P * F, y);
    }
}

/* All m pixels: blocks of P, then one at a time (each pixel's sums in the same order). */
FC_DOT_INLINE void FC_DOT_NAME(dot_pixels)(const int F, const int P, ptrdiff_t runs, ptrdiff_t len,
                                           const FC_T *const *src, const FC_T *const *w,
                                           ptrdiff_t wstep, ptrdiff_t step, ptrdiff_t m, FC_T *y)
{
    ptrdiff_t q0 = 0;
    for (; q0 + P <= m; q0 += P)
        FC_DOT_NAME(dot_block)(F, P, runs, len, src, q0 * step, w, wstep, step, y + q0 * F);
    for (; q0 < m; q0++)
        FC_DOT_NAME(dot_block)(F, 1, runs, len, src, q0 * step, w, wstep, step, y + q0 * F);
}

/* y[q * F + f] = sum_{t < runs} sum_{k < len} src[t][q * step + k] * w[t][f * wstep + k] for
 * q < m, f < F (1 <= F <= FC_DOT_MAX_F): per lane over t and k in
 * order, then the lanes, whatever m. */
static void FC_DOT_NAME(dot_runs)(ptrdiff_t runs, ptrdiff_t len, const FC_T *const *src,
                                  const FC_T *const *w, ptrdiff_t wstep, int F, ptrdiff_t step,
                                  ptrdiff_t m, FC_T *y)
{
    switch (F) {
    case 1: FC_DOT_NAME(dot_pixels)(1, FC_DOT_P(1), runs, len, src, w, wstep, step, m, y); break;
    case 2: FC_DOT_NAME(dot_pixels)(2, FC_DOT_P(2), runs, len, src, w, wstep, step, m, y); break;
    case 3: FC_DOT_NAME(dot_pixels)(3, FC_DOT_P(3), runs, len, src, w, wstep, step, m, y); break;
    case 4: FC_DOT_NAME(dot_pixels)(4, FC_DOT_P(4), runs, len, src, w, wstep, step, m, y); break;
    case 5: FC_DOT_NAME(dot_pixels)(5, FC_DOT_P(5), runs, len, src, w, wstep, step, m, y); break;
    case 6: FC_DOT_NAME(dot_pixels)(6, FC_DOT_P(6), runs, len, src, w, wstep, step, m, y); break;
    case 7: FC_DOT_NAME(dot_pixels)(7, FC_DOT_P(7), runs, len, src, w, wstep, step, m, y); break;
    default: FC_DOT_NAME(dot_pixels)(8, FC_DOT_P(8), runs, len, src, w, wstep, step, m, y); break;
    }
}

#undef FC_DOT_CAT_
#undef FC_DOT_CAT
#undef FC_DOT_NAME
#undef FC_DOT_UNROLL
#undef FC_DOT_INLINE
