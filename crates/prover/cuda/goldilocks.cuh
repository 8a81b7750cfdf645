// Goldilocks field arithmetic on canonical representatives (values below p): every function
// takes and returns canonical values, so results compare bit for bit with plonky2's.
#pragma once

#include "zk.cuh"

ZK_HD uint64_t gl_add(uint64_t a, uint64_t b) {
    uint64_t s = a + b;
    // A carry out is 2^64, which is 2^32 - 1 mod p; a + b < 2p keeps the sum below 2^64.
    if (s < a) s += ZK_EPSILON;
    if (s >= ZK_P) s -= ZK_P;
    return s;
}

ZK_HD uint64_t gl_sub(uint64_t a, uint64_t b) {
    uint64_t d = a - b;
    // A borrow added 2^64; take back 2^64 - p = 2^32 - 1 so that p was added instead.
    if (a < b) d -= ZK_EPSILON;
    return d;
}

// lo + 2^64 hi mod p, for any 128-bit value.
ZK_HD uint64_t gl_reduce128(uint64_t lo, uint64_t hi) {
    // hi = 2^32 h1 + h0; 2^96 = -1 and 2^64 = 2^32 - 1 mod p.
    uint64_t h1 = hi >> 32;
    uint64_t h0 = hi & ZK_EPSILON;
    uint64_t t = lo - h1;
    if (lo < h1) t -= ZK_EPSILON;
    uint64_t u = h0 * ZK_EPSILON;  // below 2^64
    uint64_t s = t + u;
    if (s < t) s += ZK_EPSILON;
    if (s >= ZK_P) s -= ZK_P;
    return s;
}

ZK_HD uint64_t gl_mul(uint64_t a, uint64_t b) {
    return gl_reduce128(a * b, zk_mulhi(a, b));
}

// An unreduced sum of products, for the MDS layer's small-coefficient dot products.
struct gl_acc {
    uint64_t lo, hi;
};

ZK_HD void gl_acc_mul_add(struct gl_acc* acc, uint64_t a, uint64_t b) {
    uint64_t lo = a * b;
    uint64_t hi = zk_mulhi(a, b);
    acc->lo += lo;
    acc->hi += hi + (acc->lo < lo ? 1 : 0);
}
