// The kernels of commit.cu as loops on the CPU, with the same names (suffixed `_host`) and
// arguments, plus the field and permutation, for the tests that compare them bit for bit with
// plonky2 on machines without a GPU. Not a fast engine: one core, scalar.
#include "commit.cuh"

#define ZK_LOOP for (uint64_t t = 0; t < count; t++)

extern "C" {

uint64_t zk_gl_add_host(uint64_t a, uint64_t b) { return gl_add(a, b); }
uint64_t zk_gl_sub_host(uint64_t a, uint64_t b) { return gl_sub(a, b); }
uint64_t zk_gl_mul_host(uint64_t a, uint64_t b) { return gl_mul(a, b); }
void zk_poseidon_host(uint64_t* state) { zk_poseidon(state); }

void zk_bit_reverse_host(const uint64_t* src, uint64_t* dst, uint32_t log_n, uint64_t count) {
    ZK_LOOP zk_step_bit_reverse(src, dst, log_n, t);
}

void zk_dit_host(uint64_t* a, uint32_t log_n, uint32_t log_m, const uint64_t* twiddles, uint64_t count) {
    ZK_LOOP zk_step_dit(a, log_n, log_m, twiddles, t);
}

void zk_dif_host(uint64_t* a, uint32_t log_n, uint32_t log_m, const uint64_t* twiddles, uint64_t count) {
    ZK_LOOP zk_step_dif(a, log_n, log_m, twiddles, t);
}

void zk_scale_host(uint64_t* a, uint64_t factor, uint64_t count) {
    ZK_LOOP zk_step_scale(a, factor, t);
}

void zk_expand_host(const uint64_t* coeffs, uint64_t* lde, uint32_t log_n, uint32_t log_lde,
                    const uint64_t* shift_powers, uint64_t count) {
    ZK_LOOP zk_step_expand(coeffs, lde, log_n, log_lde, shift_powers, t);
}

void zk_leaf_host(const uint64_t* lde, uint32_t ncols, uint32_t log_lde, uint32_t layers, uint64_t* digests,
                  uint64_t* cap, uint64_t count) {
    ZK_LOOP zk_step_leaf(lde, ncols, log_lde, layers, digests, cap, t);
}

void zk_node_host(uint64_t* digests, uint64_t* cap, uint32_t layers, uint32_t level, uint64_t count) {
    ZK_LOOP zk_step_node(digests, cap, layers, level, t);
}

void zk_transpose_host(const uint64_t* lde, uint64_t* rows, uint32_t ncols, uint32_t log_lde, uint64_t count) {
    ZK_LOOP zk_step_transpose(lde, rows, ncols, log_lde, t);
}

}
