//! The proof file: what `leader prove` writes and `leader verify` checks.
//!
//! ```json
//! { "format": "zkfleet-proof/1", "params": {...}, "circuit_digest": "0x…",
//!   "public_values": {...}, "proof": "<base64 compress proof>",
//!   "chain_proof": "<base64 final proof, what the next batch's --previous-proof verifies>" }
//! ```
//! Digests and roots are written as `0x` and 64 hex digits: the four field elements of the digest,
//! each as 16 big-endian hex digits.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use plonky2::field::types::PrimeField64;
use serde::{Deserialize, Serialize};

use crate::circuits::chain::{
    BATCH_NUMBER, CHAIN_ID, HAS_PREVIOUS, NUM_VALUES, POST_ROOT, PRE_ROOT, TX_COMMITMENT, TX_COUNT,
};
use crate::circuits::CircuitSet;
use common::cli::one_line;

use crate::execute::Hash4;
use crate::params::Params;
use crate::{Proof, F};

pub const FORMAT: &str = "zkfleet-proof/1";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicValues {
    pub chain_id: u64,
    pub batch_number: u64,
    pub pre_state_root: String,
    pub post_state_root: String,
    pub tx_commitment: String,
    pub tx_count: u64,
    /// Whether the proof also verified the previous batch's final proof.
    pub previous_verified: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofFile {
    pub format: String,
    pub params: Params,
    pub circuit_digest: String,
    pub public_values: PublicValues,
    pub proof: String,
    pub chain_proof: String,
}

/// Why a proof file is not accepted. Every variant means "this proof does not verify" to a user.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    Rejected(String),
}

pub fn hash_hex(h: Hash4) -> String {
    let mut s = String::from("0x");
    for e in h {
        s.push_str(&format!("{e:016x}"));
    }
    s
}

fn values_from(pis: &[F]) -> PublicValues {
    let n = |i: usize| pis[i].to_canonical_u64();
    let h = |i: usize| hash_hex([n(i), n(i + 1), n(i + 2), n(i + 3)]);
    PublicValues {
        chain_id: n(CHAIN_ID),
        batch_number: n(BATCH_NUMBER),
        pre_state_root: h(PRE_ROOT),
        post_state_root: h(POST_ROOT),
        tx_commitment: h(TX_COMMITMENT),
        tx_count: n(TX_COUNT),
        previous_verified: n(HAS_PREVIOUS) == 1,
    }
}

pub fn circuit_digest(circuits: &CircuitSet) -> String {
    let d = circuits.compress().data.verifier_only.circuit_digest;
    hash_hex(d.elements.map(|e| e.to_canonical_u64()))
}

impl ProofFile {
    /// Assembles the file from a compressed proof and the final proof it wraps.
    pub fn new(circuits: &CircuitSet, compressed: &[u8], final_proof: &[u8]) -> Result<Self, VerifyError> {
        let proof = Proof::from_bytes(compressed.to_vec(), &circuits.compress().data.common)
            .map_err(|e| VerifyError::Malformed(format!("compressed proof does not decode: {e}")))?;
        Ok(Self {
            format: FORMAT.to_string(),
            params: *circuits.params(),
            circuit_digest: circuit_digest(circuits),
            public_values: values_from(&proof.public_inputs[..NUM_VALUES]),
            proof: BASE64.encode(compressed),
            chain_proof: BASE64.encode(final_proof),
        })
    }

    pub fn from_json(text: &str) -> Result<Self, VerifyError> {
        let file: ProofFile = serde_json::from_str(text)
            .map_err(|e| VerifyError::Malformed(one_line(&format!("not a proof file: {e}")).into_owned()))?;
        if file.format != FORMAT {
            return Err(VerifyError::Malformed(format!("unknown proof format {:?}", file.format)));
        }
        file.params.validate().map_err(VerifyError::Malformed)?;
        Ok(file)
    }

    /// The final proof inside, decoded and checked: what a next batch chains onto.
    pub fn chain_proof_bytes(&self) -> Result<Vec<u8>, VerifyError> {
        BASE64.decode(&self.chain_proof).map_err(|e| VerifyError::Malformed(format!("chain_proof is not base64: {e}")))
    }

    /// Checks the digest, both proofs and the public values. `circuits` must be built from
    /// `self.params`.
    pub fn verify(&self, circuits: &CircuitSet) -> Result<PublicValues, VerifyError> {
        if circuits.params() != &self.params {
            return Err(VerifyError::Malformed("circuits built for other parameters".into()));
        }
        let expected = circuit_digest(circuits);
        if self.circuit_digest != expected {
            return Err(VerifyError::Rejected(format!(
                "circuit digest {} is not the digest {expected} of these parameters",
                self.circuit_digest
            )));
        }
        let bytes =
            BASE64.decode(&self.proof).map_err(|e| VerifyError::Malformed(format!("proof is not base64: {e}")))?;
        let compress = circuits.compress();
        let proof = Proof::from_bytes(bytes, &compress.data.common)
            .map_err(|e| VerifyError::Rejected(format!("proof does not decode: {e}")))?;
        compress
            .data
            .verify(proof.clone())
            .map_err(|e| VerifyError::Rejected(format!("proof does not verify: {e}")))?;
        let values = values_from(&proof.public_inputs);
        if values != self.public_values {
            return Err(VerifyError::Rejected("public values in the file differ from the ones the proof binds".into()));
        }
        let fin = circuits.final_circuit();
        let chain = Proof::from_bytes(self.chain_proof_bytes()?, &fin.data.common)
            .map_err(|e| VerifyError::Rejected(format!("chain proof does not decode: {e}")))?;
        fin.verify(&chain).map_err(|e| VerifyError::Rejected(format!("chain proof does not verify: {e}")))?;
        if values_from(&chain.public_inputs[..NUM_VALUES]) != values {
            return Err(VerifyError::Rejected("chain proof is for other public values".into()));
        }
        Ok(values)
    }
}

/// Checks that `next` continues `previous`; both must already be verified.
pub fn check_link(previous: &PublicValues, next: &PublicValues) -> Result<(), String> {
    if next.chain_id != previous.chain_id {
        return Err(format!("chain id {} differs from the previous proof's {}", next.chain_id, previous.chain_id));
    }
    if Some(next.batch_number) != previous.batch_number.checked_add(1) {
        return Err(format!(
            "batch number {} does not follow the previous proof's {}",
            next.batch_number, previous.batch_number
        ));
    }
    if next.pre_state_root != previous.post_state_root {
        return Err(format!(
            "pre-state root {} is not the previous proof's post-state root {}",
            next.pre_state_root, previous.post_state_root
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the proof file fuzz target: serde names an unknown field as written.
    #[test]
    fn an_error_quoting_a_key_with_a_newline_is_one_line() {
        let err = ProofFile::from_json(r#"{"format":"zkfleet-proof/1","evil\nkey":1}"#).unwrap_err().to_string();
        assert!(err.starts_with(r"not a proof file: unknown field `evil\nkey`"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
}
