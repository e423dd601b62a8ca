/* Kernels of the flat-row convolution (driver and layout: conv2d_flat_impl.h), written once
 * over the vector abstraction of gemm_simd_impl.h and included by every ISA file once per
 * dtype, so they run with that file's instruction set. Contracts are in gemm.h
 * (fc_flat_*_fn).
 *
 * The vector lanes run along an output row in NHWC order (pixel-major, filter-minor), so a
 * layer with few filters (6) or few input channels (1-3) fills every lane, and the row is
 * stored with plain contiguous stores. A tap's weights form a pattern of `period` vectors
 * (lane e holds the weight of filter e mod F) that repeats along the row; a block of
 * accumulators is a whole number of periods, so each pattern vector is loaded once per tap
 * and reused by every period of the block.
 *
 * Also two vector helpers of the other drivers: the run addition of the input gradient's
 * col2im (add_into) and the bias gradient's column sums (add_rows).
 *
 * The includer defines FC_T, FC_SFX, FC_VT, FC_VLEN, FC_VZERO, FC_VLOAD, FC_VSET1, FC_VFMA,
 * FC_VADD, FC_VSTORE, FC_VLOAD_N, FC_VSTORE_N (FC_VLEN may be 1 with FC_VT = FC_T), and
 * FC_FLAT_REGS, the vector registers of the ISA.
 */
#define FC_FL_CAT_(a, b) a##_##b
#define FC_FL_CAT(a, b) FC_FL_CAT_(a, b)
#define FC_FL_NAME(base) FC_FL_CAT(base, FC_SFX)

#if defined(__GNUC__) && !defined(__clang__)
#define FC_FL_UNROLL _Pragma("GCC unroll 32")
#define FC_FL_INLINE static inline __attribute__((always_inline))
#elif defined(__clang__)
#define FC_FL_UNROLL _Pragma("unroll")
#define FC_FL_INLINE static inline __attribute__((always_inline))
#else
#define FC_FL_UNROLL
#define FC_FL_INLINE static inline
#endif

/* Register barriers: without them GCC keeps the 24 block offsets (e0 + a * VL) in integer
 * registers (spilling them) and re-reads the pattern vector from memory for every FMA, two
 * loads per multiply-add; an opaque pointer makes the offsets constants, an opaque pattern
 * vector stays in its register. */
#if defined(__GNUC__) && FC_VLEN > 1
#define FC_FL_OPAQUE_PTR(p) __asm__("" : "+r"(p))
#define FC_FL_OPAQUE_VEC(v) __asm__("" : "+v"(v))
#else
#define FC_FL_OPAQUE_PTR(p) ((void)0)
#define FC_FL_OPAQUE_VEC(v) ((void)0)
#endif

/* At most 24 accumulators; fewer when the pattern vectors (P) and a loaded operand must fit
 * the register file beside them. Always a whole number of periods, at least one. */
#define FC_FL_MIN(a, b) ((a) < (b) ? (a) : (b))
#define FC_FL_BLOCK(P, SPARE)                                                                 \
    ((P) * (FC_FL_MIN(24 / (P), (FC_FLAT_REGS - (SPARE) - (P)) / (P)) < 1                     \
                ? 1                                                                           \
                : FC_FL_MIN(24 / (P), (FC_FLAT_REGS - (SPARE) - (P)) / (P))))

/* out[e] = bpat[e mod PV] + sum_t src[t][e] * wpat[t * PV + e mod PV] for begin <= e < len
 * (PV = P * FC_VLEN), blocks of A vectors; a partial last block stores only its first len
 * values but reads whole blocks (the sources carry slack). */
