//! One definition of an AIR's constraints for both of starky's evaluators.
//!
//! starky evaluates constraints twice: natively on packed field elements (the prover's quotient
//! and the verifier) and as gates of a plonky2 circuit (the recursive verifier). The two must
//! yield the same constraints in the same order, or the recursive verifier rejects honest proofs.
//! Writing the transfer AIR once against [`Algebra`] makes that hold by construction;
//! `stark_testing::test_stark_circuit_constraints` checks it.

use plonky2::field::extension::{Extendable, FieldExtension};
use plonky2::field::packed::PackedField;
use plonky2::field::types::Field;
use plonky2::iop::ext_target::ExtensionTarget;
use plonky2::plonk::circuit_builder::CircuitBuilder;
use starky::constraint_consumer::{ConstraintConsumer, RecursiveConstraintConsumer};

use crate::{D, F};

/// Field operations on constraint expressions, and the four kinds of constraint starky knows.
pub trait Algebra {
    type E: Copy;
    fn add(&mut self, a: Self::E, b: Self::E) -> Self::E;
    fn sub(&mut self, a: Self::E, b: Self::E) -> Self::E;
    fn mul(&mut self, a: Self::E, b: Self::E) -> Self::E;
    /// `c · a` for a constant `c` of the base field.
    fn scale(&mut self, c: F, a: Self::E) -> Self::E;
    fn constant(&mut self, c: F) -> Self::E;
    /// The Poseidon lane whose columns start at `cols[0]`: yields its constraints, returns its
    /// output state.
    fn poseidon(&mut self, cols: &[Self::E]) -> [Self::E; 12];

    /// A constraint on every row.
    fn on_all(&mut self, c: Self::E);
    /// A constraint between each row and the next (not between the last row and the first).
    fn on_transition(&mut self, c: Self::E);
    fn on_first(&mut self, c: Self::E);
    fn on_last(&mut self, c: Self::E);

    fn one(&mut self) -> Self::E {
        self.constant(F::ONE)
    }
    /// `1 - a`
    fn not(&mut self, a: Self::E) -> Self::E {
        let one = self.one();
        self.sub(one, a)
    }
    /// `a + c` for a constant `c`.
    fn add_const(&mut self, a: Self::E, c: F) -> Self::E {
        let c = self.constant(c);
        self.add(a, c)
    }
    /// `a + s · (b - a)`: `a` when `s` is 0, `b` when `s` is 1.
    fn select(&mut self, s: Self::E, a: Self::E, b: Self::E) -> Self::E {
        let d = self.sub(b, a);
        let sd = self.mul(s, d);
        self.add(a, sd)
    }
    /// `Σ terms`
    fn sum(&mut self, terms: &[Self::E]) -> Self::E {
        let mut acc = self.constant(F::ZERO);
        for &t in terms {
            acc = self.add(acc, t);
        }
        acc
    }
}

/// Native evaluation on packed values, for the prover and the verifier.
/// `D2` is the degree of the extension the values live in (1 for the prover's base field).
pub struct Native<'a, P: PackedField, const D2: usize> {
    pub consumer: &'a mut ConstraintConsumer<P>,
}

impl<FE, P, const D2: usize> Algebra for Native<'_, P, D2>
where
    FE: FieldExtension<D2, BaseField = F>,
    P: PackedField<Scalar = FE>,
{
    type E = P;
    fn add(&mut self, a: P, b: P) -> P {
        a + b
    }
    fn sub(&mut self, a: P, b: P) -> P {
        a - b
    }
    fn mul(&mut self, a: P, b: P) -> P {
        a * b
    }
    fn scale(&mut self, c: F, a: P) -> P {
        a * FE::from_basefield(c)
    }
    fn constant(&mut self, c: F) -> P {
        P::from(FE::from_basefield(c))
    }
    fn poseidon(&mut self, cols: &[P]) -> [P; 12] {
        super::poseidon::eval(cols, self.consumer)
    }
    fn on_all(&mut self, c: P) {
        self.consumer.constraint(c)
    }
    fn on_transition(&mut self, c: P) {
        self.consumer.constraint_transition(c)
    }
    fn on_first(&mut self, c: P) {
        self.consumer.constraint_first_row(c)
    }
    fn on_last(&mut self, c: P) {
        self.consumer.constraint_last_row(c)
    }
}

/// Evaluation as gates of a recursive verifier circuit.
pub struct Circuit<'a> {
    pub builder: &'a mut CircuitBuilder<F, D>,
    pub consumer: &'a mut RecursiveConstraintConsumer<F, D>,
}

impl Algebra for Circuit<'_> {
    type E = ExtensionTarget<D>;
    fn add(&mut self, a: Self::E, b: Self::E) -> Self::E {
        self.builder.add_extension(a, b)
    }
    fn sub(&mut self, a: Self::E, b: Self::E) -> Self::E {
        self.builder.sub_extension(a, b)
    }
    fn mul(&mut self, a: Self::E, b: Self::E) -> Self::E {
        self.builder.mul_extension(a, b)
    }
    fn scale(&mut self, c: F, a: Self::E) -> Self::E {
        self.builder.mul_const_extension(c, a)
    }
    fn constant(&mut self, c: F) -> Self::E {
        self.builder.constant_extension(<<F as Extendable<D>>::Extension as FieldExtension<D>>::from_basefield(c))
    }
    fn poseidon(&mut self, cols: &[Self::E]) -> [Self::E; 12] {
        super::poseidon::eval_circuit(self.builder, cols, self.consumer)
    }
    fn on_all(&mut self, c: Self::E) {
        self.consumer.constraint(self.builder, c)
    }
    fn on_transition(&mut self, c: Self::E) {
        self.consumer.constraint_transition(self.builder, c)
    }
    fn on_first(&mut self, c: Self::E) {
        self.consumer.constraint_first_row(self.builder, c)
    }
    fn on_last(&mut self, c: Self::E) {
        self.consumer.constraint_last_row(self.builder, c)
    }
}
