// plonky2's Poseidon permutation over Goldilocks (width 12, 4 full + 22 partial + 4 full rounds,
// S-box x^7), in its naive form: constant layer, S-box layer, MDS layer, per round. plonky2's
// optimised form computes the same function. The hashes on top of it are plonky2's: the sponge
// at rate 8 in overwrite mode for leaves, and the two-to-one compression for tree nodes.
#pragma once

#include "goldilocks.cuh"
#include "poseidon_constants.cuh"

#define ZK_WIDTH 12
#define ZK_HALF_FULL_ROUNDS 4
#define ZK_PARTIAL_ROUNDS 22
#define ZK_ROUNDS (2 * ZK_HALF_FULL_ROUNDS + ZK_PARTIAL_ROUNDS)
#define ZK_RATE 8
#define ZK_DIGEST 4

#ifdef __CUDACC__
__constant__ uint64_t zk_round_constants_device[ZK_WIDTH * ZK_ROUNDS] = ZK_POSEIDON_ROUND_CONSTANTS;
#endif
static const uint64_t zk_round_constants_host[ZK_WIDTH * ZK_ROUNDS] = ZK_POSEIDON_ROUND_CONSTANTS;

ZK_HD uint64_t zk_round_constant(int i) {
#ifdef __CUDA_ARCH__
    return zk_round_constants_device[i];
#else
    return zk_round_constants_host[i];
#endif
}

ZK_HD uint64_t zk_sbox(uint64_t x) {
    uint64_t x2 = gl_mul(x, x);
    uint64_t x3 = gl_mul(x2, x);
    uint64_t x4 = gl_mul(x2, x2);
    return gl_mul(x3, x4);
}

// out[r] = sum_i s[(i + r) % 12] circ[i] + s[r] diag[r], reduced once per element.
ZK_HD void zk_mds(uint64_t s[ZK_WIDTH]) {
    const uint64_t circ[ZK_WIDTH] = ZK_POSEIDON_MDS_CIRC;
    const uint64_t diag[ZK_WIDTH] = ZK_POSEIDON_MDS_DIAG;
    uint64_t out[ZK_WIDTH];
#ifdef __CUDA_ARCH__
#pragma unroll
#endif
    for (int r = 0; r < ZK_WIDTH; r++) {
        struct gl_acc acc = {0, 0};
#ifdef __CUDA_ARCH__
#pragma unroll
#endif
        for (int i = 0; i < ZK_WIDTH; i++) gl_acc_mul_add(&acc, s[(i + r) % ZK_WIDTH], circ[i]);
        gl_acc_mul_add(&acc, s[r], diag[r]);
        out[r] = gl_reduce128(acc.lo, acc.hi);
    }
    for (int r = 0; r < ZK_WIDTH; r++) s[r] = out[r];
}

ZK_HD void zk_poseidon(uint64_t s[ZK_WIDTH]) {
    for (int round = 0; round < ZK_ROUNDS; round++) {
        bool full = round < ZK_HALF_FULL_ROUNDS || round >= ZK_HALF_FULL_ROUNDS + ZK_PARTIAL_ROUNDS;
#ifdef __CUDA_ARCH__
#pragma unroll
#endif
        for (int i = 0; i < ZK_WIDTH; i++) s[i] = gl_add(s[i], zk_round_constant(ZK_WIDTH * round + i));
        if (full) {
#ifdef __CUDA_ARCH__
#pragma unroll
#endif
            for (int i = 0; i < ZK_WIDTH; i++) s[i] = zk_sbox(s[i]);
        } else {
            s[0] = zk_sbox(s[0]);
        }
        zk_mds(s);
    }
}

// plonky2's `hash_or_noop` of one leaf, element `row` of each of `ncols` columns laid out
// `stride` apart: up to 4 elements are the digest themselves (zero padded); longer leaves go
// through the sponge, 8 elements at a time overwriting the rate.
ZK_HD void zk_hash_leaf(const uint64_t* columns, uint64_t stride, uint32_t ncols, uint64_t row,
                        uint64_t out[ZK_DIGEST]) {
    if (ncols <= ZK_DIGEST) {
        for (uint32_t i = 0; i < ZK_DIGEST; i++) out[i] = i < ncols ? columns[i * stride + row] : 0;
        return;
    }
    uint64_t s[ZK_WIDTH] = {0};
    for (uint32_t c = 0; c < ncols; c += ZK_RATE) {
        uint32_t take = ncols - c < ZK_RATE ? ncols - c : ZK_RATE;
        for (uint32_t i = 0; i < take; i++) s[i] = columns[(uint64_t)(c + i) * stride + row];
        zk_poseidon(s);
    }
    for (int i = 0; i < ZK_DIGEST; i++) out[i] = s[i];
}

// plonky2's two-to-one compression of two digests.
ZK_HD void zk_hash_two(const uint64_t left[ZK_DIGEST], const uint64_t right[ZK_DIGEST], uint64_t out[ZK_DIGEST]) {
    uint64_t s[ZK_WIDTH] = {0};
    for (int i = 0; i < ZK_DIGEST; i++) {
        s[i] = left[i];
        s[ZK_DIGEST + i] = right[i];
    }
    zk_poseidon(s);
    for (int i = 0; i < ZK_DIGEST; i++) out[i] = s[i];
}
