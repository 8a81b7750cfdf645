//! One plonky2 Poseidon permutation (Goldilocks, width 12, 4 + 22 + 4 rounds, x^7 S-box) as the
//! columns and constraints of one trace row: a "lane" the basic round's AIR places where it likes.
//!
//! The AIR's constraint degree is at most 3, and x^7 is degree 7, so each S-box gets two columns,
//! `cube = x^3` and `sbox = cube^2 * x`: two constraints of degree 3. Nothing else is committed:
//! a round's input is the previous round's MDS layer over its S-box columns and untouched
//! elements, plus constants, which is linear in the columns and so costs no degree. The output
//! is likewise linear, so a caller constrains it (to a digest, to the next lane) at no cost in
//! columns.
//!
//! Layout, offsets from the lane's first column: `in[12]`, then per round `cube[n]` and
//! `sbox[n]`, where `n` is 12 in the 4 first and 4 last (full) rounds and 1 in the 22 partial
//! rounds, where only element 0 goes through the S-box. The rounds are plonky2's naive ones
//! (constant layer, S-box layer, MDS layer), which compute what its optimised
//! `Poseidon::poseidon` does.

use plonky2::field::extension::FieldExtension;
use plonky2::field::packed::PackedField;
use plonky2::field::types::Field;
use plonky2::hash::poseidon::{Poseidon, HALF_N_FULL_ROUNDS, N_PARTIAL_ROUNDS, N_ROUNDS};
use plonky2::iop::ext_target::ExtensionTarget;
use plonky2::plonk::circuit_builder::CircuitBuilder;
use starky::constraint_consumer::{ConstraintConsumer, RecursiveConstraintConsumer};
use starky::evaluation_frame::{StarkEvaluationFrame, StarkFrame};
use starky::stark::Stark;

use crate::{D, F};

pub const WIDTH: usize = 12;
pub const LANE_COLS: usize = WIDTH + 2 * (2 * HALF_N_FULL_ROUNDS * WIDTH + N_PARTIAL_ROUNDS);
const _: () = assert!(LANE_COLS == 248);

/// How many state elements go through the S-box in `round`.
const fn sboxes(round: usize) -> usize {
    if round < HALF_N_FULL_ROUNDS || round >= HALF_N_FULL_ROUNDS + N_PARTIAL_ROUNDS {
        WIDTH
    } else {
        1
    }
}

/// Fills `cols[..LANE_COLS]` for the permutation of `input` and returns its output state.
pub fn fill(cols: &mut [F], input: [F; WIDTH]) -> [F; WIDTH] {
    cols[..WIDTH].copy_from_slice(&input);
    let mut state = input;
    let mut at = WIDTH;
    for round in 0..N_ROUNDS {
        let n = sboxes(round);
        <F as Poseidon>::constant_layer(&mut state, round);
        for i in 0..n {
            let x = state[i];
            let cube = x.cube();
            state[i] = cube * cube * x;
            cols[at + i] = cube;
            cols[at + n + i] = state[i];
        }
        at += 2 * n;
        state = <F as Poseidon>::mds_layer(&state);
    }
    state
}

/// The input state columns.
pub fn input<T: Copy>(cols: &[T]) -> [T; WIDTH] {
    core::array::from_fn(|i| cols[i])
}

/// Yields every constraint of the lane (on every row) and returns the output state as linear
/// expressions of the columns.
pub fn eval<FE, P, const D2: usize>(cols: &[P], yield_constr: &mut ConstraintConsumer<P>) -> [P; WIDTH]
where
    FE: FieldExtension<D2, BaseField = F>,
    P: PackedField<Scalar = FE>,
{
    let mut state = input(cols);
    let mut at = WIDTH;
    for round in 0..N_ROUNDS {
        let n = sboxes(round);
        <F as Poseidon>::constant_layer_packed_field::<F, D, FE, P, D2>(&mut state, round);
        for i in 0..n {
            let (x, cube, sbox) = (state[i], cols[at + i], cols[at + n + i]);
            yield_constr.constraint(x * x * x - cube);
            yield_constr.constraint(cube * cube * x - sbox);
            state[i] = sbox;
        }
        at += 2 * n;
        state = <F as Poseidon>::mds_layer_packed_field::<F, D, FE, P, D2>(&state);
    }
    state
}

