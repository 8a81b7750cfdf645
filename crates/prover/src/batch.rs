//! Batch witness, version 1: strict parsing of the JSON a user feeds the leader.
//!
//! Strict means unknown fields, wrong types, malformed addresses and amounts are all errors that
//! name the batch and the field. The semantic rules (duplicates, leaf collisions, transaction
//! validity) are checked by [`crate::execute`], which needs the state tree.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use common::cli::one_line;

use crate::state::Address;

/// The only witness version this build reads.
pub const WITNESS_VERSION: u32 = 1;

/// Chain ids and batch numbers are bound as single Goldilocks field elements, so they must stay
/// below 2^63 (every such value is canonical in the field and `n + 1` never wraps).
pub const MAX_ID: u64 = (1 << 63) - 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    pub version: u32,
    pub chain_id: u64,
    pub batch_number: u64,
    pub accounts: Vec<AccountEntry>,
    pub transactions: Vec<Transaction>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountEntry {
    pub address: Address,
    pub balance: Amount,
    pub nonce: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transaction {
    pub from: Address,
    pub to: Address,
    pub value: Amount,
    pub nonce: u64,
}

/// An unsigned 128-bit amount, written in JSON as a decimal string.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Amount(pub u128);

/// Why a witness could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("malformed json: {0}")]
    Json(#[source] serde_json::Error),
    #[error("the input holds no batch")]
    Empty,
    #[error("{at}: {reason}")]
    Invalid { at: String, reason: String },
}

/// Reads one batch object or an array of consecutive batches.
///
/// Each batch is decoded from its own text rather than through `serde_json::Value`, whose maps
/// keep the last of two equal keys: a duplicated key anywhere in a batch is an error, so two
/// readers of one file cannot disagree on what it says.
pub fn parse_batches(text: &str) -> Result<Vec<Batch>, ParseError> {
    let items: Vec<&RawValue> = if text.trim_start().starts_with('[') {
        serde_json::from_str(text).map_err(ParseError::Json)?
    } else {
        vec![serde_json::from_str(text).map_err(ParseError::Json)?]
    };
    if items.is_empty() {
        return Err(ParseError::Empty);
    }
    let many = items.len() > 1;
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            // Name the batch by its number when it has one that parses, else by its place.
            let at = || {
                let number = serde_json::from_str::<serde_json::Value>(item.get())
                    .ok()
                    .and_then(|v| v.get("batch_number").and_then(|n| n.as_u64()));
                match number {
                    Some(n) => format!("batch {n}"),
                    None if many => format!("batch at index {i}"),
                    None => "batch".to_string(),
                }
            };
            let batch: Batch = serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(item.get()))
                .map_err(|e| ParseError::Invalid { at: at(), reason: one_line(&where_in_batch(e)).into_owned() })?;
            batch.check_header().map_err(|reason| ParseError::Invalid { at: at(), reason })?;
            Ok(batch)
        })
        .collect()
}

/// A batch's parse error, led by where in the batch it is: `transaction 3: to: ...` for a field of
/// one transaction, `accounts[2].balance: ...` elsewhere, nothing more at the top level.
fn where_in_batch(e: serde_path_to_error::Error<serde_json::Error>) -> String {
    let mut path = e.path().to_string();
    let reason = e.into_inner().to_string();
    // An unknown field's path ends with the field, which the reason names already.
    let (parent, last) = path.rsplit_once('.').unwrap_or(("", path.as_str()));
    if reason.contains(&format!("`{last}`")) {
        path = parent.to_string();
    }
    if let Some(rest) = path.strip_prefix("transactions[") {
        if let Some((index, field)) = rest.split_once(']') {
            let field = field.trim_start_matches('.');
            return match field {
                "" => format!("transaction {index}: {reason}"),
                field => format!("transaction {index}: {field}: {reason}"),
            };
        }
    }
    match path.as_str() {
        "" | "." => reason,
        path => format!("{path}: {reason}"),
    }
}

impl Batch {
    fn check_header(&self) -> Result<(), String> {
        if self.version != WITNESS_VERSION {
            return Err(format!(
                "unsupported witness version {} (this build reads version {WITNESS_VERSION})",
                self.version
            ));
        }
        if self.chain_id > MAX_ID {
            return Err(format!("chain_id {} is above the maximum {MAX_ID}", self.chain_id));
        }
        if self.batch_number > MAX_ID {
            return Err(format!("batch_number {} is above the maximum {MAX_ID}", self.batch_number));
        }
        Ok(())
    }
}

