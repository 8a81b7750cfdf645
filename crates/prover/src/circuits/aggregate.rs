//! The `aggregate` circuit: verifies `arity` child proofs of the level below and checks that they
//! chain, so that one proof stands for a run of consecutive chunks.
//!
//! Level 1 verifies `basic` proofs, which are STARKs ([`crate::stark`]), with starky's recursive
//! verifier; the levels above verify the plonky2 proofs of the level below. Both shapes share the
//! chaining rules ([`chain`]) and the public values ([`ChunkPublicTargets`]).
//!
//! Child 0 is always present. A missing child (the last node of a level may have fewer) is filled
//! with a copy of a present child's proof: it is still verified, which keeps the circuit fixed,
//! but its `present` flag is off and its public values are ignored. Present children form a
//! prefix.

use plonky2::hash::hash_types::HashOutTarget;
use plonky2::iop::target::{BoolTarget, Target};
use plonky2::iop::witness::{PartialWitness, WitnessWrite};
use plonky2::plonk::circuit_builder::CircuitBuilder;
use plonky2::plonk::circuit_data::{CircuitConfig, CircuitData};
use plonky2::plonk::proof::{ProofWithPublicInputs, ProofWithPublicInputsTarget};
use plonky2::util::serialization::{Buffer, IoResult, Read, Write};
use starky::proof::{StarkProofTarget, StarkProofWithPublicInputsTarget};
use starky::recursive_verifier::{
    add_virtual_stark_proof_with_pis, set_stark_proof_with_pis_target, verify_stark_proof_circuit,
};

use super::cache::Cached;
use super::{chunk_public, register_chunk_public, ChunkPublicTargets};
use crate::stark::{self, StarkProof, TransferStark};
use crate::{C, D, F};

/// What the children of an aggregate are proofs of.
pub enum ChildCircuit<'a> {
    /// `basic` STARK proofs of this AIR, over traces of `2^degree_bits` rows.
    Basic { stark: TransferStark, degree_bits: usize },
    /// Proofs of the aggregate circuit one level down.
    Aggregate(&'a CircuitData<F, C, D>),
}

/// The proof targets of the children, in chunk order.
enum Children {
    Basic { proofs: Vec<StarkProofWithPublicInputsTarget<D>>, degree_bits: usize, zero: Target },
    Aggregate(Vec<ProofWithPublicInputsTarget<D>>),
}

/// The child proofs one aggregate proof is made from.
pub enum ChildProofs<'a> {
    Basic(&'a [StarkProof]),
    Aggregate(&'a [ProofWithPublicInputs<F, C, D>]),
}

impl ChildProofs<'_> {
    fn len(&self) -> usize {
        match self {
            Self::Basic(p) => p.len(),
            Self::Aggregate(p) => p.len(),
        }
    }
}

pub struct AggregateCircuit {
    pub data: CircuitData<F, C, D>,
    children: Children,
    present: Vec<BoolTarget>,
}

impl AggregateCircuit {
    pub fn build(child: ChildCircuit<'_>, arity: usize) -> Self {
        let mut b = CircuitBuilder::<F, D>::new(CircuitConfig::standard_recursion_config());
        let (children, publics) = match child {
            ChildCircuit::Basic { stark, degree_bits } => {
                let config = stark::config();
                let proofs: Vec<_> = (0..arity)
                    .map(|_| {
                        let proof = add_virtual_stark_proof_with_pis(&mut b, &stark, &config, degree_bits, 0, 0);
                        verify_stark_proof_circuit::<F, C, _, D>(&mut b, stark, proof.clone(), &config, None);
                        proof
                    })
                    .collect();
                let publics = proofs.iter().map(|p| chunk_public(&p.public_inputs)).collect::<Vec<_>>();
                let zero = b.zero();
                (Children::Basic { proofs, degree_bits, zero }, publics)
            }
            ChildCircuit::Aggregate(data) => {
                let vk = b.constant_verifier_data(&data.verifier_only);
                let proofs: Vec<_> = (0..arity)
                    .map(|_| {
                        let proof = b.add_virtual_proof_with_pis(&data.common);
                        b.verify_proof::<C>(&proof, &vk, &data.common);
                        proof
                    })
                    .collect();
                let publics = proofs.iter().map(|p| chunk_public(&p.public_inputs)).collect::<Vec<_>>();
                (Children::Aggregate(proofs), publics)
            }
        };
        let (run, present) = chain(&mut b, &publics);
        register_chunk_public(&mut b, &run);
        let data = b.build::<C>();
        Self { data, children, present }
    }

    /// How many children one proof takes at most.
    pub fn arity(&self) -> usize {
        self.present.len()
    }

