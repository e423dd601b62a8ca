/* What the kernels share: the `restrict` spelling, denormal flushing around a kernel, the
 * small-problem thread policy (pool2d.c, batchnorm.c), the non-temporal stores: threshold,
 * whole-line test, vector store, row copy and fence (conv2d.c, batchnorm.c, pool2d.c), and
 * 64-byte aligned allocation (conv2d.c, pool2d.c). */
#ifndef FASTCONV_KERNEL_COMMON_H
#define FASTCONV_KERNEL_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(_MSC_VER) && !defined(__cplusplus)
#define restrict __restrict /* MSVC's C mode spells C99's restrict this way */
#endif

#if defined(_OPENMP)
#include <omp.h>
#endif
#if defined(_MSC_VER)
#include <intrin.h> /* _InterlockedExchangeAdd64 */
#endif

#if defined(__x86_64__) || defined(_M_X64) || defined(__SSE2__)
#include <immintrin.h>
/* Flush denormals to zero (MXCSR FTZ|DAZ) in the calling thread while a kernel runs, and put
 * the caller's mode back afterwards: tiny values near zero would otherwise take the slow
 * microcode path. */
#define FC_FTZ_BEGIN() unsigned int fc_saved_csr_ = _mm_getcsr(); _mm_setcsr(fc_saved_csr_ | 0x8040u)
#define FC_FTZ_END() _mm_setcsr(fc_saved_csr_)
/* Orders this thread's non-temporal stores before what follows: run by each thread that may
 * have streamed, before the barrier after which others read. */
static inline void fc_store_fence(void) { _mm_sfence(); }
#else
#define FC_FTZ_BEGIN() ((void)0)
#define FC_FTZ_END() ((void)0)
static inline void fc_store_fence(void) {}
#endif

/* Outputs of at least this many bytes, written once by a kernel (nothing in it reads them
 * back), are stored with non-temporal stores where whole 64-byte lines are written (the same
 * values): larger than half a typical L3, they would not stay in cache for the next layer
 * anyway, and such a store skips reading each line before writing it. The convolutions'
 * implicit GEMM (64x28x28x64 -> 128 1x1 forward, 25.7 MB, 2 threads: 5.4 -> 4.8 ms), batch
 * norm's elementwise passes (64x32x32x64 forward + backward, 16.8 MB arrays: 2.29 -> 1.96 ms)
 * and the AVX-512 pooling backward of disjoint windows use it; each module keeps its own
 * threshold (fc_swap_stream_min_bytes), with a setter for tests and benchmarks. */
#define FC_STREAM_MIN_BYTES ((ptrdiff_t)16 << 20)

/* *slot = bytes (negative: 0); returns the previous value. The modules' threshold setters. */
static inline ptrdiff_t fc_swap_stream_min_bytes(ptrdiff_t *slot, ptrdiff_t bytes)
{
    const ptrdiff_t previous = *slot;
    *slot = bytes < 0 ? 0 : bytes;
    return previous;
}

/* Whether an output of `bytes` bytes at `out`, in rows `row_bytes` apart, may be written with
 * non-temporal stores: at least min_bytes, and rows of whole 64-byte lines starting on a line.
 * The kernel must then store each line whole, by one thread: a line streamed in part and
 * written in part later would be a partial write to memory. */
static inline int fc_streams_whole_lines(const void *out, ptrdiff_t row_bytes, ptrdiff_t bytes,
                                         ptrdiff_t min_bytes)
{
    return (uintptr_t)out % 64 == 0 && row_bytes % 64 == 0 && bytes >= min_bytes;
}

/* Whether fc_stream_vector has a non-temporal store (x86 with SSE2; MSVC x64 does not define
 * __SSE2__). Elsewhere it is a plain store, and a kernel gains nothing by staging for it. */
#if defined(__SSE2__) || defined(_M_X64)
#define FC_STREAM_STORES 1
#else
#define FC_STREAM_STORES 0
#endif

/* A non-temporal store of the `bytes`-byte vector at v (16, 32 or 64: a constant at every call,
 * so this folds to one instruction) to p, aligned to `bytes`; a plain store where the compiler
 * flags give no such instruction. The bits are stored as they are (an integer store). */
