//! The `final` and `compress` circuits.
//!
//! `final` verifies the top aggregate of a batch, binds the batch's public values and, when the
//! batch continues a previous one, verifies that batch's final proof. Because that previous proof
//! is a proof of this very circuit, `final` is a cyclic circuit (plonky2's cyclic recursion): its
//! own verifier data is part of its public inputs and every proof in the chain must carry the same.
//!
//! `compress` verifies one final proof, checks that it carries the final circuit's own verifier
//! data, and re-exposes the batch's public values in a proof with a higher FRI rate: fewer query
//! rounds make it smaller and cheaper to verify.

use std::sync::OnceLock;

use plonky2::field::types::Field;
use plonky2::fri::FriConfig;
use plonky2::gates::noop::NoopGate;
use plonky2::iop::target::{BoolTarget, Target};
use plonky2::iop::witness::{PartialWitness, WitnessWrite};
use plonky2::plonk::circuit_builder::CircuitBuilder;
use plonky2::plonk::circuit_data::{CircuitConfig, CircuitData, CommonCircuitData, VerifierCircuitTarget};
use plonky2::plonk::proof::{ProofWithPublicInputs, ProofWithPublicInputsTarget};
use plonky2::recursion::cyclic_recursion::check_cyclic_proof_verifier_data;
use plonky2::recursion::dummy_circuit::cyclic_base_proof;

use plonky2::util::serialization::{Buffer, IoResult, Read, Write};

use super::cache::Cached;
use super::chunk_public;
use crate::{C, D, F};

/// Public values of `final` and `compress`, in this order. `final` appends its verifier data.
pub const CHAIN_ID: usize = 0;
pub const BATCH_NUMBER: usize = 1;
pub const PRE_ROOT: usize = 2;
pub const POST_ROOT: usize = 6;
pub const TX_COMMITMENT: usize = 10;
pub const TX_COUNT: usize = 14;
pub const HAS_PREVIOUS: usize = 15;
pub const NUM_VALUES: usize = 16;

/// Rows left free below a power of two for what `build` adds itself (public input hashing and
/// constants), so that padding lands on the intended degree.
const BUILD_MARGIN: usize = 256;

fn pad_to_degree(b: &mut CircuitBuilder<F, D>, degree_bits: usize) {
    while b.num_gates() < (1 << degree_bits) - BUILD_MARGIN {
        b.add_gate(NoopGate, vec![]);
    }
}

/// The shape a final proof must have: the gates of a recursive verifier, the given degree and
/// public input count. Cyclic recursion needs it before the circuit exists.
fn goal_common_data(
    inner: &CommonCircuitData<F, D>,
    degree_bits: usize,
    num_public_inputs: usize,
) -> CommonCircuitData<F, D> {
    let mut b = CircuitBuilder::<F, D>::new(CircuitConfig::standard_recursion_config());
    let proof = b.add_virtual_proof_with_pis(inner);
    let vk = b.add_virtual_verifier_data(b.config.fri_config.cap_height);
    b.verify_proof::<C>(&proof, &vk, inner);
    pad_to_degree(&mut b, degree_bits);
    for _ in 0..num_public_inputs {
        b.add_virtual_public_input();
    }
    b.build::<C>().common
}

pub struct FinalCircuit {
    pub data: CircuitData<F, C, D>,
    top: ProofWithPublicInputsTarget<D>,
    previous: ProofWithPublicInputsTarget<D>,
    has_previous: BoolTarget,
    chain_id: Target,
    batch_number: Target,
    own_vk: VerifierCircuitTarget,
    /// The stand-in for "no previous proof"; costs a dummy proof, so built once.
    base_proof: OnceLock<ProofWithPublicInputs<F, C, D>>,
}

impl FinalCircuit {
    pub fn build(top: &CircuitData<F, C, D>) -> Self {
        // The smallest degree whose goal shape the circuit can match.
        for degree_bits in 14..=17 {
            if let Some(circuit) = Self::try_build(top, degree_bits) {
                return circuit;
            }
        }
        panic!("the final circuit matches no goal shape between degrees 2^14 and 2^17");
    }