FC_FL_INLINE void FC_FL_NAME(flat_conv_p)(ptrdiff_t taps, const FC_T *const *src,
                                          const FC_T *wpat, const FC_T *bpat, FC_T *out,
                                          ptrdiff_t begin, ptrdiff_t len, const int P)
{
    enum { VL = FC_VLEN };
    const int A = FC_FL_BLOCK(P, 2);
    for (ptrdiff_t e0 = begin; e0 < len; e0 += (ptrdiff_t)A * VL) {
        FC_VT acc[24];
        FC_FL_UNROLL
        for (int a = 0; a < A; a++) acc[a] = bpat != NULL ? FC_VLOAD(bpat + (a % P) * VL) : FC_VZERO();
        const FC_T *wt = wpat;
        for (ptrdiff_t t = 0; t < taps; t++, wt += P * VL) {
            const FC_T *s = src[t] + e0;
            FC_FL_OPAQUE_PTR(s);
            FC_FL_UNROLL
            for (int q = 0; q < P; q++) {
                FC_VT wv = FC_VLOAD(wt + q * VL);
                FC_FL_OPAQUE_VEC(wv);
                FC_FL_UNROLL
                for (int a = q; a < A; a += P) acc[a] = FC_VFMA(FC_VLOAD(s + a * VL), wv, acc[a]);
            }
        }
        FC_FL_UNROLL
        for (int a = 0; a < A; a++) {
            const ptrdiff_t at = e0 + (ptrdiff_t)a * VL, left = len - at;
            if (left >= VL) FC_VSTORE(out + at, acc[a]);
            else if (left > 0) FC_VSTORE_N(out + at, acc[a], (int)left);
        }
    }
}

/* CALL(P) with the period as a constant (1..8), so the blocks unroll with their accumulators
 * in registers. */
#define FC_FL_BY_PERIOD(period, CALL)                                                         \
    switch (period) {                                                                         \
    case 1: CALL(1); break;                                                                   \
    case 2: CALL(2); break;                                                                   \
    case 3: CALL(3); break;                                                                   \
    case 4: CALL(4); break;                                                                   \
    case 5: CALL(5); break;                                                                   \
    case 6: CALL(6); break;                                                                   \
    case 7: CALL(7); break;                                                                   \
    default: CALL(8); break;                                                                  \
    }

#if FC_FLAT_REGS >= 32
/* Two wide rows per block, where the kernel rows' sources are stacked one wide row apart
 * (src[t + row_taps] == src[t] + ld; flat_rows_stacked: in practice stride and dilation 1
 * down the height, or one kernel row): the vector read at input row r for the taps of kernel
 * row i serves output row r - i. A block holds A vectors of wide row 2k (set 0) and the same
 * A of row 2k + 1 (set 1); input row r of the pair then feeds set 0 with kernel row r's taps
 * and set 1 with row r - 1's, so each load does two multiply-adds where it did one (LeNet's
 * 5x5: 30 loads per 50 where there were 50). Each output still adds its taps in tap order from
 * bpat: the one-row kernel's bits. 2 x 12 accumulators, the two pattern vectors of the tap and
 * the loaded one fit the 32 registers; a block past the row's end computes (and stores) the
 * next row's values, which are the same. */
#define FC_FL_PAIR_BLOCK(P) ((P) * (12 / (P)))

/* Kernel row taps u < row_taps, source row_src[u] + at: set 0 with patterns w0, set 1 with
 * w1 (SET0 / SET1 constants: the first and last input rows of a pair feed one set). */
FC_FL_INLINE void FC_FL_NAME(flat_pair_row)(const FC_T *const *row_src, ptrdiff_t at,
                                            ptrdiff_t row_taps, const FC_T *w0, const FC_T *w1,
                                            FC_VT *acc0, FC_VT *acc1, const int P,
                                            const int SET0, const int SET1)
{
    enum { VL = FC_VLEN };
    const int A = FC_FL_PAIR_BLOCK(P);
    for (ptrdiff_t u = 0; u < row_taps; u++, w0 += P * VL, w1 += P * VL) {
        const FC_T *s = row_src[u] + at;
        FC_FL_OPAQUE_PTR(s);
        FC_FL_UNROLL
        for (int q = 0; q < P; q++) {
            FC_VT wv0 = SET0 ? FC_VLOAD(w0 + q * VL) : FC_VZERO();
            FC_VT wv1 = SET1 ? FC_VLOAD(w1 + q * VL) : FC_VZERO();
            FC_FL_OPAQUE_VEC(wv0);
            FC_FL_OPAQUE_VEC(wv1);
            FC_FL_UNROLL
            for (int a = q; a < A; a += P) {
                FC_VT v = FC_VLOAD(s + a * VL);
                if (SET0 && SET1) FC_FL_OPAQUE_VEC(v); /* one load for both, not one each */
                if (SET0) acc0[a] = FC_VFMA(v, wv0, acc0[a]);
                if (SET1) acc1[a] = FC_VFMA(v, wv1, acc1[a]);
            }
        }
    }
}

