/* Winograd F(2x2, 3x3) and F(4x4, 3x3) input and output transforms (see
 * conv2d_winograd_impl.h), written once over the vector abstraction of gemm_simd_impl.h and
 * included by every gemm_<isa>.c (once per dtype), so the channel loops run with that file's
 * instruction set. F(2x2) only adds and subtracts, in the same order on every path (same
 * bits on every ISA); F(4x4) multiplies by small integers with FC_VFMA (fused on AVX paths).
 * Contracts are in gemm.h (fc_wino_*_fn).
 *
 * The includer defines FC_T, FC_SFX and FC_VT, FC_VLEN, FC_VLOAD, FC_VSTORE, FC_VADD,
 * FC_VSUB, FC_VFMA, FC_VSET1, FC_VLOAD_N, FC_VSTORE_N (FC_VLEN may be 1 with FC_VT = FC_T).
 */
#define FC_WI_CAT_(a, b) a##_##b
#define FC_WI_CAT(a, b) FC_WI_CAT_(a, b)
#define FC_WI_NAME(base) FC_WI_CAT(base, FC_SFX)

/* Runs BODY(LOAD, STORE) for IDX over [0, N): whole vectors, then one partial vector of the
 * n = N - IDX values left (masked loads/stores). */
#define FC_WI_LOAD_TAIL(p) FC_VLOAD_N(p, n)
#define FC_WI_STORE_TAIL(p, x) FC_VSTORE_N(p, x, n)
#define FC_WI_LANES(IDX, N, BODY)                                                             \
    do {                                                                                      \
        ptrdiff_t IDX = 0;                                                                    \
        for (; IDX + FC_VLEN <= (N); IDX += FC_VLEN) BODY(FC_VLOAD, FC_VSTORE);               \
        if (FC_VLEN > 1 && IDX < (N)) {                                                       \
            const int n = (int)((N) - IDX);                                                   \
            (void)n;                                                                          \
            BODY(FC_WI_LOAD_TAIL, FC_WI_STORE_TAIL);                                          \
        }                                                                                     \
    } while (0)

/* B^T d B of 16 input vectors d[i * 4 + j], written to v[xi * vstride] (xi = i * 4 + j). */
#define FC_WI_INPUT(LOAD, STORE)                                                              \
    do {                                                                                      \
        FC_VT t[16];                                                                          \
        for (int j = 0; j < 4; j++) { /* B^T d: rows d0 - d2, d1 + d2, d2 - d1, d1 - d3 */    \
            const FC_VT d0 = LOAD(src[j] + c), d1 = LOAD(src[4 + j] + c);                    \
            const FC_VT d2 = LOAD(src[8 + j] + c), d3 = LOAD(src[12 + j] + c);               \
            t[j] = FC_VSUB(d0, d2);                                                           \
            t[4 + j] = FC_VADD(d1, d2);                                                       \
            t[8 + j] = FC_VSUB(d2, d1);                                                       \
            t[12 + j] = FC_VSUB(d1, d3);                                                      \
        }                                                                                     \
        for (int i = 0; i < 4; i++) { /* (B^T d) B: the same combination of columns */        \
            FC_T *dst = v + (ptrdiff_t)(i * 4) * vstride + c;                                 \
            STORE(dst, FC_VSUB(t[i * 4], t[i * 4 + 2]));                                      \
            STORE(dst + vstride, FC_VADD(t[i * 4 + 1], t[i * 4 + 2]));                        \
            STORE(dst + 2 * vstride, FC_VSUB(t[i * 4 + 2], t[i * 4 + 1]));                    \
            STORE(dst + 3 * vstride, FC_VSUB(t[i * 4 + 1], t[i * 4 + 3]));                    \
        }                                                                                     \
    } while (0)

static void FC_WI_NAME(wino_input)(const FC_T *const *src, ptrdiff_t C, FC_T *v,
                                   ptrdiff_t vstride)
{
    FC_WI_LANES(c, C, FC_WI_INPUT);
}
#undef FC_WI_INPUT

/* A^T m A + bias of m[xi] = mt[xi * mstride + f .. ], the out_rows x out_cols corner written
 * to y_rows[a] + b * F + f. */