static inline void fc_stream_vector(void *p, const void *v, size_t bytes)
{
#if defined(__AVX512F__)
    if (bytes == 64) {
        __m512i t;
        memcpy(&t, v, 64);
        _mm512_stream_si512((__m512i *)p, t);
        return;
    }
#endif
#if defined(__AVX__)
    if (bytes == 32) {
        __m256i t;
        memcpy(&t, v, 32);
        _mm256_stream_si256((__m256i *)p, t);
        return;
    }
#endif
#if FC_STREAM_STORES
    if (bytes == 16) {
        __m128i t;
        memcpy(&t, v, 16);
        _mm_stream_si128((__m128i *)p, t);
        return;
    }
#endif
    memcpy(p, v, bytes);
}

/* Stores `bytes` bytes (a multiple of 64) from src, or zeros where src is NULL, to dst (on a
 * 64-byte line) with non-temporal stores of the widest vector the compiler flags allow. */
static inline void fc_stream_copy(void *dst, const void *src, size_t bytes)
{
#if defined(__AVX512F__)
    enum { step = 64 };
#elif defined(__AVX__)
    enum { step = 32 };
#else
    enum { step = 16 };
#endif
    static const unsigned char zeros[64];
    unsigned char *d = (unsigned char *)dst;
    const unsigned char *s = (const unsigned char *)src;
    for (size_t at = 0; at < bytes; at += step) fc_stream_vector(d + at, s ? s + at : zeros, step);
}

/* 64-byte aligned allocation (NULL on failure); the malloc'ed pointer is kept just before. */
static inline void *fc_alloc(size_t bytes)
{
    unsigned char *raw = (unsigned char *)malloc(bytes + 64 + sizeof(void *));
    if (raw == NULL) return NULL;
    uintptr_t start = (uintptr_t)(raw + sizeof(void *));
    unsigned char *aligned = (unsigned char *)((start + 63) & ~(uintptr_t)63);
    ((void **)aligned)[-1] = raw;
    return aligned;
}

static inline void fc_free(void *p)
{
    if (p != NULL) free(((void **)p)[-1]);
}

/* Below this many elements per thread, extra threads cost more to wake than they save. */
#define FC_MIN_ELEMS_PER_THREAD 32768

/* Threads worth using for `work` elements (at least 1, at most num_threads). Small problems
 * stay on the calling thread. Results never depend on the thread count. */
static inline int fc_threads_for(ptrdiff_t work, int num_threads)
{
    ptrdiff_t useful = work / FC_MIN_ELEMS_PER_THREAD;
    if (useful < 1) useful = 1;
    return useful < num_threads ? (int)useful : num_threads;
}

/* A team's loop over items [0, n), shared so that each thread keeps to its own part:
 * the items are cut into one contiguous block per thread, as schedule(static) would, and
 * each thread takes chunks from the front of its own block, then, once it is drained, from
 * the other blocks in turn. So the rows a thread writes in one pass are the rows it reads in
 * the next (and those the next layer's thread of the same number reads), and they stay in its
 * core's caches: with schedule(dynamic) they went to whichever thread came first, and when the
 * host ran our two vCPUs on different L3 caches (a core-to-core round trip of ~320 ns instead
 * of ~60 ns, for minutes at a time on the Zen 4 bench host) every such row crossed between
 * them (64x28x28x32 batch norm forward + backward 1.05 ms against 0.43). A thread the host
 * deschedules still has its block finished by the others. Initialised before the parallel
 * region (one per loop); threads beyond FC_SHARE_MAX_BLOCKS share blocks. */
#define FC_SHARE_MAX_BLOCKS 64
#if defined(_MSC_VER)
#define FC_LINE_ALIGNED __declspec(align(64))
#else
#define FC_LINE_ALIGNED __attribute__((aligned(64)))
#endif
typedef struct FC_LINE_ALIGNED {
    struct {
        ptrdiff_t next, end; /* the block's first untaken item; its end */
        char pad[64 - 2 * sizeof(ptrdiff_t)]; /* one line per block: owners do not collide */
    } block[FC_SHARE_MAX_BLOCKS];
    ptrdiff_t chunk;
    double patience; /* see FC_SHARE_PATIENT */
    int blocks;
} fc_share;

