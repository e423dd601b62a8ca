/* Stores of the first n lanes of a vector, 0 < n < its width, as 128-bit / 64-bit / scalar
 * pieces from the binary digits of n: AMD's Zen cores run vmaskmovps / vmaskmovpd stores as
 * long microcoded sequences, SSE2 has no masked store, and a memcpy of n values is a libc
 * call per partial vector. Shared by the GEMM kernels (gemm_avx2.c) and the pooling kernels
 * (pool2d_impl.h). Doubles go through as pairs of floats: a store moves bits, not values. */
#ifndef FASTCONV_SIMD_TAIL_STORE_H
#define FASTCONV_SIMD_TAIL_STORE_H

#include <stddef.h>

#if defined(__SSE2__) || defined(_M_X64)
#include <immintrin.h>

/* The first n < 4 floats of a 128-bit vector. */
static inline void fc_store_low_ps(float *q, __m128 part, ptrdiff_t n)
{
    if (n & 2) {
        _mm_storel_pi((__m64 *)q, part);
        part = _mm_movehl_ps(part, part);
        q += 2;
    }
    if (n & 1) _mm_store_ss(q, part);
}

#if defined(__AVX__)
/* The first n < 8 floats of a 256-bit vector. */
static inline void fc_store_n256_ps(float *q, __m256 v, ptrdiff_t n)
{
    __m128 part = _mm256_castps256_ps128(v);
    if (n & 4) {
        _mm_storeu_ps(q, part);
        part = _mm256_extractf128_ps(v, 1);
        q += 4;
    }
    fc_store_low_ps(q, part, n & 3);
}
#endif
#endif

#endif /* FASTCONV_SIMD_TAIL_STORE_H */