/* Pairs of wide rows of out (len values, rows ld apart) for kh kernel rows of row_taps taps
 * each; returns the values done (whole pairs), 0 where the rows are too short for the blocks
 * (the blocks of a row are whole: more than an eighth past its end would cost more than the
 * loads save; LeNet's input gradient, rows of 36 values, ran at half speed). */
FC_FL_INLINE ptrdiff_t FC_FL_NAME(flat_conv_pairs_p)(ptrdiff_t kh, ptrdiff_t row_taps,
                                                     const FC_T *const *src, const FC_T *wpat,
                                                     const FC_T *bpat, FC_T *out, ptrdiff_t len,
                                                     ptrdiff_t ld, const int P)
{
    enum { VL = FC_VLEN };
    const int A = FC_FL_PAIR_BLOCK(P);
    const ptrdiff_t block = (ptrdiff_t)A * VL, pairs = len / ld / 2;
    const ptrdiff_t wrow = row_taps * P * VL; /* a kernel row's patterns */
    if ((ld + block - 1) / block * block - ld > ld / 8) return 0;
    for (ptrdiff_t k = 0; k < pairs; k++)
        for (ptrdiff_t e0 = 2 * k * ld; e0 < (2 * k + 1) * ld; e0 += (ptrdiff_t)A * VL) {
            FC_VT acc0[12], acc1[12];
            FC_FL_UNROLL
            for (int a = 0; a < A; a++)
                acc0[a] = acc1[a] = bpat != NULL ? FC_VLOAD(bpat + (a % P) * VL) : FC_VZERO();
            FC_FL_NAME(flat_pair_row)(src, e0, row_taps, wpat, wpat, acc0, acc1, P, 1, 0);
            for (ptrdiff_t r = 1; r < kh; r++)
                FC_FL_NAME(flat_pair_row)(src + r * row_taps, e0, row_taps, wpat + r * wrow,
                                          wpat + (r - 1) * wrow, acc0, acc1, P, 1, 1);
            /* input row kh: one wide row below kernel row kh - 1's sources */
            FC_FL_NAME(flat_pair_row)(src + (kh - 1) * row_taps, e0 + ld, row_taps, wpat,
                                      wpat + (kh - 1) * wrow, acc0, acc1, P, 0, 1);
            FC_FL_UNROLL
            for (int a = 0; a < A; a++) {
                const ptrdiff_t at = e0 + (ptrdiff_t)a * VL, left0 = len - at, left1 = left0 - ld;
                if (left0 >= VL) FC_VSTORE(out + at, acc0[a]);
                else if (left0 > 0) FC_VSTORE_N(out + at, acc0[a], (int)left0);
                if (left1 >= VL) FC_VSTORE(out + at + ld, acc1[a]);
                else if (left1 > 0) FC_VSTORE_N(out + at + ld, acc1[a], (int)left1);
            }
        }
    return 2 * pairs * ld;
}
#endif

static void FC_FL_NAME(flat_conv)(ptrdiff_t taps, const FC_T *const *src, const FC_T *wpat,
                                  int period, const FC_T *bpat, FC_T *out, ptrdiff_t len,
                                  ptrdiff_t row_taps, ptrdiff_t ld)
{
    ptrdiff_t begin = 0;
#if FC_FLAT_REGS >= 32
    if (ld > 0) {
#define FC_FL_PAIRS(P) \
    begin = FC_FL_NAME(flat_conv_pairs_p)(taps / row_taps, row_taps, src, wpat, bpat, out, len, ld, P)
        FC_FL_BY_PERIOD(period, FC_FL_PAIRS)
#undef FC_FL_PAIRS
    }
#else
    (void)row_taps;
    (void)ld;
#endif
#define FC_FL_CONV(P) FC_FL_NAME(flat_conv_p)(taps, src, wpat, bpat, out, begin, len, P)
    FC_FL_BY_PERIOD(period, FC_FL_CONV)
#undef FC_FL_CONV
}

