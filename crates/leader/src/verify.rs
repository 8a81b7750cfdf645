//! `leader verify`: loads or rebuilds the circuits of the file's parameters, checks the circuit digest,
//! both proofs and the public values, and the link to a previous proof when one is given.

use std::collections::HashMap;
use std::path::Path;

use common::Store;
use prover::proof_file::{check_link, ProofFile, PublicValues, VerifyError};
use prover::{CircuitSet, Params, StoreCache};

use crate::Exit;

/// Reads a proof file: one proof, or an array of consecutive proofs (flag says which).
pub fn read_files(path: &Path) -> Result<(Vec<ProofFile>, bool), Exit> {
    let text = std::fs::read_to_string(path).map_err(|e| Exit::Other(format!("reading {}: {e}", path.display())))?;
    let invalid = |e: VerifyError| Exit::Invalid(format!("{}: {e}", path.display()));
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Exit::Invalid(format!("{}: not a proof file: {e}", path.display())))?;
    match value {
        serde_json::Value::Array(items) => {
            if items.is_empty() {
                return Err(Exit::Invalid(format!("{}: holds no proof", path.display())));
            }
            let files = items
                .iter()
                .map(|item| ProofFile::from_json(&item.to_string()).map_err(invalid))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((files, true))
        }
        _ => Ok((vec![ProofFile::from_json(&text).map_err(invalid)?], false)),
    }
}

/// Verifies on a blocking thread of the runtime; circuits come from `cache` when it holds them.
pub fn verify(proof: &Path, previous: Option<&Path>, cache: Option<Store>) -> Result<(), Exit> {
    let (files, is_array) = read_files(proof)?;
    let cache = StoreCache::shared(cache);
    let mut circuits: HashMap<Params, CircuitSet> = HashMap::new();
    let mut check = |file: &ProofFile, path: &Path| -> Result<PublicValues, Exit> {
        let set = circuits.entry(file.params).or_insert_with(|| CircuitSet::with_cache(file.params, cache.clone()));
        file.verify(set).map_err(|e| Exit::Invalid(format!("{}: {e}", path.display())))
    };

    let mut before: Option<PublicValues> = match previous {
        Some(path) => {
            let (prev_files, _) = read_files(path)?;
            let last = prev_files.last().expect("read_files returns at least one");
            Some(check(last, path)?)
        }
        None => None,
    };
    let mut all = Vec::with_capacity(files.len());
    for file in &files {
        let values = check(file, proof)?;
        if let Some(prev) = &before {
            check_link(prev, &values)
                .map_err(|e| Exit::Invalid(format!("{}: batch {}: {e}", proof.display(), values.batch_number)))?;
            if !values.previous_verified {
                return Err(Exit::Invalid(format!(
                    "{}: batch {} does not verify the previous batch's proof",
                    proof.display(),
                    values.batch_number
                )));
            }
        }
        before = Some(values.clone());
        all.push(values);
    }
    let json = if is_array { serde_json::to_string_pretty(&all) } else { serde_json::to_string_pretty(&all[0]) };
    println!("{}", json.expect("public values serialize"));
    Ok(())
}
