//! plonky2's Poseidon permutation on Goldilocks, eight states at a time in AVX-512 registers.
//!
//! Register `x[i]` holds element `i` of eight independent states, one per lane, so every step
//! is the same for all lanes and nothing crosses lanes. Lanes hold any `u64` and are reduced
//! modulo p only where a value would overflow, as plonky2's own field does; each step is the
//! arithmetic of plonky2's permutation (`Poseidon::poseidon`: full rounds, then the partial rounds
//! in their fast form), so the results are the same field elements. AVX-512 has no 64×64-bit
//! multiply: products are built from four 32×32-bit ones.

use core::arch::x86_64::*;

use plonky2::field::goldilocks_field::GoldilocksField;
use plonky2::hash::poseidon::{Poseidon, ALL_ROUND_CONSTANTS, HALF_N_FULL_ROUNDS, N_PARTIAL_ROUNDS, SPONGE_WIDTH};

type F = GoldilocksField;

/// 2^64 mod p.
const EPSILON: u64 = 0xffff_ffff;

/// States processed together: the lanes of a register.
pub const LANES: usize = 8;

/// Element `i` of each of [`LANES`] states.
type States = [__m512i; SPONGE_WIDTH];

#[inline]
#[target_feature(enable = "avx512f")]
fn splat(x: u64) -> __m512i {
    _mm512_set1_epi64(x as i64)
}

/// The 128-bit products `a · b`, lane by lane, as (high, low) halves.
#[inline]
#[target_feature(enable = "avx512f")]
fn mul_wide(a: __m512i, b: __m512i) -> (__m512i, __m512i) {
    let mask = splat(0xffff_ffff);
    let a_hi = _mm512_srli_epi64::<32>(a);
    let b_hi = _mm512_srli_epi64::<32>(b);
    let ll = _mm512_mul_epu32(a, b);
    let lh = _mm512_mul_epu32(a, b_hi);
    let hl = _mm512_mul_epu32(a_hi, b);
    let hh = _mm512_mul_epu32(a_hi, b_hi);
    // Neither sum can overflow: each 32×32-bit product is at most 2^64 − 2^33 + 1.
    let t = _mm512_add_epi64(hl, _mm512_srli_epi64::<32>(ll));
    let u = _mm512_add_epi64(lh, _mm512_and_si512(t, mask));
    let low = _mm512_or_si512(_mm512_slli_epi64::<32>(u), _mm512_and_si512(ll, mask));
    let high = _mm512_add_epi64(hh, _mm512_add_epi64(_mm512_srli_epi64::<32>(t), _mm512_srli_epi64::<32>(u)));
    (high, low)
}

/// `high · 2^64 + low` modulo p, as a `u64` (not always canonical): 2^64 ≡ 2^32 − 1 and
/// 2^96 ≡ −1.
#[inline]
#[target_feature(enable = "avx512f")]
fn reduce128(high: __m512i, low: __m512i) -> __m512i {
    let eps = splat(EPSILON);
    let high_high = _mm512_srli_epi64::<32>(high);
    // (high mod 2^32) · (2^32 − 1) < 2^64; the multiply reads the low 32 bits only.
    let high_low = _mm512_mul_epu32(high, eps);
    let borrow = _mm512_cmplt_epu64_mask(low, high_high);
    let t = _mm512_sub_epi64(low, high_high);
    let t = _mm512_mask_sub_epi64(t, borrow, t, eps);
    let sum = _mm512_add_epi64(t, high_low);
    let carry = _mm512_cmplt_epu64_mask(sum, high_low);
    _mm512_mask_add_epi64(sum, carry, sum, eps)
}

#[inline]
#[target_feature(enable = "avx512f")]
fn mul(a: __m512i, b: __m512i) -> __m512i {
    let (high, low) = mul_wide(a, b);
    reduce128(high, low)
}

/// `a + c` modulo p where every lane of `c` is canonical (below p), so one correction suffices.
#[inline]
#[target_feature(enable = "avx512f")]
fn add_canonical(a: __m512i, c: __m512i) -> __m512i {
    let sum = _mm512_add_epi64(a, c);
    let carry = _mm512_cmplt_epu64_mask(sum, c);
    _mm512_mask_add_epi64(sum, carry, sum, splat(EPSILON))
}