/// [`eval`] in a recursive circuit: the same constraints, in the same order.
pub fn eval_circuit(
    builder: &mut CircuitBuilder<F, D>,
    cols: &[ExtensionTarget<D>],
    yield_constr: &mut RecursiveConstraintConsumer<F, D>,
) -> [ExtensionTarget<D>; WIDTH] {
    let mut state = input(cols);
    let mut at = WIDTH;
    for round in 0..N_ROUNDS {
        let n = sboxes(round);
        <F as Poseidon>::constant_layer_circuit(builder, &mut state, round);
        for i in 0..n {
            let (x, cube, sbox) = (state[i], cols[at + i], cols[at + n + i]);
            let x2 = builder.square_extension(x);
            let c = builder.mul_sub_extension(x2, x, cube);
            yield_constr.constraint(builder, c);
            let cube2 = builder.square_extension(cube);
            let c = builder.mul_sub_extension(cube2, x, sbox);
            yield_constr.constraint(builder, c);
            state[i] = sbox;
        }
        at += 2 * n;
        // One PoseidonMdsGate per round where the config has the routed wires for it.
        state = <F as Poseidon>::mds_layer_circuit(builder, &state);
    }
    state
}

/// An AIR of bare permutations, `COLS / LANE_COLS` lanes per row and nothing else: the layout
/// measurement of `benches/basic_stark.rs` (one lane per row against two) and this module's tests.
#[derive(Clone, Copy, Debug, Default)]
pub struct Lanes<const COLS: usize>;

impl<const COLS: usize> Lanes<COLS> {
    const LANES: usize = {
        assert!(COLS.is_multiple_of(LANE_COLS) && COLS > 0);
        COLS / LANE_COLS
    };

    /// One row of the trace: the permutations of `inputs`, one per lane.
    pub fn row(inputs: &[[F; WIDTH]]) -> [F; COLS] {
        assert_eq!(inputs.len(), Self::LANES);
        let mut cols = [F::ZERO; COLS];
        for (lane, input) in inputs.iter().enumerate() {
            fill(&mut cols[lane * LANE_COLS..], *input);
        }
        cols
    }
}

impl<const COLS: usize> Stark<F, D> for Lanes<COLS> {
    type EvaluationFrame<FE, P, const D2: usize>
        = StarkFrame<P, P::Scalar, COLS, 0>
    where
        FE: FieldExtension<D2, BaseField = F>,
        P: PackedField<Scalar = FE>;
    type EvaluationFrameTarget = StarkFrame<ExtensionTarget<D>, ExtensionTarget<D>, COLS, 0>;

    fn eval_packed_generic<FE, P, const D2: usize>(
        &self,
        vars: &Self::EvaluationFrame<FE, P, D2>,
        yield_constr: &mut ConstraintConsumer<P>,
    ) where
        FE: FieldExtension<D2, BaseField = F>,
        P: PackedField<Scalar = FE>,
    {
        for lane in vars.get_local_values().chunks(LANE_COLS) {
            eval(lane, yield_constr);
        }
    }

    fn eval_ext_circuit(
        &self,
        builder: &mut CircuitBuilder<F, D>,
        vars: &Self::EvaluationFrameTarget,
        yield_constr: &mut RecursiveConstraintConsumer<F, D>,
    ) {
        for lane in vars.get_local_values().chunks(LANE_COLS) {
            eval_circuit(builder, lane, yield_constr);
        }
    }

    fn constraint_degree(&self) -> usize {
        3
    }
}

#[cfg(test)]
mod tests {
    use std::panic::{catch_unwind, AssertUnwindSafe};

    use plonky2::field::polynomial::PolynomialValues;
    use plonky2::field::types::Sample;
    use plonky2::util::timing::TimingTree;
    use starky::config::StarkConfig;
    use starky::prover::prove;
    use starky::stark_testing::{test_stark_circuit_constraints, test_stark_low_degree};
    use starky::util::trace_rows_to_poly_values;
    use starky::verifier::verify_stark_proof;

