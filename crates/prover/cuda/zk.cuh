// Shared by the CUDA kernels (nvcc) and their host build (the C++ compiler, for the bit-exact
// tests on machines without a GPU): every function here is plain arithmetic on 64-bit words.
#pragma once

#include <stdint.h>

#ifdef __CUDACC__
#define ZK_HD __host__ __device__ static inline
#else
#define ZK_HD static inline
#endif

// The Goldilocks prime, 2^64 - 2^32 + 1, and 2^64 mod p = 2^32 - 1.
#define ZK_P 0xFFFFFFFF00000001ULL
#define ZK_EPSILON 0xFFFFFFFFULL

// The high word of the 128-bit product.
ZK_HD uint64_t zk_mulhi(uint64_t a, uint64_t b) {
#ifdef __CUDA_ARCH__
    return __umul64hi(a, b);
#else
    return (uint64_t)(((unsigned __int128)a * b) >> 64);
#endif
}

// The low `bits` bits of `i`, reversed.
ZK_HD uint64_t zk_reverse_bits(uint64_t i, uint32_t bits) {
    if (bits == 0) return 0;
#ifdef __CUDA_ARCH__
    return __brevll(i) >> (64 - bits);
#else
    uint64_t r = 0;
    for (uint32_t b = 0; b < bits; b++) r |= ((i >> b) & 1) << (bits - 1 - b);
    return r;
#endif
}
