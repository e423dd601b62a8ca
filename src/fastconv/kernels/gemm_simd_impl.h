/* GEMM microkernels written once over a small vector abstraction; included by gemm_avx2.c
 * and gemm_avx512.c (once per dtype) so each is compiled with its own ISA flags.
 *
 * The includer defines:
 *   FC_T, FC_SFX          element type and name suffix (f32 / f64)
 *   FC_VT, FC_VLEN        vector type and its number of elements
 *   FC_MR, FC_NV          tile: FC_MR rows x FC_NV vectors (NR = FC_NV * FC_VLEN columns)
 *   FC_VZERO(), FC_VLOAD(p), FC_VSET1(x), FC_VFMA(a, b, c) = a * b + c, FC_VADD(a, b),
 *   FC_VSTORE(p, v), FC_VLOAD_N(p, n) and FC_VSTORE_N(p, v, n) for 0 < n < FC_VLEN elements.
 * The contract of both kernels is in gemm.h. The accumulator array is indexed with
 * constants only after full unrolling, so the compiler keeps it in registers.
 */
#define FC_NR (FC_NV * FC_VLEN)
/* A non-temporal store of an aligned vector (FC_GEMM_STREAM); a plain store where the ISA file
 * defines none (SSE2: its 32-byte tiles are never whole lines, so never streamed). */
#ifndef FC_VSTREAM
#define FC_VSTREAM(p, v) FC_VSTORE(p, v)
#endif
#define FC_CAT_(a, b) a##_##b
#define FC_CAT(a, b) FC_CAT_(a, b)
#define FC_NAME(base) FC_CAT(base, FC_SFX)

#if defined(__GNUC__) && !defined(__clang__)
#define FC_UNROLL _Pragma("GCC unroll 32")
#elif defined(__clang__)
#define FC_UNROLL _Pragma("unroll")
#else
#define FC_UNROLL
#endif
/* A tile kernel called in a loop stays a function of its own: inlined into the loop, its
 * stores spilled the loop's state (mnist_c1 forward 5% slower). */
#if defined(__GNUC__) || defined(__clang__)
#define FC_TILE_FN static __attribute__((noinline))
#else
#define FC_TILE_FN static
#endif

/* Write the accumulators to C: (accumulate ? C : 0) + acc + bias, rectified with FC_GEMM_RELU
 * (gemm.h), rows < m, columns < n. */