#define FC_WI_OUTPUT(LOAD, STORE)                                                             \
    do {                                                                                      \
        FC_VT r[8];                                                                           \
        for (int j = 0; j < 4; j++) { /* A^T m: rows m0 + m1 + m2, m1 - m2 - m3 */            \
            const FC_VT m0 = LOAD(mt + j * mstride + f);                                      \
            const FC_VT m1 = LOAD(mt + (4 + j) * mstride + f);                                \
            const FC_VT m2 = LOAD(mt + (8 + j) * mstride + f);                                \
            const FC_VT m3 = LOAD(mt + (12 + j) * mstride + f);                               \
            r[j] = FC_VADD(FC_VADD(m0, m1), m2);                                              \
            r[4 + j] = FC_VSUB(FC_VSUB(m1, m2), m3);                                          \
        }                                                                                     \
        const FC_VT b = bias != NULL ? LOAD(bias + f) : FC_VSET1((FC_T)0);                    \
        for (int a = 0; a < out_rows; a++) {                                                  \
            const FC_VT *ra = r + 4 * a;                                                      \
            STORE(y_rows[a] + f, FC_VADD(FC_VADD(FC_VADD(ra[0], ra[1]), ra[2]), b));          \
            if (out_cols > 1)                                                                 \
                STORE(y_rows[a] + F + f, FC_VADD(FC_VSUB(FC_VSUB(ra[1], ra[2]), ra[3]), b));  \
        }                                                                                     \
    } while (0)

static void FC_WI_NAME(wino_output)(const FC_T *mt, ptrdiff_t mstride, ptrdiff_t F,
                                    const FC_T *bias, FC_T *const *y_rows, int out_rows,
                                    int out_cols)
{
    FC_WI_LANES(f, F, FC_WI_OUTPUT);
}
#undef FC_WI_OUTPUT

/* F(4x4, 3x3). B^T of one 6-vector d0..d5 (Lavin & Gray's points 0, +-1, +-2):
 *   4 d0 - 5 d2 + d4,  (d3 + d4) - 4 (d1 + d2),  (d4 - d3) + 4 (d1 - d2),
 *   (d4 - d2) + 2 (d3 - d1),  (d4 - d2) - 2 (d3 - d1),  4 d1 - 5 d3 + d5. */
#define FC_WI_BT6(d0, d1, d2, d3, d4, d5, o, s)                                              \
    do {                                                                                     \
        const FC_VT four = FC_VSET1((FC_T)4), mfour = FC_VSET1((FC_T)-4);                    \
        const FC_VT mfive = FC_VSET1((FC_T)-5);                                              \
        const FC_VT two = FC_VSET1((FC_T)2), mtwo = FC_VSET1((FC_T)-2);                      \
        const FC_VT d42 = FC_VSUB(d4, d2), d31 = FC_VSUB(d3, d1);                            \
        o[0 * (s)] = FC_VFMA(four, d0, FC_VFMA(mfive, d2, d4));                              \
        o[1 * (s)] = FC_VFMA(mfour, FC_VADD(d1, d2), FC_VADD(d3, d4));                       \
        o[2 * (s)] = FC_VFMA(four, FC_VSUB(d1, d2), FC_VSUB(d4, d3));                        \
        o[3 * (s)] = FC_VFMA(two, d31, d42);                                                 \
        o[4 * (s)] = FC_VFMA(mtwo, d31, d42);                                                \
        o[5 * (s)] = FC_VFMA(four, d1, FC_VFMA(mfive, d3, d5));                              \
    } while (0)

#define FC_WI_INPUT6(LOAD, STORE)                                                             \
    do {                                                                                      \
        FC_VT t[36], u[6];                                                                    \
        for (int j = 0; j < 6; j++) { /* B^T d, column j */                                   \
            const FC_VT d0 = LOAD(src[j] + c), d1 = LOAD(src[6 + j] + c);                    \
            const FC_VT d2 = LOAD(src[12 + j] + c), d3 = LOAD(src[18 + j] + c);              \
            const FC_VT d4 = LOAD(src[24 + j] + c), d5 = LOAD(src[30 + j] + c);              \
            FC_VT *o = t + j;                                                                 \
            FC_WI_BT6(d0, d1, d2, d3, d4, d5, o, 6);                                          \
        }                                                                                     \
        for (int i = 0; i < 6; i++) { /* (B^T d) B, row i */                                  \
            const FC_VT *r = t + 6 * i;                                                       \
            FC_WI_BT6(r[0], r[1], r[2], r[3], r[4], r[5], u, 1);                              \
            FC_T *dst = v + (ptrdiff_t)(i * 6) * vstride + c;                                 \
            for (int j = 0; j < 6; j++) STORE(dst + j * vstride, u[j]);                       \
        }                                                                                     \
    } while (0)