    fn try_build(top: &CircuitData<F, C, D>, degree_bits: usize) -> Option<Self> {
        let mut b = CircuitBuilder::<F, D>::new(CircuitConfig::standard_recursion_config());
        let chain_id = b.add_virtual_target();
        let batch_number = b.add_virtual_target();
        let top_proof = b.add_virtual_proof_with_pis(&top.common);
        let top_vk = b.constant_verifier_data(&top.verifier_only);
        b.verify_proof::<C>(&top_proof, &top_vk, &top.common);
        let t = chunk_public(&top_proof.public_inputs);
        // The transaction commitment of a batch starts from zero.
        for e in t.commit_before.elements {
            b.assert_zero(e);
        }
        let has_previous = b.add_virtual_bool_target_safe();
        b.register_public_input(chain_id);
        b.register_public_input(batch_number);
        b.register_public_inputs(&t.root_before.elements);
        b.register_public_inputs(&t.root_after.elements);
        b.register_public_inputs(&t.commit_after.elements);
        b.register_public_input(t.count);
        b.register_public_input(has_previous.target);
        let own_vk = b.add_verifier_data_public_inputs();

        let goal = goal_common_data(&top.common, degree_bits, b.num_public_inputs());
        let previous = b.add_virtual_proof_with_pis(&goal);
        // A previous batch has the same chain id, the number before ours, and ends at our start.
        let prev = &previous.public_inputs;
        let gated = |b: &mut CircuitBuilder<F, D>, x: Target, y: Target| {
            let d = b.sub(x, y);
            let d = b.mul(has_previous.target, d);
            b.assert_zero(d);
        };
        gated(&mut b, prev[CHAIN_ID], chain_id);
        let one = b.one();
        let next = b.add(prev[BATCH_NUMBER], one);
        gated(&mut b, next, batch_number);
        for j in 0..4 {
            gated(&mut b, prev[POST_ROOT + j], t.root_before.elements[j]);
        }
        b.conditionally_verify_cyclic_proof_or_dummy::<C>(has_previous, &previous, &goal)
            .expect("the goal shape has the verifier data public inputs");
        pad_to_degree(&mut b, degree_bits);
        let (data, matches_goal) = b.try_build_with_options::<C>(true);
        matches_goal.then(|| Self {
            data,
            top: top_proof,
            previous,
            has_previous,
            chain_id,
            batch_number,
            own_vk,
            base_proof: OnceLock::new(),
        })
    }

    /// The stand-in proof for a batch without a previous one, built on first use.
    pub fn base_proof(&self) -> &ProofWithPublicInputs<F, C, D> {
        self.base_proof
            .get_or_init(|| cyclic_base_proof(&self.data.common, &self.data.verifier_only, Default::default()))
    }

    /// Checks that `proof` is a final proof of this circuit, its own verifier data included.
    pub fn verify(&self, proof: &ProofWithPublicInputs<F, C, D>) -> anyhow::Result<()> {
        check_cyclic_proof_verifier_data(proof, &self.data.verifier_only, &self.data.common)?;
        self.data.verify(proof.clone())
    }

    pub fn prove(
        &self,
        top: &ProofWithPublicInputs<F, C, D>,
        chain_id: u64,
        batch_number: u64,
        previous: Option<&ProofWithPublicInputs<F, C, D>>,
    ) -> anyhow::Result<ProofWithPublicInputs<F, C, D>> {
        let mut pw = PartialWitness::new();
        pw.set_proof_with_pis_target(&self.top, top)?;
        pw.set_target(self.chain_id, F::from_canonical_u64(chain_id))?;
        pw.set_target(self.batch_number, F::from_canonical_u64(batch_number))?;
        pw.set_bool_target(self.has_previous, previous.is_some())?;
        let previous = match previous {
            Some(p) => p,
            None => self.base_proof(),
        };
        pw.set_proof_with_pis_target(&self.previous, previous)?;
        pw.set_verifier_data_target(&self.own_vk, &self.data.verifier_only)?;
        self.data.prove(pw)
    }
}

