/* Instantiates the kernels of one dtype in an ISA file whose vector macros (see
 * gemm_simd_impl.h: FC_T, FC_VT, FC_VLEN, FC_V...) are defined, then undefines them all:
 *   wide kernels:   names suffixed FC_TILE_SFX, FC_TILE_MR rows x 2 vectors, plus the
 *                   depthwise, Winograd-transform and flat-row kernels;
 *   narrow kernels: names suffixed FC_TILE_NARROW_SFX, FC_TILE_NARROW_MR rows x 1 vector
 *                   (GEMMs with few columns, see gemm.h);
 *   broad kernels:  if FC_TILE_BROAD_SFX is defined, names suffixed with it, FC_TILE_BROAD_MR
 *                   rows x 4 vectors (GEMMs with many columns, see gemm.h). */
#define FC_SFX FC_TILE_SFX
#define FC_MR FC_TILE_MR
#define FC_NV 2
#include "gemm_simd_impl.h"
#include "conv2d_depthwise_impl.h"
#include "conv2d_dot_impl.h"
#include "winograd_simd_impl.h"
#include "conv2d_flat_simd_impl.h"
#undef FC_SFX
#undef FC_MR
#undef FC_NV

#ifdef FC_TILE_BROAD_SFX
#define FC_SFX FC_TILE_BROAD_SFX
#define FC_MR FC_TILE_BROAD_MR
#define FC_NV 4
#include "gemm_simd_impl.h"
#undef FC_SFX
#undef FC_MR
#undef FC_NV
#endif

#define FC_SFX FC_TILE_NARROW_SFX
#define FC_MR FC_TILE_NARROW_MR
#define FC_NV 1
#include "gemm_simd_impl.h"
#include "gemm_simd_undef.h"

#undef FC_TILE_SFX
#undef FC_TILE_MR
#undef FC_TILE_NARROW_SFX
#undef FC_TILE_NARROW_MR
#undef FC_TILE_BROAD_SFX
#undef FC_TILE_BROAD_MR