static void FC_WI_NAME(wino4_input)(const FC_T *const *src, ptrdiff_t C, FC_T *v,
                                    ptrdiff_t vstride)
{
    FC_WI_LANES(c, C, FC_WI_INPUT6);
}
#undef FC_WI_INPUT6
#undef FC_WI_BT6

/* A^T of one 6-vector m0..m5: m0 + (m1 + m2) + (m3 + m4),  (m1 - m2) + 2 (m3 - m4),
 * (m1 + m2) + 4 (m3 + m4),  (m1 - m2) + 8 (m3 - m4) + m5. */
#define FC_WI_AT6(m0, m1, m2, m3, m4, m5, o, s)                                              \
    do {                                                                                     \
        const FC_VT p12 = FC_VADD(m1, m2), n12 = FC_VSUB(m1, m2);                            \
        const FC_VT p34 = FC_VADD(m3, m4), n34 = FC_VSUB(m3, m4);                            \
        o[0 * (s)] = FC_VADD(FC_VADD(m0, p12), p34);                                         \
        o[1 * (s)] = FC_VFMA(FC_VSET1((FC_T)2), n34, n12);                                   \
        o[2 * (s)] = FC_VFMA(FC_VSET1((FC_T)4), p34, p12);                                   \
        o[3 * (s)] = FC_VADD(FC_VFMA(FC_VSET1((FC_T)8), n34, n12), m5);                      \
    } while (0)

#define FC_WI_OUTPUT6(LOAD, STORE)                                                            \
    do {                                                                                      \
        FC_VT r[24], o[4];                                                                    \
        for (int j = 0; j < 6; j++) { /* A^T m, column j */                                   \
            const FC_T *mj = mt + j * mstride + f;                                            \
            FC_VT *rj = r + j;                                                                \
            FC_WI_AT6(LOAD(mj), LOAD(mj + 6 * mstride), LOAD(mj + 12 * mstride),              \
                      LOAD(mj + 18 * mstride), LOAD(mj + 24 * mstride),                       \
                      LOAD(mj + 30 * mstride), rj, 6);                                        \
        }                                                                                     \
        const FC_VT b = bias != NULL ? LOAD(bias + f) : FC_VSET1((FC_T)0);                    \
        for (int a = 0; a < out_rows; a++) { /* (A^T m) A, row a */                           \
            const FC_VT *ra = r + 6 * a;                                                      \
            FC_WI_AT6(ra[0], ra[1], ra[2], ra[3], ra[4], ra[5], o, 1);                        \
            for (int bcol = 0; bcol < out_cols; bcol++)                                       \
                STORE(y_rows[a] + bcol * F + f, FC_VADD(o[bcol], b));                         \
        }                                                                                     \
    } while (0)

static void FC_WI_NAME(wino4_output)(const FC_T *mt, ptrdiff_t mstride, ptrdiff_t F,
                                     const FC_T *bias, FC_T *const *y_rows, int out_rows,
                                     int out_cols)
{
    FC_WI_LANES(f, F, FC_WI_OUTPUT6);
}
#undef FC_WI_OUTPUT6
#undef FC_WI_AT6

/* Weight gradient: A e A^T of an m x m block of output gradients (the transpose of the
 * forward's output transform). m = 2: e0, e0 + e1, e0 - e1, -e1. m = 4: e0, (e0 + e2) +
 * (e1 + e3), (e0 + e2) - (e1 + e3), (e0 + 4 e2) + 2 (e1 + 4 e3), (e0 + 4 e2) - 2 (e1 + 4 e3), e3. */
#define FC_WI_A2(e0, e1, o, s)                                                                \
    do {                                                                                      \
        o[0 * (s)] = e0;                                                                      \
        o[1 * (s)] = FC_VADD(e0, e1);                                                         \
        o[2 * (s)] = FC_VSUB(e0, e1);                                                         \
        o[3 * (s)] = FC_VSUB(FC_VSET1((FC_T)0), e1);                                          \
    } while (0)
#define FC_WI_A4(e0, e1, e2, e3, o, s)                                                        \
    do {                                                                                      \
        const FC_VT four = FC_VSET1((FC_T)4), two = FC_VSET1((FC_T)2);                        \
        const FC_VT p02 = FC_VADD(e0, e2), p13 = FC_VADD(e1, e3);                             \
        const FC_VT q = FC_VFMA(four, e2, e0), r = FC_VFMA(four, e3, e1);                     \
        o[0 * (s)] = e0;                                                                      \
        o[1 * (s)] = FC_VADD(p02, p13);                                                       \
        o[2 * (s)] = FC_VSUB(p02, p13);                                                       \
        o[3 * (s)] = FC_VFMA(two, r, q);                                                      \
        o[4 * (s)] = FC_VFMA(FC_VSET1((FC_T)-2), r, q);                                       \
        o[5 * (s)] = e3;                                                                      \
    } while (0)

