//! The `aggregate` circuit: verifies `arity` child proofs of the level below and checks that they
//! chain, so that one proof stands for a run of consecutive chunks.
//!
//! Child 0 is always present. A missing child (the last node of a level may have fewer) is filled
//! with a copy of a present child's proof: it is still verified, which keeps the circuit fixed,
//! but its `present` flag is off and its public values are ignored. Present children form a
//! prefix.

use plonky2::iop::target::BoolTarget;
use plonky2::iop::witness::{PartialWitness, WitnessWrite};
use plonky2::plonk::circuit_builder::CircuitBuilder;
use plonky2::plonk::circuit_data::{CircuitConfig, CircuitData};
use plonky2::plonk::proof::{ProofWithPublicInputs, ProofWithPublicInputsTarget};

use plonky2::util::serialization::{Buffer, IoResult, Read, Write};

use super::basic::select_hash;
use super::cache::Cached;
use super::{chunk_public, register_chunk_public, ChunkPublicTargets};
use crate::{C, D, F};

pub struct AggregateCircuit {
    pub data: CircuitData<F, C, D>,
    children: Vec<ProofWithPublicInputsTarget<D>>,
    present: Vec<BoolTarget>,
}

impl AggregateCircuit {
    pub fn build(child: &CircuitData<F, C, D>, arity: usize) -> Self {
        let mut b = CircuitBuilder::<F, D>::new(CircuitConfig::standard_recursion_config());
        let child_vk = b.constant_verifier_data(&child.verifier_only);
        let mut children = Vec::with_capacity(arity);
        let mut present: Vec<BoolTarget> = Vec::with_capacity(arity);
        let mut acc: Option<ChunkPublicTargets> = None;

        for i in 0..arity {
            let proof = b.add_virtual_proof_with_pis(&child.common);
            b.verify_proof::<C>(&proof, &child_vk, &child.common);
            let pis = chunk_public(&proof.public_inputs);
            let is_present = if i == 0 { b._true() } else { b.add_virtual_bool_target_safe() };
            acc = Some(match acc {
                None => pis,
                Some(prev) => {
                    // Present children form a prefix: present[i] implies present[i - 1].
                    let prev_present = *present.last().expect("child 0 is pushed first");
                    let not_prev = b.not(prev_present);
                    let violation = b.mul(is_present.target, not_prev.target);
                    b.assert_zero(violation);
                    // A present child continues where the previous one ended.
                    for j in 0..4 {
                        let d = b.sub(pis.root_before.elements[j], prev.root_after.elements[j]);
                        let d = b.mul(is_present.target, d);
                        b.assert_zero(d);
                        let d = b.sub(pis.commit_before.elements[j], prev.commit_after.elements[j]);
                        let d = b.mul(is_present.target, d);
                        b.assert_zero(d);
                    }
                    let count = b.mul_add(is_present.target, pis.count, prev.count);
                    ChunkPublicTargets {
                        root_before: prev.root_before,
                        root_after: select_hash(&mut b, is_present, pis.root_after, prev.root_after),
                        commit_before: prev.commit_before,
                        commit_after: select_hash(&mut b, is_present, pis.commit_after, prev.commit_after),
                        count,
                    }
                }
            });
            present.push(is_present);
            children.push(proof);
        }
        register_chunk_public(&mut b, &acc.expect("arity is at least 1"));
        let data = b.build::<C>();
        Self { data, children, present }
    }

    /// Proves a node over `children` (1 to `arity` proofs, in chunk order).
    pub fn prove(&self, children: &[ProofWithPublicInputs<F, C, D>]) -> anyhow::Result<ProofWithPublicInputs<F, C, D>> {
        anyhow::ensure!(
            !children.is_empty() && children.len() <= self.children.len(),
            "an aggregate takes 1 to {} children, got {}",
            self.children.len(),
            children.len()
        );
        let mut pw = PartialWitness::new();
        for (i, target) in self.children.iter().enumerate() {
            let proof = children.get(i).unwrap_or(&children[0]);
            pw.set_proof_with_pis_target(target, proof)?;
            if i > 0 {
                pw.set_bool_target(self.present[i], i < children.len())?;
            }
        }
        self.data.prove(pw)
    }
}

impl Cached for AggregateCircuit {
    fn data(&self) -> &CircuitData<F, C, D> {
        &self.data
    }

    fn write_targets(&self, out: &mut Vec<u8>) -> IoResult<()> {
        out.write_usize(self.children.len())?;
        for child in &self.children {
            out.write_target_proof_with_public_inputs(child)?;
        }
        out.write_target_bool_vec(&self.present)
    }

    fn read_targets(data: CircuitData<F, C, D>, buf: &mut Buffer) -> IoResult<Self> {
        let n = buf.read_usize()?;
        let children = (0..n).map(|_| buf.read_target_proof_with_public_inputs()).collect::<IoResult<_>>()?;
        let present = buf.read_target_bool_vec()?;
        Ok(Self { data, children, present })
    }
}