/* Vector q of the block at e0 of a row of len values: whole, partial (zeros past len) or
 * zero, so lanes past the row add nothing (not even inf * 0). */
FC_FL_INLINE FC_VT FC_FL_NAME(flat_load_part)(const FC_T *row, ptrdiff_t at, ptrdiff_t len)
{
    const ptrdiff_t left = len - at;
    if (left >= FC_VLEN) return FC_VLOAD(row + at);
    if (left > 0) return FC_VLOAD_N(row + at, (int)left);
    return FC_VZERO();
}

/* acc[t * PV + i] += sum over rows r < rows and e < len, e = i mod PV, of
 * src[t][offset + r * src_ld + e] * dy[r * dy_ld + e], for G taps at a time (their
 * accumulators stay in registers over all the rows: a row holds only a few periods), then
 * the taps left one by one. */
FC_FL_INLINE void FC_FL_NAME(flat_dw_taps)(const FC_T *const *src, ptrdiff_t offset, ptrdiff_t src_ld,
                                           const FC_T *dy, ptrdiff_t dy_ld, ptrdiff_t rows,
                                           ptrdiff_t len, FC_T *acc_out, const int P, const int G)
{
    enum { VL = FC_VLEN };
    const ptrdiff_t PV = (ptrdiff_t)P * VL, whole = len / PV * PV;
    FC_VT acc[24];
    FC_FL_UNROLL
    for (int a = 0; a < G * P; a++) acc[a] = FC_VZERO();
    for (ptrdiff_t r = 0; r < rows; r++, offset += src_ld, dy += dy_ld) {
        ptrdiff_t e0 = 0;
        for (; e0 < whole; e0 += PV) {
            FC_VT d[8];
            FC_FL_UNROLL
            for (int q = 0; q < P; q++) {
                d[q] = FC_VLOAD(dy + e0 + q * VL);
                FC_FL_OPAQUE_VEC(d[q]);
            }
            FC_FL_UNROLL
            for (int g = 0; g < G; g++) {
                const FC_T *s = src[g] + offset + e0;
                FC_FL_OPAQUE_PTR(s);
                FC_FL_UNROLL
                for (int q = 0; q < P; q++)
                    acc[g * P + q] = FC_VFMA(FC_VLOAD(s + q * VL), d[q], acc[g * P + q]);
            }
        }
        if (e0 < len) { /* the partial last period */
            FC_VT d[8];
            FC_FL_UNROLL
            for (int q = 0; q < P; q++) d[q] = FC_FL_NAME(flat_load_part)(dy, e0 + q * VL, len);
            FC_FL_UNROLL
            for (int g = 0; g < G; g++) {
                FC_FL_UNROLL
                for (int q = 0; q < P; q++)
                    acc[g * P + q] = FC_VFMA(FC_FL_NAME(flat_load_part)(src[g] + offset, e0 + q * VL, len),
                                             d[q], acc[g * P + q]);
            }
        }
    }
    FC_FL_UNROLL
    for (int g = 0; g < G; g++) {
        FC_FL_UNROLL
        for (int q = 0; q < P; q++) {
            FC_T *dst = acc_out + g * PV + q * VL;
            FC_VSTORE(dst, FC_VADD(FC_VLOAD(dst), acc[g * P + q]));
        }
    }
}