impl FromStr for Address {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let hex_part = s.strip_prefix("0x").ok_or_else(|| format!("address {s:?} does not start with 0x"))?;
        if hex_part.len() != 40 {
            return Err(format!("address {s:?} is not 20 bytes of hex"));
        }
        let mut out = [0u8; 20];
        hex::decode_to_slice(hex_part, &mut out).map_err(|_| format!("address {s:?} is not valid hex"))?;
        Ok(Address(out))
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Amount {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("amount {s:?} is not a decimal string"));
        }
        s.parse::<u128>().map(Amount).map_err(|_| format!("amount {s:?} does not fit in 128 bits"))
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0x52908400098527886e0f7030069857d2e4169ee7";
    const B: &str = "0x8617e340b3d01fa5f11f306f4090fd50e238070d";

    fn batch_json(extra: &str) -> String {
        format!(
            r#"{{"version":1,"chain_id":1,"batch_number":7,{extra}
               "accounts":[{{"address":"{A}","balance":"1000","nonce":0}}],
               "transactions":[{{"from":"{A}","to":"{B}","value":"250","nonce":0}}]}}"#
        )
    }

    #[test]
    fn reads_the_documented_example() {
        let b = &parse_batches(&batch_json("")).unwrap()[0];
        assert_eq!(b.batch_number, 7);
        assert_eq!(b.accounts[0].balance, Amount(1000));
        assert_eq!(b.transactions[0].to.to_string(), B);
    }

    #[test]
    fn reads_an_array_of_batches() {
        let text = format!("[{},{}]", batch_json(""), batch_json(""));
        assert_eq!(parse_batches(&text).unwrap().len(), 2);
    }

    #[test]
    fn rejects_unknown_fields_naming_the_batch() {
        let err = parse_batches(&batch_json(r#""gas":1,"#)).unwrap_err().to_string();
        assert!(err.starts_with("batch 7: unknown field `gas`"), "{err}");
    }

    #[test]
    fn rejects_duplicate_keys_naming_the_key_and_the_batch() {
        let twice = batch_json(r#""version":1,"#);
        let err = parse_batches(&twice).unwrap_err().to_string();
        assert!(err.starts_with("batch 7: duplicate field `version`"), "{err}");
        // In a nested object, and in the second batch of an array.
        let nested = batch_json("").replace(r#""value":"250""#, r#""value":"250","value":"1""#);
        let err =
            parse_batches(&format!("[{},{nested}]", batch_json("").replace(":7,", ":6,"))).unwrap_err().to_string();
        assert!(err.starts_with("batch 7: transaction 0: duplicate field `value`"), "{err}");
    }

    #[test]
    fn a_field_error_names_the_transaction_or_the_account() {
        let text = format!(
            r#"{{"version":1,"chain_id":1,"batch_number":7,
               "accounts":[{{"address":"{A}","balance":"1000","nonce":0}}],
               "transactions":[{{"from":"{A}","to":"{B}","value":"250","nonce":0}},
                               {{"from":"{A}","to":"0x1234","value":"250","nonce":1}}]}}"#
        );
        let err = parse_batches(&text).unwrap_err().to_string();
        assert!(err.starts_with("batch 7: transaction 1: to: address \"0x1234\" is not 20 bytes of hex"), "{err}");
        let err =
            parse_batches(&batch_json("").replace(r#""balance":"1000""#, r#""balance":1000"#)).unwrap_err().to_string();
        assert!(err.starts_with("batch 7: accounts[0].balance: "), "{err}");
    }

    #[test]
    fn rejects_wrong_types_and_bad_values() {
        let numeric_balance = batch_json("").replace(r#""balance":"1000""#, r#""balance":1000"#);
        assert!(parse_batches(&numeric_balance).is_err());
        let negative = batch_json("").replace(r#""value":"250""#, r#""value":"-1""#);
        let err = parse_batches(&negative).unwrap_err().to_string();
        assert!(err.contains("not a decimal string"), "{err}");
        let too_big = batch_json("").replace("250", &format!("{}0", u128::MAX));
        assert!(parse_batches(&too_big).unwrap_err().to_string().contains("128 bits"));
        let short = batch_json("").replace(A, "0x1234");
        assert!(parse_batches(&short).unwrap_err().to_string().contains("20 bytes"));
        let version = batch_json("").replace(r#""version":1"#, r#""version":2"#);
        assert!(parse_batches(&version).unwrap_err().to_string().contains("version 2"));
    }

    /// Found by the witness and proof file fuzz targets: serde names an unknown field as written,
    /// so a key holding an escaped newline made the error two lines.
    #[test]
    fn an_error_quoting_a_key_with_a_newline_is_one_line() {
        let text = batch_json("").replace(r#""nonce":0"#, r#""nonce":0,"evil\nkey":1"#);
        let err = parse_batches(&text).unwrap_err().to_string();
        assert!(err.contains(r"unknown field `evil\nkey`") && !err.contains('\n'), "{err}");
    }

    #[test]
    fn truncated_json_is_malformed() {
        let text = batch_json("");
        let err = parse_batches(&text[..text.len() / 2]).unwrap_err();
        assert!(matches!(err, ParseError::Json(_)));
        assert!(matches!(parse_batches("[]"), Err(ParseError::Empty)));
    }

    #[test]
    fn amounts_round_trip_as_strings() {
        let b = &parse_batches(&batch_json("")).unwrap()[0];
        let again = serde_json::to_string(b).unwrap();
        assert!(again.contains(r#""balance":"1000""#));
        assert_eq!(&parse_batches(&again).unwrap()[0], b);
    }
}
