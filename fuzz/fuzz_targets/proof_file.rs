//! A proof file as `leader verify` and `--previous-proof` read it, up to the point where the
//! circuits are needed: the JSON, its format and parameters, and the chained proof's bytes.
//! Nothing may panic, and every error is one line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prover::proof_file::ProofFile;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let checked = ProofFile::from_json(text).and_then(|file| file.chain_proof_bytes());
    if let Err(e) = checked {
        let line = e.to_string();
        assert!(!line.contains('\n'), "a proof file error spans lines: {line:?}");
    }
});