FC_FL_INLINE void FC_FL_NAME(flat_dw_p)(ptrdiff_t taps, const FC_T *const *src, ptrdiff_t offset,
                                        ptrdiff_t src_ld, const FC_T *dy, ptrdiff_t dy_ld,
                                        ptrdiff_t rows, ptrdiff_t len, FC_T *acc_out,
                                        FC_T *db_out, const int P)
{
    const int G = FC_FL_BLOCK(P, 1 + P) / P;
    const ptrdiff_t PV = (ptrdiff_t)P * FC_VLEN;
#define FC_FL_TAPS(S, ACC, NG) \
    FC_FL_NAME(flat_dw_taps)(S, offset, src_ld, dy, dy_ld, rows, len, ACC, P, NG)
    ptrdiff_t t = 0;
    for (; t + G <= taps; t += G) FC_FL_TAPS(src + t, acc_out + t * PV, G);
    if (2 * (taps - t) > G) { /* many taps left: one group (one pass over dy) padded with
                                * copies of the last tap, whose sums are dropped */
        const ptrdiff_t left = taps - t;
        const FC_T *last[24];
        FC_T sums[24 * FC_VLEN];
        for (int g = 0; g < G; g++) last[g] = src[t + (g < left ? g : left - 1)];
        for (ptrdiff_t e = 0; e < G * PV; e++) sums[e] = 0;
        FC_FL_TAPS(last, sums, G);
        for (ptrdiff_t e = 0; e < left * PV; e++) acc_out[t * PV + e] += sums[e];
        t = taps;
    }
    for (; t < taps; t++) FC_FL_TAPS(src + t, acc_out + t * PV, 1);
#undef FC_FL_TAPS
    if (db_out != NULL) { /* the bias gradient: the same sums with src = 1 */
        FC_VT sum[8];
        FC_FL_UNROLL
        for (int q = 0; q < P; q++) sum[q] = FC_VZERO();
        for (ptrdiff_t r = 0; r < rows; r++)
            for (ptrdiff_t e0 = 0; e0 < len; e0 += PV) {
                FC_FL_UNROLL
                for (int q = 0; q < P; q++)
                    sum[q] = FC_VADD(sum[q], FC_FL_NAME(flat_load_part)(dy + r * dy_ld, e0 + q * FC_VLEN, len));
            }
        FC_FL_UNROLL
        for (int q = 0; q < P; q++)
            FC_VSTORE(db_out + q * FC_VLEN, FC_VADD(FC_VLOAD(db_out + q * FC_VLEN), sum[q]));
    }
}

static void FC_FL_NAME(flat_dw)(ptrdiff_t taps, const FC_T *const *src, ptrdiff_t offset,
                                ptrdiff_t src_ld, const FC_T *dy, ptrdiff_t dy_ld, ptrdiff_t rows,
                                ptrdiff_t len, int period, FC_T *acc_out, FC_T *db_out)
{
#define FC_FL_DW(P) FC_FL_NAME(flat_dw_p)(taps, src, offset, src_ld, dy, dy_ld, rows, len, acc_out, db_out, P)
    FC_FL_BY_PERIOD(period, FC_FL_DW)
#undef FC_FL_DW
}

/* dst[q * R + r] = src[q * stride] for q < n, r < R: one broadcast per value, stored as
 * whole vectors that may overlap the next value's (and write up to FC_VLEN - 1 values past
 * n * R when R < FC_VLEN). */
static void FC_FL_NAME(flat_expand)(const FC_T *src, ptrdiff_t stride, ptrdiff_t n, ptrdiff_t R,
                                    FC_T *dst)
{
    if (R >= FC_VLEN) {
        for (ptrdiff_t q = 0; q < n; q++, dst += R) {
            const FC_VT v = FC_VSET1(src[q * stride]);
            ptrdiff_t r = 0;
            for (; r + FC_VLEN <= R; r += FC_VLEN) FC_VSTORE(dst + r, v);
            if (r < R) FC_VSTORE(dst + R - FC_VLEN, v);
        }
    } else {
        ptrdiff_t q = 0;
#ifdef FC_VPERMUTE
        /* Contiguous values (one channel, stride 1: LeNet's input): G values repeated R times
         * are P whole vectors, each a permutation of one load, where a broadcast store per
         * value wrote across two cache lines each time (LeNet-5's 1 -> 6: 18% of the
         * forward). */
        ptrdiff_t G = FC_VLEN, P = R;
        while (G % 2 == 0 && P % 2 == 0) G /= 2, P /= 2; /* G * R = P * VL, lcm(VL, R) */
        if (stride == 1 && P <= 8) {
            FC_VIT idx[8];
            for (ptrdiff_t k = 0; k < P; k++) idx[k] = FC_VREPEAT_IDX(k, R);
            for (; q + G <= n; q += G, dst += G * R) {
                const FC_VT v = FC_VLOAD_N(src + q, (int)G);
                for (ptrdiff_t k = 0; k < P; k++) FC_VSTORE(dst + k * FC_VLEN, FC_VPERMUTE(v, idx[k]));
            }
        }
#endif
        for (; q < n; q++, dst += R) FC_VSTORE(dst, FC_VSET1(src[q * stride]));
    }
}

