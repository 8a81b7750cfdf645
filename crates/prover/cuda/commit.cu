// The trace commitment's kernels: one thread per index of a step in commit.cuh. The launch order
// is the engine's (crates/prover/src/stark/gpu); host.cpp runs the same steps on the CPU.
#include "commit.cuh"

#define ZK_INDEX                                                          \
    uint64_t t = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;        \
    if (t >= count) return;

extern "C" __global__ void zk_bit_reverse(const uint64_t* src, uint64_t* dst, uint32_t log_n, uint64_t count) {
    ZK_INDEX
    zk_step_bit_reverse(src, dst, log_n, t);
}

extern "C" __global__ void zk_dit(uint64_t* a, uint32_t log_n, uint32_t log_m, const uint64_t* twiddles,
                                  uint64_t count) {
    ZK_INDEX
    zk_step_dit(a, log_n, log_m, twiddles, t);
}

extern "C" __global__ void zk_dif(uint64_t* a, uint32_t log_n, uint32_t log_m, const uint64_t* twiddles,
                                  uint64_t count) {
    ZK_INDEX
    zk_step_dif(a, log_n, log_m, twiddles, t);
}

extern "C" __global__ void zk_scale(uint64_t* a, uint64_t factor, uint64_t count) {
    ZK_INDEX
    zk_step_scale(a, factor, t);
}

extern "C" __global__ void zk_expand(const uint64_t* coeffs, uint64_t* lde, uint32_t log_n, uint32_t log_lde,
                                     const uint64_t* shift_powers, uint64_t count) {
    ZK_INDEX
    zk_step_expand(coeffs, lde, log_n, log_lde, shift_powers, t);
}

extern "C" __global__ void zk_leaf(const uint64_t* lde, uint32_t ncols, uint32_t log_lde, uint32_t layers,
                                   uint64_t* digests, uint64_t* cap, uint64_t count) {
    ZK_INDEX
    zk_step_leaf(lde, ncols, log_lde, layers, digests, cap, t);
}

extern "C" __global__ void zk_node(uint64_t* digests, uint64_t* cap, uint32_t layers, uint32_t level,
                                   uint64_t count) {
    ZK_INDEX
    zk_step_node(digests, cap, layers, level, t);
}

extern "C" __global__ void zk_transpose(const uint64_t* lde, uint64_t* rows, uint32_t ncols, uint32_t log_lde,
                                        uint64_t count) {
    ZK_INDEX
    zk_step_transpose(lde, rows, ncols, log_lde, t);
}