/* d[xi * xi_stride + (f / nr) * panel_stride + f % nr] = (A e_f A^T)[xi] for f < F, where
 * e_f[i][j] = src[i * m + j][f] (nr a multiple of the vector length). */
#define FC_WI_DY(M, A, LOAD, STORE)                                                           \
    do {                                                                                      \
        FC_VT t[(M + 2) * M], u[M + 2];                                                       \
        FC_T *dst = d + (f / nr) * panel_stride + f % nr;                                     \
        for (int j = 0; j < M; j++) { /* A e, column j */                                     \
            FC_VT e[M];                                                                       \
            for (int i = 0; i < M; i++) e[i] = LOAD(src[i * M + j] + f);                      \
            FC_VT *o = t + j;                                                                 \
            A(o, M);                                                                          \
        }                                                                                     \
        for (int i = 0; i < M + 2; i++) { /* (A e) A^T, row i */                              \
            const FC_VT *e = t + M * i;                                                       \
            A(u, 1);                                                                          \
            for (int j = 0; j < M + 2; j++)                                                   \
                STORE(dst + (ptrdiff_t)(i * (M + 2) + j) * xi_stride, u[j]);                  \
        }                                                                                     \
    } while (0)
#define FC_WI_A2E(o, s) FC_WI_A2(e[0], e[1], o, s)
#define FC_WI_A4E(o, s) FC_WI_A4(e[0], e[1], e[2], e[3], o, s)

#define FC_WI_DY2(LOAD, STORE) FC_WI_DY(2, FC_WI_A2E, LOAD, STORE)
#define FC_WI_DY4(LOAD, STORE) FC_WI_DY(4, FC_WI_A4E, LOAD, STORE)
#define FC_WI_DY_FN(NAME, BODY)                                                               \
    static void FC_WI_NAME(NAME)(const FC_T *const *src, ptrdiff_t F, FC_T *d,                \
                                 ptrdiff_t xi_stride, ptrdiff_t nr, ptrdiff_t panel_stride)   \
    {                                                                                         \
        FC_WI_LANES(f, F, BODY);                                                              \
    }
FC_WI_DY_FN(wino_dy, FC_WI_DY2)
FC_WI_DY_FN(wino4_dy, FC_WI_DY4)
/* Kernel transforms (fc_wino_kernel_fn, fc_wino_kernel_grad_fn), in double over n lanes at
 * once, in plain loops that this file's flags vectorise (the SSE2 baseline's two lanes made
 * U's packing most of a call with few tiles). G's rows are written out by their structure:
 * F(2x2): g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2 (halving is exact: the bits of the
 * dense product); F(4x4): g0 / 4, -(g0 + g1 + g2) / 6, -(g0 - g1 + g2) / 6, g0 / 24 + g1 / 12
 * + g2 / 6, g0 / 24 - g1 / 12 + g2 / 6, g2. */
#ifndef FC_WINO_G_ROWS
#define FC_WINO_G_ROWS
/* r[i * rs + e] = (G (g0, g1, g2)^T)[i] (i < a) */
static inline void wino_g_rows(int a, const double *restrict g0, const double *restrict g1,
                               const double *restrict g2, double *restrict r, ptrdiff_t rs,
                               ptrdiff_t n)
{
    if (a == 4) {
        for (ptrdiff_t e = 0; e < n; e++) {
            r[e] = g0[e];
            r[rs + e] = 0.5 * ((g0[e] + g1[e]) + g2[e]);
            r[2 * rs + e] = 0.5 * ((g0[e] - g1[e]) + g2[e]);
            r[3 * rs + e] = g2[e];
        }
        return;
    }
    for (ptrdiff_t e = 0; e < n; e++) {
        const double s = g0[e] + g2[e], q = g0[e] * (1.0 / 24) + g2[e] * (1.0 / 6);
        const double h = g1[e] * (1.0 / 12);
        r[e] = g0[e] * 0.25;
        r[rs + e] = (s + g1[e]) * (-1.0 / 6);
        r[2 * rs + e] = (s - g1[e]) * (-1.0 / 6);
        r[3 * rs + e] = q + h;
        r[4 * rs + e] = q - h;
        r[5 * rs + e] = g2[e];
    }
}