/* dst[i] += src[i] for i < n (the col2im run additions of conv2d_impl.h, which the baseline
 * unit would do four floats at a time): whole vectors, then a partial one. */
static void FC_FL_NAME(add_into)(FC_T *dst, const FC_T *src, ptrdiff_t n)
{
    ptrdiff_t i = 0;
    for (; i + FC_VLEN <= n; i += FC_VLEN) FC_VSTORE(dst + i, FC_VADD(FC_VLOAD(dst + i), FC_VLOAD(src + i)));
    if (i < n) {
        const int left = (int)(n - i);
        FC_VSTORE_N(dst + i, FC_VADD(FC_VLOAD_N(dst + i, left), FC_VLOAD_N(src + i, left)), left);
    }
}

/* dst[c] += src[0 * cols + c] + src[1 * cols + c] + ... (rows in order, the sums of a block
 * of columns kept in registers: the bias gradient's column sums of dy). */
static void FC_FL_NAME(add_rows)(FC_T *dst, const FC_T *src, ptrdiff_t rows, ptrdiff_t cols)
{
    enum { NB = 4 }; /* vectors per column block */
    for (ptrdiff_t c0 = 0; c0 < cols; c0 += NB * FC_VLEN) {
        FC_VT acc[NB];
        int nv = 0, tail = 0; /* whole vectors, then values in a partial one */
        for (; nv < NB && c0 + (nv + 1) * FC_VLEN <= cols; nv++) acc[nv] = FC_VLOAD(dst + c0 + nv * FC_VLEN);
        if (nv < NB && c0 + nv * FC_VLEN < cols) {
            tail = (int)(cols - c0 - nv * FC_VLEN);
            acc[nv] = FC_VLOAD_N(dst + c0 + nv * FC_VLEN, tail);
        }
        for (ptrdiff_t r = 0; r < rows; r++) {
            const FC_T *row = src + r * cols + c0;
            for (int v = 0; v < nv; v++) acc[v] = FC_VADD(acc[v], FC_VLOAD(row + v * FC_VLEN));
            if (tail) acc[nv] = FC_VADD(acc[nv], FC_VLOAD_N(row + nv * FC_VLEN, tail));
        }
        for (int v = 0; v < nv; v++) FC_VSTORE(dst + c0 + v * FC_VLEN, acc[v]);
        if (tail) FC_VSTORE_N(dst + c0 + nv * FC_VLEN, acc[nv], tail);
    }
}

/* Weight gradient of a one-channel, stride-1, undilated convolution with F a multiple of the
 * vector length (a first layer of grey images, e.g. 1 -> 32 3x3): see gemm.h's fc_c1_dw_fn.
 * A pass takes a run of up to three taps of one kernel row and up to C1_NV vectors of
 * filters over one output row: the sums stay in registers (loaded from and stored to dw,
 * L1-resident, once per pass), each pixel costs its dy vectors and one broadcast per tap
 * from the framed row, and the passes of one output row re-read its dy from L1. The pass of
 * a filter group's first taps (WB) also sums dy itself into the bias gradient, which a pass
 * over the chunk's dy of its own (add_rows) took a quarter of the time to do. The GEMM path
 * copied each pixel's 3-value runs into patch rows and padded the 9 taps to 12 rows. */