static inline void FC_NAME(store_tile)(FC_VT acc[FC_MR][FC_NV], FC_T *c, ptrdiff_t ldc, int m,
                                       int n, int flags, const FC_T *bias)
{
    const int accumulate = flags & FC_GEMM_ACCUMULATE, relu = flags & FC_GEMM_RELU;
    if (m == FC_MR && n == FC_NR && !accumulate) { /* a whole tile (most calls): no branches */
        if (bias != NULL) { /* (no bias: acc itself, not acc + 0, which would turn -0 into +0) */
            FC_VT bias_v[FC_NV];
            FC_UNROLL
            for (int v = 0; v < FC_NV; v++) bias_v[v] = FC_VLOAD(bias + v * FC_VLEN);
            FC_UNROLL
            for (int i = 0; i < FC_MR; i++) {
                FC_UNROLL
                for (int v = 0; v < FC_NV; v++) acc[i][v] = FC_VADD(acc[i][v], bias_v[v]);
            }
        }
        if (relu) { /* the later of +0 and the value where greater or NaN: relu's bits */
            FC_UNROLL
            for (int i = 0; i < FC_MR; i++) {
                FC_UNROLL
                for (int v = 0; v < FC_NV; v++) acc[i][v] = FC_VMAX_NAN(FC_VZERO(), acc[i][v]);
            }
        }
        /* Streamed only where each tile row is whole 64-byte lines: a non-temporal store of
         * part of a line, the rest written later by another tile, is a partial write to
         * memory. (Then every vector is aligned too, as the instruction requires.) */
        if ((flags & FC_GEMM_STREAM) && (uintptr_t)c % 64 == 0 && (ldc * sizeof(FC_T)) % 64 == 0 &&
            (FC_NR * sizeof(FC_T)) % 64 == 0) {
            FC_UNROLL
            for (int i = 0; i < FC_MR; i++) {
                FC_UNROLL
                for (int v = 0; v < FC_NV; v++) FC_VSTREAM(c + (ptrdiff_t)i * ldc + v * FC_VLEN, acc[i][v]);
            }
            return;
        }
        FC_UNROLL
        for (int i = 0; i < FC_MR; i++) {
            FC_UNROLL
            for (int v = 0; v < FC_NV; v++) FC_VSTORE(c + (ptrdiff_t)i * ldc + v * FC_VLEN, acc[i][v]);
        }
        return;
    }
    FC_VT bias_v[FC_NV];
    int count[FC_NV];
    FC_UNROLL
    for (int v = 0; v < FC_NV; v++) {
        int left = n - v * FC_VLEN;
        count[v] = left <= 0 ? 0 : (left >= FC_VLEN ? FC_VLEN : left);
        bias_v[v] = FC_VZERO();
        if (bias != NULL && count[v] == FC_VLEN) bias_v[v] = FC_VLOAD(bias + v * FC_VLEN);
        else if (bias != NULL && count[v] > 0) bias_v[v] = FC_VLOAD_N(bias + v * FC_VLEN, count[v]);
    }
    FC_UNROLL
    for (int i = 0; i < FC_MR; i++) {
        if (i >= m) break;
        FC_T *row = c + (ptrdiff_t)i * ldc;
        FC_UNROLL
        for (int v = 0; v < FC_NV; v++) {
            FC_T *dst = row + v * FC_VLEN;
            FC_VT r = acc[i][v];
            if (count[v] == FC_VLEN) {
                if (accumulate) r = FC_VADD(FC_VLOAD(dst), r);
                if (bias != NULL) r = FC_VADD(r, bias_v[v]);
                if (relu) r = FC_VMAX_NAN(FC_VZERO(), r);
                FC_VSTORE(dst, r);
            } else if (count[v] > 0) {
                if (accumulate) r = FC_VADD(FC_VLOAD_N(dst, count[v]), r);
                if (bias != NULL) r = FC_VADD(r, bias_v[v]);
                if (relu) r = FC_VMAX_NAN(FC_VZERO(), r);
                FC_VSTORE_N(dst, r, count[v]);
            }
        }
    }
}

/* A(i, kk) = a[i * lda + kk]. */
static void FC_NAME(gemm_rowa)(ptrdiff_t k, const FC_T *a, ptrdiff_t lda, const FC_T *b,
                               ptrdiff_t ldb, FC_T *c, ptrdiff_t ldc, int m, int n,
                               int flags, const FC_T *bias)
{
    const FC_T *rows[FC_MR];
    FC_VT acc[FC_MR][FC_NV];
    FC_UNROLL
    for (int i = 0; i < FC_MR; i++) {
        rows[i] = a + (ptrdiff_t)(i < m ? i : m - 1) * lda; /* rows >= m: re-read row m-1 */
        FC_UNROLL
        for (int v = 0; v < FC_NV; v++) acc[i][v] = FC_VZERO();
    }
    for (ptrdiff_t kk = 0; kk < k; kk++) {
        FC_VT bv[FC_NV];
        FC_UNROLL
        for (int v = 0; v < FC_NV; v++) bv[v] = FC_VLOAD(b + kk * ldb + v * FC_VLEN);
        FC_UNROLL
        for (int i = 0; i < FC_MR; i++) {
            FC_VT av = FC_VSET1(rows[i][kk]);
            FC_UNROLL
            for (int v = 0; v < FC_NV; v++) acc[i][v] = FC_VFMA(av, bv[v], acc[i][v]);
        }
    }
    FC_NAME(store_tile)(acc, c, ldc, m, n, flags, bias);
}

