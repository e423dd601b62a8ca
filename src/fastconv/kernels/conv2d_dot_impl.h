/* Single-filter convolution kernel (driver: dot_conv in conv2d_impl.h), written once over the
 * vector abstraction of gemm_simd_impl.h and included per dtype by every ISA file.
 *
 * With one filter (F = 1: e.g. the input gradient of a one-channel first layer, computed as
 * its adjoint convolution, where the reduction is KH x KW x the layer's filters) a GEMM tile
 * fills one of its NR columns. Here the lanes run along the reduction instead: a kernel row
 * of an output pixel is one contiguous run of KW * C input values, multiplied lane by lane
 * with the matching run of weights, and each pixel's vector of partial sums is added up at
 * the end. FC_DOT_PIXELS pixels at a time, so that the multiply-adds of one weight vector
 * form that many independent chains.
 *
 * The includer may define FC_VHSUM(v), the sum of v's lanes (as a scalar); without it the
 * lanes are stored and added in order. FC_DOT_PIXELS (pixels per pass, default 8) is a
 * setting an includer may override before the first inclusion; it stays defined.
 */
#define FC_DOT_CAT_(a, b) a##_##b
#define FC_DOT_CAT(a, b) FC_DOT_CAT_(a, b)
#define FC_DOT_NAME(base) FC_DOT_CAT(base, FC_SFX)

#ifndef FC_DOT_PIXELS
#define FC_DOT_PIXELS 8
#endif
#if defined(__GNUC__) && !defined(__clang__)
#define FC_DOT_UNROLL _Pragma("GCC unroll 8")
#elif defined(__clang__)
#define FC_DOT_UNROLL _Pragma("unroll")
#else
#define FC_DOT_UNROLL
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

/* y[q] = sum_{t < runs} sum_{k < len} src[t][q * step + k] * w[t][k] for q < m, each pixel's
 * sum in the same order whatever m (lane partial sums over t and k, then the lanes). */
static void FC_DOT_NAME(dot_runs)(ptrdiff_t runs, ptrdiff_t len, const FC_T *const *src,
                                  const FC_T *const *w, ptrdiff_t step, ptrdiff_t m, FC_T *y)
{
    enum { P = FC_DOT_PIXELS };
    const ptrdiff_t whole = len - len % FC_VLEN;
    const int rest = (int)(len % FC_VLEN);
    ptrdiff_t q0 = 0;
    for (; q0 + P <= m; q0 += P) {
        FC_VT acc[P];
        FC_DOT_UNROLL
        for (int q = 0; q < P; q++) acc[q] = FC_VZERO();
        for (ptrdiff_t t = 0; t < runs; t++) {
            const FC_T *a = src[t] + q0 * step, *wt = w[t];
            for (ptrdiff_t k = 0; k < whole; k += FC_VLEN) {
                const FC_VT wv = FC_VLOAD(wt + k);
                FC_DOT_UNROLL
                for (int q = 0; q < P; q++) acc[q] = FC_VFMA(FC_VLOAD(a + q * step + k), wv, acc[q]);
            }
            if (rest) { /* (lanes past len: 0 * 0) */
                const FC_VT wv = FC_VLOAD_N(wt + whole, rest);
                FC_DOT_UNROLL
                for (int q = 0; q < P; q++)
                    acc[q] = FC_VFMA(FC_VLOAD_N(a + q * step + whole, rest), wv, acc[q]);
            }
        }
        FC_DOT_UNROLL
        for (int q = 0; q < P; q++) y[q0 + q] = FC_DOT_NAME(dot_lanes)(acc[q]);
    }
    for (; q0 < m; q0++) {
        FC_VT acc = FC_VZERO();
        for (ptrdiff_t t = 0; t < runs; t++) {
            const FC_T *a = src[t] + q0 * step, *wt = w[t];
            for (ptrdiff_t k = 0; k < whole; k += FC_VLEN) acc = FC_VFMA(FC_VLOAD(a + k), FC_VLOAD(wt + k), acc);
            if (rest) acc = FC_VFMA(FC_VLOAD_N(a + whole, rest), FC_VLOAD_N(wt + whole, rest), acc);
        }
        y[q0] = FC_DOT_NAME(dot_lanes)(acc);
    }
}

#undef FC_DOT_CAT_
#undef FC_DOT_CAT
#undef FC_DOT_NAME
#undef FC_DOT_UNROLL