pub struct CompressCircuit {
    pub data: CircuitData<F, C, D>,
    inner: ProofWithPublicInputsTarget<D>,
}

/// A higher FRI rate with fewer queries: the same conjectured security (rate bits × queries +
/// proof-of-work bits ≥ 100: 4 × 21 + 16) in a smaller proof, at the price of a low-degree
/// extension twice as large as the other rounds': 106 KB against the final proof's 147 KB. Rate
/// 2^-6 with 14 queries gave 78 KB, but proved three to four times slower (15 s against 4 s on two
/// cores, the longest task of a job's serial end) and made a cache entry of 401 MiB against 116.
pub fn compress_config() -> CircuitConfig {
    let standard = CircuitConfig::standard_recursion_config();
    CircuitConfig {
        fri_config: FriConfig { rate_bits: 4, num_query_rounds: 21, ..standard.fri_config.clone() },
        ..standard
    }
}

impl CompressCircuit {
    pub fn build(fin: &FinalCircuit) -> Self {
        let mut b = CircuitBuilder::<F, D>::new(compress_config());
        let inner = b.add_virtual_proof_with_pis(&fin.data.common);
        let vk = b.constant_verifier_data(&fin.data.verifier_only);
        b.verify_proof::<C>(&inner, &vk, &fin.data.common);
        // The final proof must name the final circuit as its own: every previous proof that it
        // verified was then checked against the same verifier data.
        let claimed = &inner.public_inputs[NUM_VALUES..];
        let expected =
            vk.circuit_digest.elements.iter().chain(vk.constants_sigmas_cap.0.iter().flat_map(|h| h.elements.iter()));
        let mut n = 0;
        for (&c, &e) in claimed.iter().zip(expected) {
            b.connect(c, e);
            n += 1;
        }
        assert_eq!(n, claimed.len(), "final proof layout: values then verifier data");
        b.register_public_inputs(&inner.public_inputs[..NUM_VALUES]);
        let data = b.build::<C>();
        Self { data, inner }
    }

    pub fn prove(&self, fin: &ProofWithPublicInputs<F, C, D>) -> anyhow::Result<ProofWithPublicInputs<F, C, D>> {
        let mut pw = PartialWitness::new();
        pw.set_proof_with_pis_target(&self.inner, fin)?;
        self.data.prove(pw)
    }
}

impl Cached for FinalCircuit {
    fn data(&self) -> &CircuitData<F, C, D> {
        &self.data
    }

    fn write_targets(&self, out: &mut Vec<u8>) -> IoResult<()> {
        out.write_target_proof_with_public_inputs(&self.top)?;
        out.write_target_proof_with_public_inputs(&self.previous)?;
        out.write_target_bool(self.has_previous)?;
        out.write_target(self.chain_id)?;
        out.write_target(self.batch_number)?;
        out.write_target_verifier_circuit(&self.own_vk)?;
        // The base proof costs a dummy circuit and a proof: worth keeping with the circuit.
        out.write_proof_with_public_inputs(self.base_proof())
    }

    fn read_targets(data: CircuitData<F, C, D>, buf: &mut Buffer) -> IoResult<Self> {
        let top = buf.read_target_proof_with_public_inputs()?;
        let previous = buf.read_target_proof_with_public_inputs()?;
        let has_previous = buf.read_target_bool()?;
        let chain_id = buf.read_target()?;
        let batch_number = buf.read_target()?;
        let own_vk = buf.read_target_verifier_circuit()?;
        let base_proof = OnceLock::from(buf.read_proof_with_public_inputs(&data.common)?);
        Ok(Self { data, top, previous, has_previous, chain_id, batch_number, own_vk, base_proof })
    }
}

impl Cached for CompressCircuit {
    fn data(&self) -> &CircuitData<F, C, D> {
        &self.data
    }

    fn write_targets(&self, out: &mut Vec<u8>) -> IoResult<()> {
        out.write_target_proof_with_public_inputs(&self.inner)
    }

    fn read_targets(data: CircuitData<F, C, D>, buf: &mut Buffer) -> IoResult<Self> {
        Ok(Self { data, inner: buf.read_target_proof_with_public_inputs()? })
    }
}