    use super::*;
    use crate::C;

    type OneLane = Lanes<LANE_COLS>;
    const ONE_LANE: OneLane = Lanes;

    fn row(input: [F; WIDTH]) -> [F; LANE_COLS] {
        OneLane::row(&[input])
    }

    /// The lane's constraints on one row, combined with a random challenge: zero iff all hold.
    fn combined_constraints(cols: &[F]) -> F {
        let mut consumer = ConstraintConsumer::new(vec![F::rand()], F::ONE, F::ZERO, F::ZERO);
        eval::<F, F, 1>(cols, &mut consumer);
        consumer.accumulators()[0]
    }

    #[test]
    fn fill_computes_plonky2_poseidon() {
        for state in std::iter::once([F::ZERO; WIDTH]).chain((0..300).map(|_| F::rand_array())) {
            let mut cols = [F::ZERO; LANE_COLS];
            let output = fill(&mut cols, state);
            assert_eq!(output, <F as Poseidon>::poseidon(state), "input {state:?}");
            assert_eq!(input(&cols), state);
        }
    }

    #[test]
    fn eval_output_is_the_permutation_output() {
        let input = F::rand_array();
        let cols = row(input);
        let mut consumer = ConstraintConsumer::new(vec![F::rand()], F::ONE, F::ZERO, F::ZERO);
        let output = eval::<F, F, 1>(&cols, &mut consumer);
        assert_eq!(output, <F as Poseidon>::poseidon(input));
        assert_eq!(consumer.accumulators()[0], F::ZERO);
    }

    #[test]
    fn constraints_are_degree_3() -> anyhow::Result<()> {
        test_stark_low_degree(ONE_LANE)
    }

    #[test]
    fn circuit_constraints_match_native() -> anyhow::Result<()> {
        test_stark_circuit_constraints::<F, C, _, D>(ONE_LANE)
    }

    #[test]
    fn two_lanes_are_two_independent_permutations() -> anyhow::Result<()> {
        let (a, b) = (F::rand_array(), F::rand_array());
        let cols = Lanes::<{ 2 * LANE_COLS }>::row(&[a, b]);
        assert_eq!(cols[..LANE_COLS], row(a));
        assert_eq!(cols[LANE_COLS..], row(b));
        test_stark_low_degree(Lanes::<{ 2 * LANE_COLS }>)?;
        test_stark_circuit_constraints::<F, C, _, D>(Lanes::<{ 2 * LANE_COLS }>)
    }

    fn trace(rows: &[[F; LANE_COLS]]) -> Vec<PolynomialValues<F>> {
        trace_rows_to_poly_values(rows.to_vec())
    }

    #[test]
    fn proof_of_random_permutations_verifies_and_a_wrong_sbox_does_not() -> anyhow::Result<()> {
        let config = StarkConfig::standard_fast_config();
        let mut rows: Vec<_> = (0..1 << 8).map(|_| row(F::rand_array())).collect();
        let proof = prove::<F, C, _, D>(ONE_LANE, &config, trace(&rows), &[], None, &mut TimingTree::default())?;
        verify_stark_proof(ONE_LANE, proof, &config, None)?;

        // The S-box output of element 0 in the first partial round, on row 77.
        let (bad_row, bad_col) = (77, WIDTH + HALF_N_FULL_ROUNDS * 2 * WIDTH + 1);
        rows[bad_row][bad_col] += F::ONE;
        assert_ne!(combined_constraints(&rows[bad_row]), F::ZERO);
        // starky built with debug assertions checks the constraints on the trace and panics;
        // without them (release, and the workspace's test builds) it proves, and verification
        // must then fail.
        let proved = catch_unwind(AssertUnwindSafe(|| {
            prove::<F, C, _, D>(ONE_LANE, &config, trace(&rows), &[], None, &mut TimingTree::default())
        }));
        if let Ok(Ok(proof)) = proved {
            assert!(verify_stark_proof(ONE_LANE, proof, &config, None).is_err());
        }
        Ok(())
    }
}
