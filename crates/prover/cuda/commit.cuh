// The steps of a trace commitment, each for one index `t` of its launch: a CUDA kernel runs one
// thread per index (commit.cu), the host build runs a loop over them (host.cpp), in the same order.
//
// Columns are stored one after another, each a power of two long (`1 << log_n`). The steps:
//  1. bit-reverse copy of the trace values, then the inverse NTT (decimation in time, natural
//     order out) and the scaling by 1/n: the coefficients;
//  2. expansion: the coefficients times the coset shift's powers, zero-padded to the extended
//     length, then the forward NTT (decimation in frequency, natural order in, bit-reversed order
//     out): element l of each column is then the evaluation at the bit reverse of l, which is
//     where plonky2 puts leaf l (it transposes, then reverses the leaves' order);
//  3. leaf hashes, then the Merkle tree level by level, into plonky2's digest layout and cap;
//  4. the transpose into rows, the leaves as plonky2 keeps them.
#pragma once

#include "poseidon.cuh"

// dst[c][rev(i)] = src[c][i], over ncols << log_n indices.
ZK_HD void zk_step_bit_reverse(const uint64_t* src, uint64_t* dst, uint32_t log_n, uint64_t t) {
    uint64_t mask = (1ULL << log_n) - 1;
    uint64_t base = t & ~mask;
    dst[base + zk_reverse_bits(t & mask, log_n)] = src[t];
}

// The butterfly of index t in a stage with half-width m = 1 << log_m, over ncols << (log_n - 1)
// indices: the pair (k + j, k + j + m) of its column and the twiddle w^(j n / 2m), from `twiddles`
// holding w^i for the root w of order 1 << log_n.
struct zk_butterfly {
    uint64_t* low;
    uint64_t* high;
    uint64_t w;
};

ZK_HD struct zk_butterfly zk_butterfly_at(uint64_t* a, uint32_t log_n, uint32_t log_m, const uint64_t* twiddles,
                                          uint64_t t) {
    uint64_t half = 1ULL << (log_n - 1);
    uint64_t* col = a + ((t / half) << log_n);
    uint64_t b = t & (half - 1);
    uint64_t m = 1ULL << log_m;
    uint64_t j = b & (m - 1);
    uint64_t k = (b >> log_m) << (log_m + 1);
    struct zk_butterfly out = {col + k + j, col + k + j + m, twiddles[j << (log_n - 1 - log_m)]};
    return out;
}

// One butterfly of a decimation-in-time stage: (u, v) -> (u + w v, u - w v).
ZK_HD void zk_step_dit(uint64_t* a, uint32_t log_n, uint32_t log_m, const uint64_t* twiddles, uint64_t t) {
    struct zk_butterfly bf = zk_butterfly_at(a, log_n, log_m, twiddles, t);
    uint64_t u = *bf.low;
    uint64_t v = gl_mul(*bf.high, bf.w);
    *bf.low = gl_add(u, v);
    *bf.high = gl_sub(u, v);
}

// One butterfly of a decimation-in-frequency stage: (u, v) -> (u + v, (u - v) w).
ZK_HD void zk_step_dif(uint64_t* a, uint32_t log_n, uint32_t log_m, const uint64_t* twiddles, uint64_t t) {
    struct zk_butterfly bf = zk_butterfly_at(a, log_n, log_m, twiddles, t);
    uint64_t u = *bf.low;
    uint64_t v = *bf.high;
    *bf.low = gl_add(u, v);
    *bf.high = gl_mul(gl_sub(u, v), bf.w);
}

// a[t] *= factor, over ncols << log_n indices.
ZK_HD void zk_step_scale(uint64_t* a, uint64_t factor, uint64_t t) {
    a[t] = gl_mul(a[t], factor);
}

// lde[c][j] = coeffs[c][j] shift^j for j < n, 0 above, over ncols << log_lde indices.
ZK_HD void zk_step_expand(const uint64_t* coeffs, uint64_t* lde, uint32_t log_n, uint32_t log_lde,
                          const uint64_t* shift_powers, uint64_t t) {
    uint64_t c = t >> log_lde;
    uint64_t j = t & ((1ULL << log_lde) - 1);
    lde[t] = j < (1ULL << log_n) ? gl_mul(coeffs[(c << log_n) + j], shift_powers[j]) : 0;
}

// Where plonky2 keeps node j of level `level` (0: the leaf hashes) inside one subtree's digests.
ZK_HD uint64_t zk_digest_index(uint32_t level, uint64_t j) {
    uint64_t pair = ((j >> 1) << (level + 1)) + (1ULL << level) - 1;
    return 2 * pair + (j & 1);
}

// Leaf l's hash, over 1 << log_lde indices: into the cap when the cap is as wide as the leaves,
// else into its subtree's digests. `layers` = log_lde - cap_height.
ZK_HD void zk_step_leaf(const uint64_t* lde, uint32_t ncols, uint32_t log_lde, uint32_t layers, uint64_t* digests,
                        uint64_t* cap, uint64_t t) {
    uint64_t* out;
    if (layers == 0) {
        out = cap + ZK_DIGEST * t;
    } else {
        uint64_t subtree_len = 2 * ((1ULL << layers) - 1);
        uint64_t tree = t >> layers;
        uint64_t j = t & ((1ULL << layers) - 1);
        out = digests + ZK_DIGEST * (tree * subtree_len + zk_digest_index(0, j));
    }
    zk_hash_leaf(lde, 1ULL << log_lde, ncols, t, out);
}

// Node j of `level` (1..=layers) of every subtree, over (1 << cap_height) << (layers - level)
// indices: the top level goes into the cap.
ZK_HD void zk_step_node(uint64_t* digests, uint64_t* cap, uint32_t layers, uint32_t level, uint64_t t) {
    uint64_t subtree_len = 2 * ((1ULL << layers) - 1);
    uint64_t tree = t >> (layers - level);
    uint64_t j = t & ((1ULL << (layers - level)) - 1);
    uint64_t* sub = digests + ZK_DIGEST * tree * subtree_len;
    const uint64_t* left = sub + ZK_DIGEST * zk_digest_index(level - 1, 2 * j);
    const uint64_t* right = sub + ZK_DIGEST * zk_digest_index(level - 1, 2 * j + 1);
    uint64_t* out = level == layers ? cap + ZK_DIGEST * tree : sub + ZK_DIGEST * zk_digest_index(level, j);
    zk_hash_two(left, right, out);
}

// rows[r][c] = lde[c][r], over ncols << log_lde indices.
ZK_HD void zk_step_transpose(const uint64_t* lde, uint64_t* rows, uint32_t ncols, uint32_t log_lde, uint64_t t) {
    uint64_t r = t / ncols;
    uint64_t c = t - r * ncols;
    rows[t] = lde[(c << log_lde) + r];
}
