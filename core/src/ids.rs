//! Identifier newtypes that validate on construction.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest accepted intersection id, in bytes.
pub const MAX_ID_LEN: usize = 64;

/// Number of lights at every intersection (the reading contract's `light` is 0..3).
pub const LIGHTS_PER_INTERSECTION: usize = 4;

/// Ids the stores keep for their own items, beside ids starting with [`RESERVED_PREFIX`]:
/// `not-ok` (the lamp summary's first key was `lamp#not-ok`, where `lamp#<id>` holds an
/// intersection's lamps).
pub const RESERVED_IDS: [&str; 1] = ["not-ok"];

/// Ids starting with this are the system's own: `_city` (`lamps::CITY`) files the city-wide
/// silence alarm as an intersection's, and the prefix is kept for more such.
pub const RESERVED_PREFIX: char = '_';

/// The id of a signalised intersection, such as `I-0001`.
///
/// 1 to 64 characters from `A-Z a-z 0-9 - _ . :`; it is the Kinesis partition key and part of
/// storage keys, so it never contains spaces, `#` or `/`. An id from outside (a city file, the
/// API, a reading) is also none of the system's own names ([`RESERVED_IDS`], a leading
/// [`RESERVED_PREFIX`]): [`IntersectionId::parse`] refuses them, so no intersection's items can
/// land on the stores' own.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct IntersectionId(String);

/// Why a string is not an [`IntersectionId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The id is empty.
    #[error("intersection id is empty")]
    Empty,
    /// The id is longer than [`MAX_ID_LEN`].
    #[error("intersection id is longer than {MAX_ID_LEN} bytes")]
    TooLong,
    /// The id has a character outside the allowed set.
    #[error(
        "intersection id has the character {0:?}; allowed are letters, digits, '-', '_', '.', ':'"
    )]
    BadChar(char),
    /// The id is one the system keeps for its own items.
    #[error(
        "intersection id {0:?} is reserved: ids starting with '_' and the id \"not-ok\" name the system's own items"
    )]
    Reserved(String),
}

impl IntersectionId {
    /// Validates `s` as an intersection id from outside: the syntax, and not reserved.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        Self::check(s)?;
        Self::check_not_reserved(s)?;
        Ok(Self(s.to_owned()))
    }

    /// Validates an owned string as [`IntersectionId::parse`] does, without copying it.
    pub fn parse_owned(s: String) -> Result<Self, IdError> {
        Self::check(&s)?;
        Self::check_not_reserved(&s)?;
        Ok(Self(s))
    }

    /// An id the system made (`_city`) or read back from its own store: the syntax only, so
    /// reserved names read too. Input from outside goes through [`IntersectionId::parse`].
    pub fn parse_internal(s: &str) -> Result<Self, IdError> {
        Self::check(s)?;
        Ok(Self(s.to_owned()))
    }

    /// Whether this id is one of the system's own ([`IntersectionId::parse`] refuses them; a
    /// deserialised one, read back from a store, may be).
    pub fn reserved(&self) -> Result<(), IdError> {
        Self::check_not_reserved(&self.0)
    }

    fn check_not_reserved(s: &str) -> Result<(), IdError> {
        if s.starts_with(RESERVED_PREFIX) || RESERVED_IDS.contains(&s) {
            return Err(IdError::Reserved(s.to_owned()));
        }
        Ok(())
    }

    fn check(s: &str) -> Result<(), IdError> {
        if s.is_empty() {
            return Err(IdError::Empty);
        }
        if s.len() > MAX_ID_LEN {
            return Err(IdError::TooLong);
        }
        match s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
        {
            Some(c) => Err(IdError::BadChar(c)),
            None => Ok(()),
        }
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IntersectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks the syntax only, as [`IntersectionId::parse_internal`]: stored items (the city-wide
/// alarm's `_city`) deserialise too. Input decoded from JSON is checked for reserved ids by
/// `Intersection::validate` (city files, the API's bodies).
impl<'de> Deserialize<'de> for IntersectionId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::check(&s).map_err(serde::de::Error::custom)?;
        Ok(Self(s))
    }
}

impl TryFrom<&str> for IntersectionId {
    type Error = IdError;
    fn try_from(s: &str) -> Result<Self, IdError> {
        Self::parse(s)
    }
}

/// The index of one of an intersection's four lights, 0..=3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct LightIndex(u8);

/// A light index outside 0..=3.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("light must be 0..=3, got {0}")]
pub struct LightError(pub i64);

impl LightIndex {
    /// Light 0 (what an alarm about a whole intersection or the city is filed under).
    pub const FIRST: LightIndex = LightIndex(0);

    /// Validates a light index.
    pub fn new(i: i64) -> Result<Self, LightError> {
        if (0..LIGHTS_PER_INTERSECTION as i64).contains(&i) {
            Ok(Self(i as u8))
        } else {
            Err(LightError(i))
        }
    }

    /// All four light indices in order.
    pub fn all() -> impl Iterator<Item = LightIndex> {
        (0..LIGHTS_PER_INTERSECTION as u8).map(LightIndex)
    }

    /// The index as a `usize`, for array access.
    pub fn get(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for LightIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl<'de> Deserialize<'de> for LightIndex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let i = i64::deserialize(d)?;
        Self::new(i).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_the_contract_example_and_reject_separators() {
        assert!(IntersectionId::parse("I-0001").is_ok());
        assert_eq!(IntersectionId::parse(""), Err(IdError::Empty));
        assert_eq!(IntersectionId::parse("a#b"), Err(IdError::BadChar('#')));
        assert_eq!(
            IntersectionId::parse(&"x".repeat(65)),
            Err(IdError::TooLong)
        );
    }

    /// Every name the stores use for their own items where an intersection id could go: the
    /// city-wide silence alarm's intersection (`_city`, and the whole `_` prefix kept for more),
    /// and the lamp summary's old key (`lamp#not-ok`, where `lamp#<id>` holds an intersection's).
    const INTERNAL_NAMES: [&str; 4] = ["_city", "not-ok", "_", "_summary"];

    #[test]
    fn every_internal_name_is_refused_as_an_intersection_id_naming_the_rule() {
        for name in INTERNAL_NAMES {
            let e = IntersectionId::parse(name).map(|id| id.to_string());
            assert_eq!(e, Err(IdError::Reserved(name.to_owned())), "{name}");
            let text = IdError::Reserved(name.to_owned()).to_string();
            assert!(text.contains("reserved") && text.contains("'_'"), "{text}");
            assert!(
                IntersectionId::parse_owned(name.to_owned()).is_err(),
                "{name}"
            );
            // What the system made itself, read back from a store, still reads.
            assert_eq!(
                IntersectionId::parse_internal(name).map(|id| id.to_string()),
                Ok(name.to_owned())
            );
        }
        for fine in ["not-ok-2", "x_city", "NOT-OK", "I-0001"] {
            assert!(IntersectionId::parse(fine).is_ok(), "{fine}");
        }
    }

    #[test]
    fn lights_are_zero_to_three() {
        assert!(LightIndex::new(3).is_ok());
        assert_eq!(LightIndex::new(4), Err(LightError(4)));
        assert_eq!(LightIndex::new(-1), Err(LightError(-1)));
    }
}