/// `high · 2^32 + low` modulo p, for sums `high`, `low` below 2^63.
#[inline]
#[target_feature(enable = "avx512f")]
fn combine_halves(high: __m512i, low: __m512i) -> __m512i {
    // high · 2^32 = (high >> 32) · 2^64 + (high mod 2^32) · 2^32.
    let top = _mm512_srli_epi64::<32>(high);
    let sum = _mm512_add_epi64(_mm512_slli_epi64::<32>(high), low);
    let carry = _mm512_cmplt_epu64_mask(sum, low);
    let top = _mm512_mask_add_epi64(top, carry, top, splat(1));
    // top < 2^32, so top · (2^32 − 1) fits and the final correction cannot overflow.
    let folded = _mm512_mul_epu32(top, splat(EPSILON));
    let out = _mm512_add_epi64(sum, folded);
    let carry = _mm512_cmplt_epu64_mask(out, folded);
    _mm512_mask_add_epi64(out, carry, out, splat(EPSILON))
}

#[inline]
#[target_feature(enable = "avx512f")]
fn sbox(x: __m512i) -> __m512i {
    let x2 = mul(x, x);
    let x3 = mul(x, x2);
    let x4 = mul(x2, x2);
    mul(x3, x4)
}

/// `acc + a · b` modulo p: a·b is at most (2^64 − 1)^2, so adding `acc` cannot overflow 128 bits.
#[inline]
#[target_feature(enable = "avx512f")]
fn mul_add(acc: __m512i, a: __m512i, b: __m512i) -> __m512i {
    let (high, low) = mul_wide(a, b);
    let sum = _mm512_add_epi64(low, acc);
    let carry = _mm512_cmplt_epu64_mask(sum, acc);
    reduce128(_mm512_mask_add_epi64(high, carry, high, splat(1)), sum)
}

/// Sums of reduced values kept as their 32-bit halves (twelve terms never overflow), reduced
/// once at the end.
#[derive(Clone, Copy)]
struct Halves {
    low: __m512i,
    high: __m512i,
}