#if FC_FLAT_REGS >= 32
#define FC_FL_C1_NV 4
#else
#define FC_FL_C1_NV 2
#endif
FC_FL_INLINE void FC_FL_NAME(c1_dw_pass)(const FC_T *xr, const FC_T *g, ptrdiff_t F, ptrdiff_t ow_n,
                                         FC_T *dwp, FC_T *dbp, const int TG, const int NV,
                                         const int WB)
{
    FC_VT acc[3][FC_FL_C1_NV], bacc[FC_FL_C1_NV];
    FC_FL_UNROLL
    for (int v = 0; v < NV; v++) {
        FC_FL_UNROLL
        for (int t = 0; t < TG; t++) acc[t][v] = FC_VLOAD(dwp + t * F + v * FC_VLEN);
        if (WB) bacc[v] = FC_VLOAD(dbp + v * FC_VLEN);
    }
    for (ptrdiff_t ow = 0; ow < ow_n; ow++, g += F) {
        FC_VT gv[FC_FL_C1_NV];
        FC_FL_UNROLL
        for (int v = 0; v < NV; v++) {
            gv[v] = FC_VLOAD(g + v * FC_VLEN);
            if (WB) bacc[v] = FC_VADD(bacc[v], gv[v]);
        }
        FC_FL_UNROLL
        for (int t = 0; t < TG; t++) {
            const FC_VT a = FC_VSET1(xr[ow + t]);
            FC_FL_UNROLL
            for (int v = 0; v < NV; v++) acc[t][v] = FC_VFMA(a, gv[v], acc[t][v]);
        }
    }
    FC_FL_UNROLL
    for (int v = 0; v < NV; v++) {
        FC_FL_UNROLL
        for (int t = 0; t < TG; t++) FC_VSTORE(dwp + t * F + v * FC_VLEN, acc[t][v]);
        if (WB) FC_VSTORE(dbp + v * FC_VLEN, bacc[v]);
    }
}

static void FC_FL_NAME(c1_dw)(const FC_T *xf, ptrdiff_t wpc, ptrdiff_t hf, ptrdiff_t oh_n,
                              ptrdiff_t ow_n, ptrdiff_t kh, ptrdiff_t kw, const FC_T *dy,
                              ptrdiff_t F, ptrdiff_t r0, ptrdiff_t r1, FC_T *dw, FC_T *db)
{
    const ptrdiff_t nvec = F / FC_VLEN;
    for (ptrdiff_t e = 0; e < kh * kw * F; e++) dw[e] = (FC_T)0;
    if (db != NULL)
        for (ptrdiff_t f = 0; f < F; f++) db[f] = (FC_T)0;
    for (ptrdiff_t r = r0; r < r1; r++) {
        const FC_T *xrow = xf + ((r / oh_n) * hf + r % oh_n) * wpc; /* framed row of kernel row 0 */
        const FC_T *grow = dy + r * ow_n * F;
        for (ptrdiff_t v0 = 0; v0 < nvec; v0 += FC_FL_C1_NV) {
            const int nv = nvec - v0 < FC_FL_C1_NV ? (int)(nvec - v0) : FC_FL_C1_NV;
            for (ptrdiff_t i = 0; i < kh; i++)
                for (ptrdiff_t j0 = 0; j0 < kw; j0 += 3) {
                    const int tg = kw - j0 < 3 ? (int)(kw - j0) : 3;
                    const int wb = db != NULL && i == 0 && j0 == 0;
                    const FC_T *xr = xrow + i * wpc + j0, *g = grow + v0 * FC_VLEN;
                    FC_T *dwp = dw + (i * kw + j0) * F + v0 * FC_VLEN;
                    FC_T *dbp = wb ? db + v0 * FC_VLEN : NULL;
/* one body per (bias sums, taps, vectors), all constants; nv never exceeds C1_NV (cases past
 * it compile with one vector and are never taken) */
#define FC_FL_C1_CASE(WB, TG, NV)                                                             \
    case ((WB) * 4 + (TG)) * 8 + (NV):                                                        \
        FC_FL_NAME(c1_dw_pass)(xr, g, F, ow_n, dwp, dbp, TG, (NV) <= FC_FL_C1_NV ? (NV) : 1, WB); \
        break;
#define FC_FL_C1_CASES(WB)                                                                    \
    FC_FL_C1_CASE(WB, 1, 1) FC_FL_C1_CASE(WB, 1, 2) FC_FL_C1_CASE(WB, 1, 3) FC_FL_C1_CASE(WB, 1, 4) \
    FC_FL_C1_CASE(WB, 2, 1) FC_FL_C1_CASE(WB, 2, 2) FC_FL_C1_CASE(WB, 2, 3) FC_FL_C1_CASE(WB, 2, 4) \
    FC_FL_C1_CASE(WB, 3, 1) FC_FL_C1_CASE(WB, 3, 2) FC_FL_C1_CASE(WB, 3, 3) FC_FL_C1_CASE(WB, 3, 4)
                    switch ((wb * 4 + tg) * 8 + nv) {
                        FC_FL_C1_CASES(0)
                        FC_FL_C1_CASES(1)
                    default: break;
                    }
#undef FC_FL_C1_CASES
#undef FC_FL_C1_CASE
                }
        }
    }
}
#undef FC_FL_C1_NV

