/* Partial vectors: loads and stores of the first n lanes, 0 < n < the vector's width, as
 * 128-bit / 64-bit / scalar pieces from the binary digits of n: AMD's Zen cores run
 * vmaskmovps / vmaskmovpd stores as long microcoded sequences, SSE2 has no masked load or
 * store, and a memcpy of n values is a libc call per partial vector. No byte past the n
 * values is read or written. Shared by the GEMM kernels (gemm_avx2.c, gemm_generic.c) and the
 * pooling kernels (pool2d_impl.h). Doubles go through as pairs of floats: loads and stores
 * move bits, not values. */
#ifndef FASTCONV_SIMD_TAIL_H
#define FASTCONV_SIMD_TAIL_H

#include <stddef.h>

#if defined(__SSE2__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 2)
#include <immintrin.h>

/* The first n < 4 floats at q into a 128-bit vector; lanes n.. are 0. */
static inline __m128 fc_load_low_ps(const float *q, ptrdiff_t n)
{
    /* (__m128i accesses may alias anything) */
    const __m128 low = n >= 2 ? _mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)q)) : _mm_load_ss(q);
    return n == 3 ? _mm_movelh_ps(low, _mm_load_ss(q + 2)) : low;
}

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

#endif /* FASTCONV_SIMD_TAIL_H */