/* How long a thread whose own block is drained waits before it takes from another block whose
 * owner is still taking chunks, in chunk-times (the thread's own average; FC_SHARE_MIN_WAIT at
 * least). FC_SHARE_EAGER: not at all (the convolutions: a unit's work is large next to the
 * data it moves). FC_SHARE_PATIENT: the memory-bound passes (batch norm, pooling), where rows
 * that change threads cost as much as the work when the two threads' caches are far apart: an
 * owner that is merely a little behind finishes its block itself; one the host has descheduled
 * (it takes nothing for that long) gets its block finished by the others. 64x28x28x32 batch
 * norm forward + backward, 2 threads, means per call, three builds alternated in one process:
 * across L3s 0.499 / 0.558 / 0.577 ms patient against 0.544 / 0.621 / 0.704 eager (static:
 * 0.474 / - / 0.600), within one L3 0.488 / 0.568 / 0.535 against 0.471 / 0.527 / 0.510. */
#define FC_SHARE_EAGER 0.0
#define FC_SHARE_PATIENT 2.0
#define FC_SHARE_MIN_WAIT 5e-6

static inline void fc_share_init(fc_share *s, ptrdiff_t items, int threads, ptrdiff_t chunk,
                                 double patience)
{
#if !defined(_OPENMP)
    threads = 1; /* one thread runs the loop (and could not wait for another block's owner) */
#endif
    const int blocks = threads < 1 ? 1 : threads > FC_SHARE_MAX_BLOCKS ? FC_SHARE_MAX_BLOCKS
                                                                          : threads;
    s->blocks = blocks;
    s->chunk = chunk < 1 ? 1 : chunk > items ? (items < 1 ? 1 : items) : chunk;
    s->patience = patience;
    for (int b = 0; b < blocks; b++) {
        s->block[b].next = items * b / blocks;
        s->block[b].end = items * (b + 1) / blocks;
    }
}

/* Atomic add returning the old value, load and store of a ptrdiff_t shared by a team (GCC /
 * Clang builtins; MSVC's interlocked functions, as its OpenMP 2.0 has no atomic capture). */
static inline ptrdiff_t fc_share_fetch_add(ptrdiff_t *p, ptrdiff_t v)
{
#if defined(__GNUC__) || defined(__clang__)
    return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
#elif defined(_MSC_VER) && defined(_WIN64)
    return (ptrdiff_t)_InterlockedExchangeAdd64((volatile __int64 *)p, (__int64)v);
#elif defined(_MSC_VER)
    return (ptrdiff_t)_InterlockedExchangeAdd((volatile long *)p, (long)v);
#else
    const ptrdiff_t old = *p; /* (one thread: built without OpenMP) */
    *p += v;
    return old;
#endif
}

static inline ptrdiff_t fc_share_load(const ptrdiff_t *p)
{
#if defined(__GNUC__) || defined(__clang__)
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
#else
    return *(const volatile ptrdiff_t *)p; /* (x86 / x64 MSVC: loads are acquires) */
#endif
}

static inline void fc_share_store(ptrdiff_t *p, ptrdiff_t v)
{
#if defined(__GNUC__) || defined(__clang__)
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
#else
    *(volatile ptrdiff_t *)p = v; /* (x86 / x64 MSVC: stores are releases) */
#endif
}

/* A spinning thread's pause (lets the other hyperthread run, saves power). */
static inline void fc_spin_pause(void)
{
#if defined(__x86_64__) || defined(_M_X64) || defined(__SSE2__)
    _mm_pause();
#endif
}

/* Seconds on a monotonic clock (0 without OpenMP: one thread never waits for another). */
static inline double fc_share_clock(void)
{
#if defined(_OPENMP)
    return omp_get_wtime();
#else
    return 0.0;
#endif
}