/* The max pooling of the output rows a convolution fused with a pool just computed (see
 * gemm.h's fc_pool_max): each window's values compared in row-major order with FC_VMAX_NAN
 * (the later value where greater or NaN), so the first maximum wins and NaN propagates, as
 * in the pooling kernels; whole vectors of channels, then a partial one unless WHOLE (cols a
 * multiple of the vector length). */
FC_FL_INLINE void FC_FL_NAME(pool_max_windows)(const FC_T *src, ptrdiff_t lds, ptrdiff_t ph,
                                               ptrdiff_t pw, ptrdiff_t windows, ptrdiff_t F,
                                               ptrdiff_t cols, FC_T *dst, const int WHOLE)
{
    for (ptrdiff_t q = 0; q < windows; q++) {
        const FC_T *first = src + q * pw * F;
        FC_T *o = dst + q * F;
        for (ptrdiff_t f = 0; f < cols; f += FC_VLEN) {
            const int n = WHOLE || cols - f >= FC_VLEN ? FC_VLEN : (int)(cols - f);
            FC_VT m = n == FC_VLEN ? FC_VLOAD(first + f) : FC_VLOAD_N(first + f, n);
            for (ptrdiff_t r = 0; r < ph; r++)
                for (ptrdiff_t j = r == 0 ? 1 : 0; j < pw; j++) {
                    const FC_T *v = first + r * lds + j * F + f;
                    m = FC_VMAX_NAN(m, n == FC_VLEN ? FC_VLOAD(v) : FC_VLOAD_N(v, n));
                }
            if (n == FC_VLEN) FC_VSTORE(o + f, m);
            else FC_VSTORE_N(o + f, m, n);
        }
    }
}

static void FC_FL_NAME(pool_max)(const FC_T *src, ptrdiff_t lds, ptrdiff_t ph, ptrdiff_t pw,
                                 ptrdiff_t windows, ptrdiff_t F, ptrdiff_t cols, FC_T *dst)
{
    /* 2 x 2 windows of whole vectors (the common case) with constant extents: the loop with
     * run-time ones took a third of a 1 -> 32 forward with its pool */
    if (ph == 2 && pw == 2 && cols % FC_VLEN == 0)
        FC_FL_NAME(pool_max_windows)(src, lds, 2, 2, windows, F, cols, dst, 1);
    else
        FC_FL_NAME(pool_max_windows)(src, lds, ph, pw, windows, F, cols, dst, 0);
}

#undef FC_FL_BY_PERIOD
#undef FC_FL_OPAQUE_PTR
#undef FC_FL_OPAQUE_VEC
#undef FC_FL_BLOCK
#undef FC_FL_PAIR_BLOCK
#undef FC_FL_MIN
#undef FC_FL_UNROLL
#undef FC_FL_INLINE
#undef FC_FL_NAME
#undef FC_FL_CAT
#undef FC_FL_CAT_
