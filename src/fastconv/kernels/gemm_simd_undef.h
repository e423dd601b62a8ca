/* Ends one instantiation of gemm_simd_impl.h in an ISA file: undefines the element and
 * vector macros so the next dtype can define its own. */
#undef FC_T
#undef FC_SFX
#undef FC_VT
#undef FC_VLEN
#undef FC_MR
#undef FC_NV
#undef FC_VZERO
#undef FC_VLOAD
#undef FC_VSET1
#undef FC_VFMA
#undef FC_VADD
#undef FC_VSUB
#undef FC_VSTORE
#undef FC_VSTREAM
#undef FC_VLOAD_N
#undef FC_VSTORE_N
#undef FC_VHSUM
#undef FC_VHSUM_BLOCK
#undef FC_VMAX_NAN
#undef FC_VIT
#undef FC_VPERMUTE
#undef FC_VREPEAT_IDX