/* What a thread knows while it walks a shared loop (private to it). */
typedef struct {
    int more;           /* the loop goes on (FC_SHARE_FOR's condition) */
    int drained;        /* blocks found drained, its own first */
    ptrdiff_t taken;    /* chunks taken from its own block */
    double started;     /* when it took its first chunk; then how long its block took */
    ptrdiff_t seen;     /* the other block's next item when last looked at, and since when */
    double seen_at;
} fc_share_cursor;
#define FC_SHARE_CURSOR_INIT {1, 0, 0, 0.0, -1, 0.0}

/* The share of a memory-bound pass over `items` (batch norm, pooling), patient, in chunks of
 * about an eighth of a thread's block: when the OS deschedules one thread (the host is shared)
 * the others take over its remaining items instead of waiting at the barrier. Every item
 * computes the same thing whichever thread runs it, so results do not depend on the thread
 * count. */
static inline void fc_share_pass_init(fc_share *s, ptrdiff_t items, int threads)
{
    fc_share_init(s, items, threads, items / (8 * (ptrdiff_t)(threads < 1 ? 1 : threads)),
                  FC_SHARE_PATIENT);
}

/* The calling thread's next chunk [*lo, *hi) of s; 0 once every block is drained. */
static inline int fc_share_take(fc_share *s, fc_share_cursor *c, ptrdiff_t *lo, ptrdiff_t *hi)
{
#if defined(_OPENMP)
    const int self = omp_get_thread_num() % s->blocks;
#else
    const int self = 0;
#endif
    while (c->drained < s->blocks) {
        int b = self + c->drained;
        if (b >= s->blocks) b -= s->blocks;
        const ptrdiff_t end = s->block[b].end;
        if (c->drained > 0 && s->patience > 0) { /* another's block: is its owner stalled? */
            const ptrdiff_t next = fc_share_load(&s->block[b].next);
            if (next >= end) {
                c->drained++;
                c->seen = -1;
                continue;
            }
            const double now = fc_share_clock();
            if (next != c->seen) { /* (first look, or the owner took a chunk) */
                c->seen = next;
                c->seen_at = now;
                continue;
            }
            double wait = c->taken > 0 ? s->patience * c->started / (double)c->taken : 0.0;
            if (wait < FC_SHARE_MIN_WAIT) wait = FC_SHARE_MIN_WAIT;
            if (now - c->seen_at < wait) {
                fc_spin_pause();
                continue;
            }
        }
        const ptrdiff_t pos = fc_share_fetch_add(&s->block[b].next, s->chunk);
        if (pos < end) {
            *lo = pos;
            *hi = pos + s->chunk < end ? pos + s->chunk : end;
            if (c->drained == 0 && c->taken++ == 0) c->started = fc_share_clock();
            else if (c->drained > 0) c->seen = pos + s->chunk; /* (still stalled: take more) */
            return 1;
        }
        if (c->drained == 0 && c->taken > 0) c->started = fc_share_clock() - c->started;
        c->drained++;
        c->seen = -1;
    }
    return 0;
}

/* The item a pass that walks each block backwards runs for `item` of s (blocks as
 * fc_share_init cuts them; a bijection of each block): its owner starts at the block's end,
 * the rows it read last in the pass before, which are still in its caches. */
static inline ptrdiff_t fc_share_mirror(const fc_share *s, ptrdiff_t item)
{
    ptrdiff_t start = 0;
    for (int b = 0; b < s->blocks; b++) {
        const ptrdiff_t end = s->block[b].end;
        if (item < end) return start + end - 1 - item;
        start = end;
    }
    return item;
}

/* `FC_SHARE_FOR(s, item) body`: the body for each item of the calling thread's share of s (no
 * barrier at the end: add one where the team reads what the loop wrote). */
#define FC_SHARE_FOR(s, item)                                                                  \
    for (fc_share_cursor fc_cursor_ = FC_SHARE_CURSOR_INIT; fc_cursor_.more;)                  \
        for (ptrdiff_t fc_first_, fc_end_;                                                     \
             (fc_cursor_.more = fc_share_take((s), &fc_cursor_, &fc_first_, &fc_end_));)      \
            for (ptrdiff_t item = fc_first_; item < fc_end_; item++)

#endif /* FASTCONV_KERNEL_COMMON_H */
