/* Run-time ISA detection and the kernel table (see dispatch.h). */
#include "dispatch.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#if defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
#include <intrin.h>
#define FC_X86 1
#elif (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#include <cpuid.h>
#define FC_X86 1
#else
#define FC_X86 0
#endif

static const char *const isa_names[FC_ISA_COUNT] = {"generic", "avx2", "avx512"};

static int initialised = 0;
static int status = FC_DISPATCH_OK;
static int selected = FC_ISA_GENERIC;
static const fc_kernel_table *table = NULL;
static char requested[32] = "";

#if FC_X86
static void cpuid(unsigned leaf, unsigned subleaf, unsigned regs[4])
{
#if defined(_MSC_VER)
    int r[4];
    __cpuidex(r, (int)leaf, (int)subleaf);
    regs[0] = (unsigned)r[0]; regs[1] = (unsigned)r[1];
    regs[2] = (unsigned)r[2]; regs[3] = (unsigned)r[3];
#else
    regs[0] = regs[1] = regs[2] = regs[3] = 0;
    __cpuid_count(leaf, subleaf, regs[0], regs[1], regs[2], regs[3]);
#endif
}

/* XCR0: which register states the OS saves on context switches. Only valid if OSXSAVE. */
static unsigned long long read_xcr0(void)
{
#if defined(_MSC_VER)
    return (unsigned long long)_xgetbv(0);
#else
    unsigned eax, edx;
    /* Raw opcode (xgetbv) so no -mxsave flag is needed for this baseline file. */
    __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
#endif
}

/* Feature bits of the CPU, masked by what the OS enabled. */
static void detect_x86(int *has_avx2, int *has_avx512)
{
    unsigned r[4];
    *has_avx2 = *has_avx512 = 0;
    cpuid(0, 0, r);
    unsigned max_leaf = r[0];
    if (max_leaf < 7) return;
    cpuid(1, 0, r);
    int osxsave = (r[2] >> 27) & 1, avx = (r[2] >> 28) & 1, fma = (r[2] >> 12) & 1;
    int f16c = (r[2] >> 29) & 1;
    if (!osxsave || !avx) return;
    unsigned long long xcr0 = read_xcr0();
    int ymm_state = (xcr0 & 0x6) == 0x6;             /* SSE + AVX (upper YMM) */
    int zmm_state = (xcr0 & 0xe6) == 0xe6;           /* + opmask, ZMM_Hi256, Hi16_ZMM */
    cpuid(7, 0, r);
    int avx2 = (r[1] >> 5) & 1;
    int avx512f = (r[1] >> 16) & 1, avx512dq = (r[1] >> 17) & 1;
    int avx512bw = (r[1] >> 30) & 1, avx512vl = (r[1] >> 31) & 1;
    *has_avx2 = ymm_state && avx2 && fma && f16c;
    *has_avx512 = *has_avx2 && zmm_state && avx512f && avx512dq && avx512bw && avx512vl;
}
#endif

static const fc_kernel_table *table_of(int isa)
{
    switch (isa) {
    case FC_ISA_AVX512: return fc_kernels_avx512();
    case FC_ISA_AVX2: return fc_kernels_avx2();
    default: return fc_kernels_generic();
    }
}

int fc_isa_supported(int isa)
{
    if (isa == FC_ISA_GENERIC) return 1;
    if (isa < 0 || isa >= FC_ISA_COUNT || table_of(isa) == NULL) return 0;
#if FC_X86
    int has_avx2, has_avx512;
    detect_x86(&has_avx2, &has_avx512);
    return isa == FC_ISA_AVX2 ? has_avx2 : has_avx512;
#else
    return 0;
#endif
}

const char *fc_isa_name(int isa)
{
    return (isa >= 0 && isa < FC_ISA_COUNT) ? isa_names[isa] : "unknown";
}

/* Copy FASTCONV_ISA lower-cased without surrounding blanks; return 0 if too long. */
static int read_request(void)
{
    const char *env = getenv("FASTCONV_ISA");
    requested[0] = '\0';
    if (env == NULL) return 1;
    while (*env && isspace((unsigned char)*env)) env++;
    size_t len = strlen(env);
    while (len > 0 && isspace((unsigned char)env[len - 1])) len--;
    if (len >= sizeof(requested)) {
        memcpy(requested, env, sizeof(requested) - 1);
        requested[sizeof(requested) - 1] = '\0';
        return 0;
    }
    for (size_t i = 0; i < len; i++) requested[i] = (char)tolower((unsigned char)env[i]);
    requested[len] = '\0';
    return 1;
}

int fc_dispatch_init(void)
{
    if (initialised) return status;
    int best = FC_ISA_GENERIC;
    for (int isa = FC_ISA_COUNT - 1; isa > FC_ISA_GENERIC; isa--) {
        if (fc_isa_supported(isa)) { best = isa; break; }
    }
    selected = best;
    status = FC_DISPATCH_OK;
    if (!read_request()) {
        status = FC_DISPATCH_BAD_NAME;
    } else if (requested[0] != '\0' && strcmp(requested, "auto") != 0) {
        int forced = -1;
        for (int isa = 0; isa < FC_ISA_COUNT; isa++)
            if (strcmp(requested, isa_names[isa]) == 0) forced = isa;
        if (forced < 0) status = FC_DISPATCH_BAD_NAME;
        else if (!fc_isa_supported(forced)) status = FC_DISPATCH_UNSUPPORTED;
        else selected = forced;
    }
    table = table_of(selected);
    initialised = 1;
    return status;
}

const fc_kernel_table *fc_get_kernels(void)
{
    if (!initialised) fc_dispatch_init();
    return table;
}

int fc_isa_selected(void)
{
    if (!initialised) fc_dispatch_init();
    return selected;
}

const char *fc_isa_requested(void)
{
    if (!initialised) fc_dispatch_init();
    return requested;
}