    /// Proves a node over `children` (1 to `arity` proofs, in chunk order), which must be proofs
    /// of the child circuit this aggregate was built for.
    pub fn prove(&self, children: ChildProofs<'_>) -> anyhow::Result<ProofWithPublicInputs<F, C, D>> {
        let given = children.len();
        anyhow::ensure!(
            given >= 1 && given <= self.arity(),
            "an aggregate takes 1 to {} children, got {given}",
            self.arity()
        );
        let mut pw = PartialWitness::new();
        match (&self.children, children) {
            (Children::Basic { proofs, degree_bits, zero }, ChildProofs::Basic(given)) => {
                for (i, target) in proofs.iter().enumerate() {
                    let proof = given.get(i).unwrap_or(&given[0]);
                    set_stark_proof_with_pis_target(&mut pw, target, proof, *degree_bits, *zero)?;
                }
            }
            (Children::Aggregate(proofs), ChildProofs::Aggregate(given)) => {
                for (i, target) in proofs.iter().enumerate() {
                    pw.set_proof_with_pis_target(target, given.get(i).unwrap_or(&given[0]))?;
                }
            }
            _ => anyhow::bail!("the children are proofs of another round than this aggregate verifies"),
        }
        for (i, flag) in self.present.iter().enumerate().skip(1) {
            pw.set_bool_target(*flag, i < given)?;
        }
        self.data.prove(pw)
    }
}

/// Chains the children's public values: each present child starts where the one before it
/// ended, and present children form a prefix. Returns the public values of the whole run and
/// the `present` flags (child 0's is the constant true).
fn chain(b: &mut CircuitBuilder<F, D>, children: &[ChunkPublicTargets]) -> (ChunkPublicTargets, Vec<BoolTarget>) {
    let mut run = children[0];
    let mut present = vec![b._true()];
    for pis in &children[1..] {
        let is_present = b.add_virtual_bool_target_safe();
        // present[i] implies present[i - 1].
        let prev_present = *present.last().expect("child 0 is pushed first");
        let not_prev = b.not(prev_present);
        let violation = b.mul(is_present.target, not_prev.target);
        b.assert_zero(violation);
        // A present child continues where the previous one ended.
        for j in 0..4 {
            for (start, end) in [(pis.root_before, run.root_after), (pis.commit_before, run.commit_after)] {
                let d = b.sub(start.elements[j], end.elements[j]);
                let d = b.mul(is_present.target, d);
                b.assert_zero(d);
            }
        }
        run = ChunkPublicTargets {
            root_before: run.root_before,
            root_after: select_hash(b, is_present, pis.root_after, run.root_after),
            commit_before: run.commit_before,
            commit_after: select_hash(b, is_present, pis.commit_after, run.commit_after),
            count: b.mul_add(is_present.target, pis.count, run.count),
        };
        present.push(is_present);
    }
    (run, present)
}

fn select_hash(b: &mut CircuitBuilder<F, D>, cond: BoolTarget, x: HashOutTarget, y: HashOutTarget) -> HashOutTarget {
    HashOutTarget { elements: std::array::from_fn(|i| b.select(cond, x.elements[i], y.elements[i])) }
}

impl Cached for AggregateCircuit {
    fn data(&self) -> &CircuitData<F, C, D> {
        &self.data
    }

    fn write_targets(&self, out: &mut Vec<u8>) -> IoResult<()> {
        match &self.children {
            Children::Basic { proofs, degree_bits, zero } => {
                out.write_bool(true)?;
                out.write_usize(*degree_bits)?;
                out.write_target(*zero)?;
                out.write_usize(proofs.len())?;
                for proof in proofs {
                    proof.proof.to_buffer(out)?;
                    out.write_target_vec(&proof.public_inputs)?;
                }
            }
            Children::Aggregate(proofs) => {
                out.write_bool(false)?;
                out.write_usize(proofs.len())?;
                for proof in proofs {
                    out.write_target_proof_with_public_inputs(proof)?;
                }
            }
        }
        out.write_target_bool_vec(&self.present)
    }

    fn read_targets(data: CircuitData<F, C, D>, buf: &mut Buffer) -> IoResult<Self> {
        let children = if buf.read_bool()? {
            let degree_bits = buf.read_usize()?;
            let zero = buf.read_target()?;
            let n = buf.read_usize()?;
            let proofs = (0..n)
                .map(|_| {
                    let proof = StarkProofTarget::from_buffer(buf)?;
                    Ok(StarkProofWithPublicInputsTarget { proof, public_inputs: buf.read_target_vec()? })
                })
                .collect::<IoResult<_>>()?;
            Children::Basic { proofs, degree_bits, zero }
        } else {
            let n = buf.read_usize()?;
            Children::Aggregate((0..n).map(|_| buf.read_target_proof_with_public_inputs()).collect::<IoResult<_>>()?)
        };
        let present = buf.read_target_bool_vec()?;
        Ok(Self { data, children, present })
    }
}
