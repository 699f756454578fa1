//! What DynamoDB bills for a call, computed from the items by its documented sizing rules, so
//! that a run against an emulator (whose `ConsumedCapacity` is a constant) measures real units.
//!
//! Item size (Amazon DynamoDB Developer Guide, "DynamoDB item sizes and formats",
//! `CapacityUnitCalculations.html`): the sum over attributes of the name's UTF-8 bytes plus the
//! value's size. A string is its UTF-8 bytes; a number about one byte per two significant
//! digits plus one (leading and trailing zeros trimmed); a binary its raw bytes; a Boolean or
//! null one byte; a list or map 3 bytes plus, per element, its size and one byte (a map
//! element's key counts as a name). Sets are the sum of their elements.
//!
//! Units ("DynamoDB read and write operations", `read-write-operations.html`, and "Read/write
//! capacity mode"): a write is one unit per started KB of the item (1 KB = 1,024 bytes),
//! at least one; a `PutItem`, `UpdateItem` or `DeleteItem` of an existing item bills the larger
//! of its size before and after; a failed conditional write still bills. A `GetItem` or each
//! item of a `BatchGetItem` is one unit per started 4 KB, at least one even when the item does
//! not exist; a `Query` page bills the total size of the items it returns, rounded up to 4 KB
//! (at least one unit, even for an empty page). Eventually consistent reads bill half.
//! `TransactWriteItems` and `TransactGetItems` bill twice per item, condition checks
//! included.

use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// Bytes of a write unit.
pub const WRITE_UNIT_BYTES: usize = 1024;
/// Bytes of a read unit.
pub const READ_UNIT_BYTES: usize = 4096;

/// Bytes a number takes: one per two significant digits, plus one.
pub fn number_size(n: &str) -> usize {
    let mantissa = n
        .trim_start_matches(['-', '+'])
        .split(['e', 'E'])
        .next()
        .unwrap_or("");
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
    significant.max(1).div_ceil(2) + 1
}

/// Bytes an attribute value takes (without its name).
pub fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(l) => 3 + l.iter().map(|e| value_size(e) + 1).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, e)| k.len() + value_size(e) + 1)
                .sum::<usize>()
        }
        AttributeValue::Ss(s) => s.iter().map(String::len).sum(),
        AttributeValue::Ns(s) => s.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(s) => s.iter().map(|b| b.as_ref().len()).sum(),
        _ => 0,
    }
}

/// Bytes an item takes: its attribute names and values.
pub fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

/// Write units of writing an item of `bytes` (outside a transaction).
pub fn write_units(bytes: usize) -> f64 {
    bytes.div_ceil(WRITE_UNIT_BYTES).max(1) as f64
}

/// Read units of reading `bytes` as one item, or as one query page's total.
pub fn read_units(bytes: usize, consistent: bool) -> f64 {
    let units = bytes.div_ceil(READ_UNIT_BYTES).max(1) as f64;
    if consistent { units } else { units / 2.0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::primitives::Blob;

    fn item(attrs: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
        attrs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn numbers_take_a_byte_per_two_significant_digits_plus_one() {
        assert_eq!(number_size("7"), 2);
        assert_eq!(number_size("42"), 2);
        assert_eq!(number_size("123"), 3);
        // Leading and trailing zeros are trimmed, the sign and the point take nothing.
        assert_eq!(number_size("1000000"), 2);
        assert_eq!(number_size("-0.00125"), 3);
        // An epoch time in ms: 13 significant digits → 7 + 1.
        assert_eq!(number_size("1767600000123"), 8);
        assert_eq!(number_size("0"), 2);
    }

    #[test]
    fn the_guide_s_worked_item_sizes() {
        // A string attribute: name bytes plus value bytes (a UTF-8 "é" is two).
        let a = item(&[("pk", AttributeValue::S("shard#é".into()))]);
        assert_eq!(item_size(&a), 2 + 8);
        // A binary: name plus raw bytes (not base64).
        let b = item(&[("b", AttributeValue::B(Blob::new(vec![0u8; 1000])))]);
        assert_eq!(item_size(&b), 1 + 1000);
        // A Boolean and a null: name plus one byte.
        let c = item(&[
            ("closed", AttributeValue::Bool(true)),
            ("x", AttributeValue::Null(true)),
        ]);
        assert_eq!(item_size(&c), 6 + 1 + 1 + 1);
        // A list of two numbers: 3 + (2 + 1) + (2 + 1); a map adds its keys' bytes.
        let l = item(&[(
            "l",
            AttributeValue::L(vec![
                AttributeValue::N("1".into()),
                AttributeValue::N("22".into()),
            ]),
        )]);
        assert_eq!(item_size(&l), 1 + 3 + 3 + 3);
        let m = item(&[(
            "m",
            AttributeValue::M(HashMap::from([(
                "ab".to_owned(),
                AttributeValue::S("xyz".into()),
            )])),
        )]);
        assert_eq!(item_size(&m), 1 + 3 + (2 + 3 + 1));
        // An empty map is its name plus 3.
        let e = item(&[("m", AttributeValue::M(HashMap::new()))]);
        assert_eq!(item_size(&e), 4);
    }

    #[test]
    fn units_round_up_per_kilobyte_written_and_per_four_read() {
        // The guide's examples: a 3,500-byte item is one read unit (half eventually
        // consistent); an 8 KB item two, or one eventually consistent; a 2.5 KB write three.
        assert_eq!(read_units(3_500, true), 1.0);
        assert_eq!(read_units(3_500, false), 0.5);
        assert_eq!(read_units(8 * 1024, true), 2.0);
        assert_eq!(read_units(8 * 1024, false), 1.0);
        assert_eq!(write_units(2_560), 3.0);
        assert_eq!(write_units(1_024), 1.0);
        assert_eq!(write_units(1_025), 2.0);
        // Nothing is free: a missing item or an empty page is still a unit.
        assert_eq!(read_units(0, true), 1.0);
        assert_eq!(write_units(0), 1.0);
    }
}