/* r[k * rs + e] = (G^T (q_0 .. q_{a-1})^T)[k] (k < 3), q_i = q[i * qs + e] */
static inline void wino_gt_rows(int a, const double *restrict q, ptrdiff_t qs,
                                double *restrict r, ptrdiff_t rs, ptrdiff_t n)
{
    if (a == 4) {
        for (ptrdiff_t e = 0; e < n; e++) {
            const double p = q[qs + e] + q[2 * qs + e];
            r[e] = q[e] + 0.5 * p;
            r[rs + e] = 0.5 * (q[qs + e] - q[2 * qs + e]);
            r[2 * rs + e] = 0.5 * p + q[3 * qs + e];
        }
        return;
    }
    for (ptrdiff_t e = 0; e < n; e++) {
        const double s12 = q[qs + e] + q[2 * qs + e], d12 = q[qs + e] - q[2 * qs + e];
        const double s34 = q[3 * qs + e] + q[4 * qs + e], d34 = q[3 * qs + e] - q[4 * qs + e];
        r[e] = (q[e] * 0.25 - s12 * (1.0 / 6)) + s34 * (1.0 / 24);
        r[rs + e] = d34 * (1.0 / 12) - d12 * (1.0 / 6);
        r[2 * rs + e] = (s34 - s12) * (1.0 / 6) + q[5 * qs + e];
    }
}
#endif

static void FC_WI_NAME(wino_kernel)(const FC_T *w, int transposed, ptrdiff_t C, ptrdiff_t F,
                                    int a, ptrdiff_t nr, ptrdiff_t panels, ptrdiff_t c,
                                    ptrdiff_t pj, FC_T *upack)
{
    const ptrdiff_t f0 = pj * nr, cols = F - f0 < nr ? F - f0 : nr;
    double g[9][FC_MAX_NR], t[6][3][FC_MAX_NR], u[6][FC_MAX_NR]; /* t = G g per kernel column */
    for (int tap = 0; tap < 9; tap++) {
        if (transposed) {
            const FC_T *src = w + ((ptrdiff_t)(8 - tap) * F + f0) * C + c;
            for (ptrdiff_t j = 0; j < cols; j++) g[tap][j] = (double)src[j * C];
        } else {
            const FC_T *src = w + ((ptrdiff_t)tap * C + c) * F + f0;
            for (ptrdiff_t j = 0; j < cols; j++) g[tap][j] = (double)src[j];
        }
        for (ptrdiff_t j = cols; j < nr; j++) g[tap][j] = 0;
    }
    for (int k = 0; k < 3; k++) wino_g_rows(a, g[k], g[3 + k], g[6 + k], t[0][k], 3 * FC_MAX_NR, nr);
    for (int i = 0; i < a; i++) {
        wino_g_rows(a, t[i][0], t[i][1], t[i][2], u[0], FC_MAX_NR, nr);
        for (int l = 0; l < a; l++) {
            FC_T *dst = upack + (((ptrdiff_t)(i * a + l) * panels + pj) * C + c) * nr;
            for (ptrdiff_t j = 0; j < nr; j++) dst[j] = (FC_T)u[l][j];
        }
    }
}

static void FC_WI_NAME(wino_kernel_grad)(const FC_T *q, ptrdiff_t qs, int a, FC_T *dw,
                                         ptrdiff_t ds, ptrdiff_t n)
{
    double qr[6][FC_WINO_RUN], t[6][3][FC_WINO_RUN], o[3][FC_WINO_RUN]; /* t = Q G */
    for (int r = 0; r < a; r++) {
        for (int s = 0; s < a; s++)
            for (ptrdiff_t e = 0; e < n; e++) qr[s][e] = (double)q[(ptrdiff_t)(r * a + s) * qs + e];
        wino_gt_rows(a, qr[0], FC_WINO_RUN, t[r][0], FC_WINO_RUN, n);
    }
    for (int j = 0; j < 3; j++) {
        wino_gt_rows(a, t[0][j], 3 * FC_WINO_RUN, o[0], FC_WINO_RUN, n);
        for (int i = 0; i < 3; i++)
            for (ptrdiff_t e = 0; e < n; e++) dw[(ptrdiff_t)(i * 3 + j) * ds + e] = (FC_T)o[i][e];
    }
}

#undef FC_WI_DY2
#undef FC_WI_DY4
#undef FC_WI_DY_FN
#undef FC_WI_A2E
#undef FC_WI_A4E
#undef FC_WI_DY
#undef FC_WI_A2
#undef FC_WI_A4
#undef FC_WI_LANES
#undef FC_WI_LOAD_TAIL
#undef FC_WI_STORE_TAIL
#undef FC_WI_NAME
