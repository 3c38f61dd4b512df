// attn HIP prelude: the device API the kernels use, for hiprtc (AMD) and NVRTC (NVIDIA).
//
// No system header is included. hiprtc already provides threadIdx/blockIdx/__syncthreads and the
// math built-ins; NVRTC provides them natively. The 16-bit types are defined here as raw bits
// because Debian's ROCm 5.2 hiprtc fails on hip_fp16.h (redefinition of __llvm_amdgcn_rcp_2f16
// against clang's built-ins), and NVRTC would need cuda_fp16.h from the toolkit.
#pragma once

#if defined(__HIPCC_RTC__) || defined(__HIP__) || defined(__HIP_DEVICE_COMPILE__)
#define ATTN_AMD 1
#else
#define ATTN_AMD 0
#endif

typedef long long i64;
typedef unsigned long long u64;
typedef unsigned int u32;
typedef unsigned short u16;

#define ATTN_DEVICE __device__ __forceinline__

#if ATTN_AMD
// ---------------------------------------------------------------- AMD (clang, hiprtc)
typedef u32 attn_u32x4 __attribute__((ext_vector_type(4)));

ATTN_DEVICE float attn_inf() { return __builtin_inff(); }
ATTN_DEVICE float attn_bits_to_float(u32 b) { return __builtin_bit_cast(float, b); }
ATTN_DEVICE u32 attn_float_to_bits(float f) { return __builtin_bit_cast(u32, f); }
ATTN_DEVICE float attn_f16_to_float(u16 h) { return (float)__builtin_bit_cast(_Float16, h); }
ATTN_DEVICE u16 attn_float_to_f16(float f) { return __builtin_bit_cast(u16, (_Float16)f); }
ATTN_DEVICE float attn_exp2(float x) { return __builtin_exp2f(x); }
ATTN_DEVICE float attn_log2(float x) { return __builtin_log2f(x); }
// hiprtc links no device math library (ocml): tanh from exp2. Saturates to +-1 for large |x|;
// near 0 its absolute error is ~1e-7, which softcap multiplies by the cap.
ATTN_DEVICE float attn_tanh(float x) { return 1.f - 2.f / (__builtin_exp2f(2.8853900817779268f * x) + 1.f); }
ATTN_DEVICE float attn_fmax(float a, float b) { return __builtin_fmaxf(a, b); }

// xor shuffle inside aligned segments of `width` lanes (off < width); `group` (a multiple of width)
// aligned lanes run the same loop. ds_bpermute takes a byte address of the source lane and needs no
// member mask: the partner is in the caller's group.
ATTN_DEVICE float attn_shfl_xor(float v, int off, int width, int group) {
    int lane = __builtin_amdgcn_mbcnt_hi(~0u, __builtin_amdgcn_mbcnt_lo(~0u, 0u));
    return __builtin_bit_cast(float, __builtin_amdgcn_ds_bpermute((lane ^ off) << 2, __builtin_bit_cast(int, v)));
}
#else
// ---------------------------------------------------------------- NVIDIA (NVRTC)
typedef uint4 attn_u32x4;

ATTN_DEVICE float attn_inf() { return __int_as_float(0x7f800000); }
ATTN_DEVICE float attn_bits_to_float(u32 b) { return __uint_as_float(b); }
ATTN_DEVICE u32 attn_float_to_bits(float f) { return __float_as_uint(f); }
ATTN_DEVICE float attn_f16_to_float(u16 h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}
ATTN_DEVICE u16 attn_float_to_f16(float f) {
    u16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}
ATTN_DEVICE float attn_exp2(float x) { return exp2f(x); }
ATTN_DEVICE float attn_log2(float x) { return log2f(x); }
ATTN_DEVICE float attn_tanh(float x) { return tanhf(x); }
ATTN_DEVICE float attn_fmax(float a, float b) { return fmaxf(a, b); }
// The member mask names only the caller's `group` lanes: the other thread groups of the warp may
// have left their token loop already, and a full-warp mask then waits for them forever (the Volta+
// rule that every named lane executes the same __shfl_sync; it hung the decode on the H200). A
// group of a whole warp keeps the constant full mask (no register for it).
ATTN_DEVICE float attn_shfl_xor(float v, int off, int width, int group) {
    const unsigned members = group >= 32 ? 0xffffffffu : ((1u << group) - 1u) << ((threadIdx.x & 31u) & ~(unsigned)(group - 1));
    return __shfl_xor_sync(members, v, off, width);
}
#endif

// bf16 is the top half of a float on both vendors.
ATTN_DEVICE float attn_bf16_to_float(u16 h) { return attn_bits_to_float(((u32)h) << 16); }
ATTN_DEVICE u16 attn_float_to_bf16(float f) {
    u32 b = attn_float_to_bits(f);
    if ((b & 0x7f800000u) == 0x7f800000u && (b & 0x007fffffu))   // NaN stays a (quiet) NaN
        return (u16)((b >> 16) | 0x40);
    b += 0x7fffu + ((b >> 16) & 1u);                               // round to nearest even
    return (u16)(b >> 16);
}

// The two halves of a 32-bit word, as floats, for the kernel's dtype (0 fp16, 1 bf16).
template <int DT>
ATTN_DEVICE float attn_lo(u32 w) {
    return DT == 0 ? attn_f16_to_float((u16)(w & 0xffffu)) : attn_bits_to_float(w << 16);
}
template <int DT>
ATTN_DEVICE float attn_hi(u32 w) {
    return DT == 0 ? attn_f16_to_float((u16)(w >> 16)) : attn_bits_to_float(w & 0xffff0000u);
}
template <int DT>
ATTN_DEVICE float attn_to_float(u16 h) { return DT == 0 ? attn_f16_to_float(h) : attn_bf16_to_float(h); }
template <int DT>
ATTN_DEVICE u16 attn_from_float(float f) { return DT == 0 ? attn_float_to_f16(f) : attn_float_to_bf16(f); }

// 8 16-bit values from one 16-byte vector.
template <int DT>
ATTN_DEVICE void attn_unpack8(const attn_u32x4& v, float* f) {
    f[0] = attn_lo<DT>(v.x); f[1] = attn_hi<DT>(v.x);
    f[2] = attn_lo<DT>(v.y); f[3] = attn_hi<DT>(v.y);
    f[4] = attn_lo<DT>(v.z); f[5] = attn_hi<DT>(v.z);
    f[6] = attn_lo<DT>(v.w); f[7] = attn_hi<DT>(v.w);
}