impl Halves {
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn zero() -> Self {
        Halves { low: _mm512_setzero_si512(), high: _mm512_setzero_si512() }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn add(self, x: __m512i) -> Self {
        Halves {
            low: _mm512_add_epi64(self.low, _mm512_and_si512(x, splat(0xffff_ffff))),
            high: _mm512_add_epi64(self.high, _mm512_srli_epi64::<32>(x)),
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn reduce(self) -> __m512i {
        combine_halves(self.high, self.low)
    }
}

/// One full round: constants, S-boxes, then the MDS matrix. Its entries are below 2^6, so each
/// output sums the inputs' 32-bit halves times the entries (twelve terms below 2^38) and reduces
/// once.
#[inline]
#[target_feature(enable = "avx512f")]
fn full_round(x: &mut States, round: usize) {
    for (i, xi) in x.iter_mut().enumerate() {
        *xi = sbox(add_canonical(*xi, splat(ALL_ROUND_CONSTANTS[i + SPONGE_WIDTH * round])));
    }
    let high: [__m512i; SPONGE_WIDTH] = core::array::from_fn(|i| _mm512_srli_epi64::<32>(x[i]));
    let circ = <F as Poseidon>::MDS_MATRIX_CIRC;
    let diag = <F as Poseidon>::MDS_MATRIX_DIAG;
    let out: [__m512i; SPONGE_WIDTH] = core::array::from_fn(|r| {
        let (mut low_sum, mut high_sum) = (_mm512_setzero_si512(), _mm512_setzero_si512());
        for (i, &c) in circ.iter().enumerate() {
            let j = (i + r) % SPONGE_WIDTH;
            let c = splat(c + if j == r { diag[r] } else { 0 });
            low_sum = _mm512_add_epi64(low_sum, _mm512_mul_epu32(x[j], c));
            high_sum = _mm512_add_epi64(high_sum, _mm512_mul_epu32(high[j], c));
        }
        combine_halves(high_sum, low_sum)
    });
    *x = out;
}

/// The partial rounds in plonky2's fast form: the first constant layer and initial matrix, then
/// per round one S-box, its constant and the sparse matrix (`mds_partial_layer_fast`).
#[inline]
#[target_feature(enable = "avx512f")]
fn partial_rounds(x: &mut States) {
    for (xi, &c) in x.iter_mut().zip(&<F as Poseidon>::FAST_PARTIAL_FIRST_ROUND_CONSTANT) {
        *xi = add_canonical(*xi, splat(c));
    }
    let matrix = &<F as Poseidon>::FAST_PARTIAL_ROUND_INITIAL_MATRIX;
    let mut init = [Halves::zero(); SPONGE_WIDTH];
    for r in 1..SPONGE_WIDTH {
        for c in 1..SPONGE_WIDTH {
            init[c] = init[c].add(mul(x[r], splat(matrix[r - 1][c - 1])));
        }
    }
    for c in 1..SPONGE_WIDTH {
        x[c] = init[c].reduce();
    }

    let mds00 = splat(<F as Poseidon>::MDS_MATRIX_CIRC[0] + <F as Poseidon>::MDS_MATRIX_DIAG[0]);
    for round in 0..N_PARTIAL_ROUNDS {
        let s0 = add_canonical(sbox(x[0]), splat(<F as Poseidon>::FAST_PARTIAL_ROUND_CONSTANTS[round]));
        let w_hat = &<F as Poseidon>::FAST_PARTIAL_ROUND_W_HATS[round];
        let mut d = Halves::zero().add(mul(s0, mds00));
        for k in 1..SPONGE_WIDTH {
            d = d.add(mul(x[k], splat(w_hat[k - 1])));
        }
        let vs = &<F as Poseidon>::FAST_PARTIAL_ROUND_VS[round];
        for k in 1..SPONGE_WIDTH {
            x[k] = mul_add(x[k], s0, splat(vs[k - 1]));
        }
        x[0] = d.reduce();
    }
}

/// `Poseidon::poseidon` on each of [`LANES`] states.
#[target_feature(enable = "avx512f")]
fn permute(x: &mut States) {
    for round in 0..HALF_N_FULL_ROUNDS {
        full_round(x, round);
    }
    partial_rounds(x);
    for round in HALF_N_FULL_ROUNDS + N_PARTIAL_ROUNDS..2 * HALF_N_FULL_ROUNDS + N_PARTIAL_ROUNDS {
        full_round(x, round);
    }
}

/// A register whose lane `l` is `lane(l)`.
#[inline]
#[target_feature(enable = "avx512f")]
fn gather(lane: impl Fn(usize) -> u64) -> __m512i {
    let lanes: [u64; LANES] = core::array::from_fn(lane);
    // SAFETY: reads 64 bytes from an array of eight u64.
    unsafe { _mm512_loadu_si512(lanes.as_ptr().cast()) }
}

/// The lanes of a register.
#[inline]
#[target_feature(enable = "avx512f")]
fn scatter(x: __m512i) -> [u64; LANES] {
    let mut lanes = [0u64; LANES];
    // SAFETY: writes 64 bytes into an array of eight u64.
    unsafe { _mm512_storeu_si512(lanes.as_mut_ptr().cast(), x) };
    lanes
}

/// `Poseidon::poseidon` of each of [`LANES`] states.
#[target_feature(enable = "avx512f")]
pub fn poseidon(states: &[[F; SPONGE_WIDTH]; LANES]) -> [[F; SPONGE_WIDTH]; LANES] {
    let mut x: States = core::array::from_fn(|i| gather(|l| states[l][i].0));
    permute(&mut x);
    let lanes: [[u64; LANES]; SPONGE_WIDTH] = core::array::from_fn(|i| scatter(x[i]));
    core::array::from_fn(|l| core::array::from_fn(|i| GoldilocksField(lanes[i][l])))
}

/// `PoseidonHash::hash_no_pad` of [`LANES`] inputs of one length: the sponge overwrites the
/// first eight elements with each chunk of input, then permutes; the digest is the first four.
#[target_feature(enable = "avx512f")]
pub fn hash_no_pad(inputs: [&[F]; LANES]) -> [[u64; 4]; LANES] {
    let len = inputs[0].len();
    debug_assert!(inputs.iter().all(|input| input.len() == len));
    let mut x: States = [_mm512_setzero_si512(); SPONGE_WIDTH];
    for start in (0..len).step_by(8) {
        for (i, xi) in x.iter_mut().enumerate().take((len - start).min(8)) {
            *xi = gather(|l| inputs[l][start + i].0);
        }
        permute(&mut x);
    }
    let lanes: [[u64; LANES]; 4] = core::array::from_fn(|i| scatter(x[i]));
    core::array::from_fn(|l| core::array::from_fn(|i| lanes[i][l]))
}