/* Indirect: A(i, t * kc + kk) = ind[t * MR + i][a_offset + kk]; B of tap t at b + t * b_tap_stride. */
FC_TILE_FN void FC_NAME(gemm_ind_tile)(ptrdiff_t taps, ptrdiff_t kc, const FC_T *const *ind,
                                          ptrdiff_t a_offset, const FC_T *b, ptrdiff_t b_tap_stride,
                                          FC_T *c, ptrdiff_t ldc, int m, int n, int flags,
                                          const FC_T *bias)
{
    FC_VT acc[FC_MR][FC_NV];
    FC_UNROLL
    for (int i = 0; i < FC_MR; i++) {
        FC_UNROLL
        for (int v = 0; v < FC_NV; v++) acc[i][v] = FC_VZERO();
    }
    for (ptrdiff_t t = 0; t < taps; t++) {
        const FC_T *rows[FC_MR];
        const FC_T *bt = b + t * b_tap_stride;
        FC_UNROLL
        for (int i = 0; i < FC_MR; i++) rows[i] = ind[t * FC_MR + i] + a_offset;
        for (ptrdiff_t kk = 0; kk < kc; kk++) {
            FC_VT bv[FC_NV];
            FC_UNROLL
            for (int v = 0; v < FC_NV; v++) bv[v] = FC_VLOAD(bt + kk * FC_NR + v * FC_VLEN);
            FC_UNROLL
            for (int i = 0; i < FC_MR; i++) {
                FC_VT av = FC_VSET1(rows[i][kk]);
                FC_UNROLL
                for (int v = 0; v < FC_NV; v++) acc[i][v] = FC_VFMA(av, bv[v], acc[i][v]);
            }
        }
    }
    FC_NAME(store_tile)(acc, c, ldc, m, n, flags, bias);
}

/* `tiles` indirect tiles, tile q reading at a_offset + q * a_step, its C rows from
 * c + q * MR * ldc (one call for a run of tiles: no call and set-up per tile). */
static void FC_NAME(gemm_ind)(ptrdiff_t taps, ptrdiff_t kc, const FC_T *const *ind,
                              ptrdiff_t a_offset, ptrdiff_t a_step, ptrdiff_t tiles,
                              const FC_T *b, ptrdiff_t b_tap_stride, FC_T *c, ptrdiff_t ldc, int m,
                              int n, int flags, const FC_T *bias)
{
    for (ptrdiff_t q = 0; q < tiles; q++)
        FC_NAME(gemm_ind_tile)(taps, kc, ind, a_offset + q * a_step, b, b_tap_stride,
                               c + q * FC_MR * ldc, ldc, m, n, flags, bias);
}

/* A(i, kk) = a[kk * lda + i]. */
static void FC_NAME(gemm_cola)(ptrdiff_t k, const FC_T *a, ptrdiff_t lda, const FC_T *b,
                               ptrdiff_t ldb, FC_T *c, ptrdiff_t ldc, int m, int n,
                               int flags, const FC_T *bias)
{
    FC_VT acc[FC_MR][FC_NV];
    FC_UNROLL
    for (int i = 0; i < FC_MR; i++) {
        FC_UNROLL
        for (int v = 0; v < FC_NV; v++) acc[i][v] = FC_VZERO();
    }
    for (ptrdiff_t kk = 0; kk < k; kk++) {
        const FC_T *ak = a + kk * lda;
        FC_VT bv[FC_NV];
        FC_UNROLL
        for (int v = 0; v < FC_NV; v++) bv[v] = FC_VLOAD(b + kk * ldb + v * FC_VLEN);
        FC_UNROLL
        for (int i = 0; i < FC_MR; i++) {
            FC_VT av = FC_VSET1(ak[i]);
            FC_UNROLL
            for (int v = 0; v < FC_NV; v++) acc[i][v] = FC_VFMA(av, bv[v], acc[i][v]);
        }
    }
    FC_NAME(store_tile)(acc, c, ldc, m, n, flags, bias);
}

#undef FC_NR
#undef FC_NAME
#undef FC_UNROLL
#undef FC_TILE_FN
