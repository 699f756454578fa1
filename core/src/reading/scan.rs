//! A fast decoder for readings in their usual form, tried before serde_json.
//!
//! It reads one JSON object of the contract's fields, each once, in any order, with any JSON
//! whitespace: strings without escapes, `light` and `vehicles` as unsigned integers, and the
//! numbers as plain decimals of at most 15 digits (no exponent). Anything else (an unknown
//! field, an escape, `null`, an exponent, a long number, any syntax error) makes it give up,
//! and [`super::Reading::parse`] decodes with serde_json instead, so every error still comes
//! from there. When it does decode a record, it gives exactly what serde_json gives: a decimal
//! of at most 15 digits is its digits as an integer (exact in an `f64`) divided by a power of
//! ten up to 10^15 (exact too), which is how serde_json computes it and, being one correctly
//! rounded division of exact values, the correctly rounded value its `float_roundtrip` feature
//! would give.

use super::{LampState, Lamps, Wire};
use std::borrow::Cow;

/// Powers of ten exact in an `f64`, as far as a 15-digit decimal needs.
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// Most digits of a number it decodes (below 2^53, so exact as an `f64`).
const MAX_DIGITS: usize = 15;

struct Scan<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.at).copied()
    }

    /// Skips JSON whitespace (what serde_json skips).
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek() == Some(c)).then(|| self.at += 1)
    }

    /// A string without escapes or control characters, as its bytes.
    fn bytes(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let rest = self.b.get(self.at..)?;
        let len = rest
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        if rest[len] != b'"' {
            return None;
        }
        self.at += len + 1;
        rest.get(..len)
    }

    fn str(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()?).ok()
    }

    /// Digits from here: their value and how many (None past [`MAX_DIGITS`]).
    fn digits(&mut self) -> Option<(u64, usize)> {
        let mut v: u64 = 0;
        let mut n = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            n += 1;
            if n > MAX_DIGITS {
                return None;
            }
            v = v * 10 + u64::from(c - b'0');
            self.at += 1;
        }
        Some((v, n))
    }

    /// The integer part of a JSON number: `0`, or digits not starting with `0`.
    fn int_part(&mut self) -> Option<(u64, usize)> {
        let first = self.peek()?;
        if !first.is_ascii_digit() {
            return None;
        }
        let (v, n) = self.digits()?;
        if first == b'0' && n > 1 {
            return None;
        }
        Some((v, n))
    }

    /// A non-negative integer without fraction or exponent.
    fn uint(&mut self) -> Option<i64> {
        let (v, _) = self.int_part()?;
        match self.peek() {
            Some(b'.' | b'e' | b'E') => None,
            _ => i64::try_from(v).ok(),
        }
    }

    /// A decimal number without exponent, of at most [`MAX_DIGITS`] digits.
    fn float(&mut self) -> Option<f64> {
        let negative = self.eat(b'-').is_some();
        let (int, int_digits) = self.int_part()?;
        let (mut sig, mut frac_digits) = (int, 0);
        if self.eat(b'.').is_some() {
            let (frac, n) = self.digits()?;
            if n == 0 || int_digits + n > MAX_DIGITS {
                return None;
            }
            sig = int * 10u64.pow(n as u32) + frac;
            frac_digits = n;
        }
        if let Some(b'e' | b'E') = self.peek() {
            return None;
        }
        let mut f = sig as f64;
        if frac_digits > 0 {
            f /= POW10[frac_digits];
        }
        Some(if negative { -f } else { f })
    }

    /// After a member: `,` (true) or the object's `}` (false).
    fn next_member(&mut self) -> Option<bool> {
        self.ws();
        match self.peek()? {
            b',' => {
                self.at += 1;
                Some(true)
            }
            b'}' => {
                self.at += 1;
                Some(false)
            }
            _ => None,
        }
    }

    /// A member's key and its colon.
    fn key(&mut self) -> Option<&'a [u8]> {
        self.ws();
        let k = self.bytes()?;
        self.ws();
        self.eat(b':')?;
        self.ws();
        Some(k)
    }

    fn lamp(&mut self) -> Option<LampState> {
        match self.bytes()? {
            b"ok" => Some(LampState::Ok),
            b"broken" => Some(LampState::Broken),
            _ => None,
        }
    }

    fn lamps(&mut self) -> Option<Lamps> {
        self.eat(b'{')?;
        let (mut red, mut yellow, mut green) = (None, None, None);
        loop {
            let slot = match self.key()? {
                b"red" => &mut red,
                b"yellow" => &mut yellow,
                b"green" => &mut green,
                _ => return None,
            };
            once(slot, self.lamp()?)?;
            if !self.next_member()? {
                break;
            }
        }
        Some(Lamps {
            red: red?,
            yellow: yellow?,
            green: green?,
        })
    }
}

/// Fills an empty slot (a field given twice is serde_json's error to report).
fn once<T>(slot: &mut Option<T>, v: T) -> Option<()> {
    match slot {
        Some(_) => None,
        None => {
            *slot = Some(v);
            Some(())
        }
    }
}

/// The record's fields, when it is in the form this decoder reads; `None` for anything else.
pub(super) fn decode(bytes: &[u8]) -> Option<Wire<'_>> {
    let mut s = Scan { b: bytes, at: 0 };
    s.ws();
    s.eat(b'{')?;
    let (mut id, mut light, mut ts, mut vehicles, mut speed, mut lamps, mut lat, mut lon) =
        (None, None, None, None, None, None, None, None);
    loop {
        match s.key()? {
            b"intersection_id" => once(&mut id, s.str()?)?,
            b"light" => once(&mut light, s.uint()?)?,
            b"ts" => once(&mut ts, s.str()?)?,
            b"vehicles" => once(&mut vehicles, s.uint()?)?,
            b"mean_speed_kmh" => once(&mut speed, s.float()?)?,
            b"lamps" => once(&mut lamps, s.lamps()?)?,
            b"lat" => once(&mut lat, s.float()?)?,
            b"lon" => once(&mut lon, s.float()?)?,
            _ => return None,
        }
        if !s.next_member()? {
            break;
        }
    }
    s.ws();
    if s.at != bytes.len() {
        return None;
    }
    Some(Wire {
        intersection_id: Cow::Borrowed(id?),
        light: light?,
        ts: Cow::Borrowed(ts?),
        vehicles: vehicles?,
        mean_speed_kmh: speed?,
        lamps: lamps?,
        lat,
        lon,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{Reading, decode_with_serde};
    use super::*;
    use proptest::prelude::*;

    const EXAMPLE: &str = r#"{"intersection_id":"I-0001","light":2,"ts":"2026-01-05T08:00:05Z","vehicles":12,"mean_speed_kmh":43.5,"lamps":{"red":"ok","yellow":"ok","green":"broken"},"lat":41.8531,"lon":12.6042}"#;

    /// The same fields, numbers compared bit for bit (so -0.0 is not 0.0).
    fn same(a: &Wire<'_>, b: &Wire<'_>) -> bool {
        let bits = |x: Option<f64>| x.map(f64::to_bits);
        a.intersection_id == b.intersection_id
            && a.light == b.light
            && a.ts == b.ts
            && a.vehicles == b.vehicles
            && a.mean_speed_kmh.to_bits() == b.mean_speed_kmh.to_bits()
            && a.lamps == b.lamps
            && bits(a.lat) == bits(b.lat)
            && bits(a.lon) == bits(b.lon)
    }

    /// The law: what the scanner decodes, serde_json decodes the same; and parsing gives
    /// what serde_json and the validation give, reading or error.
    fn check(text: &str) -> Result<(), TestCaseError> {
        let bytes = text.as_bytes();
        let serde = decode_with_serde(bytes);
        if let Some(w) = decode(bytes) {
            match &serde {
                Ok(s) => prop_assert!(same(&w, s), "{text}: {w:?} but serde_json {s:?}"),
                Err(e) => prop_assert!(false, "{text}: scanned {w:?} but serde_json says {e}"),
            }
        }
        let slow = decode_with_serde(bytes).and_then(Reading::validate);
        prop_assert_eq!(Reading::parse(bytes), slow, "{}", text);
        Ok(())
    }

    #[test]
    fn the_usual_forms_are_scanned_and_decode_as_serde_json_decodes_them() {
        let usual = [
            EXAMPLE.to_owned(),
            EXAMPLE.replace(",\"lat\":41.8531,\"lon\":12.6042", ""),
            EXAMPLE.replace("41.8531", "-33.9").replace("12.6042", "-0"),
            EXAMPLE.replace("43.5", "40").replace("\"light\":2", "\"light\":0"),
            EXAMPLE.replace(',', " ,\n\t").replace("\":", "\"\r: "),
            r#"{"lamps":{"green":"ok","red":"broken","yellow":"ok"},"lon":0.000000001,"ts":"2026-01-05T09:00:05+01:00","mean_speed_kmh":299.999,"vehicles":10000,"light":3,"lat":-90.0,"intersection_id":"rome:via.appia_12"}"#.to_owned(),
        ];
        for text in &usual {
            assert!(decode(text.as_bytes()).is_some(), "{text}");
            check(text).unwrap_or_else(|e| panic!("{e}"));
        }
        // Forms it leaves to serde_json, which reads them.
        let unusual = [
            EXAMPLE.replace("\"lat\"", "\"note\":[1,{\"a\":null}],\"lat\""),
            EXAMPLE.replace("I-0001", "I-\\u0030001"),
            EXAMPLE.replace("43.5", "4.35e1"),
            EXAMPLE.replace("41.8531", "41.85310000000000000001"),
            EXAMPLE
                .replace(",\"lon\":12.6042", ",\"lon\":null")
                .replace("41.8531", "null"),
        ];
        for text in &unusual {
            assert!(decode(text.as_bytes()).is_none(), "{text}");
            assert!(Reading::parse(text.as_bytes()).is_ok(), "{text}");
            check(text).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    fn quoted(s: String) -> String {
        format!("\"{s}\"")
    }

    fn string() -> impl Strategy<Value = String> {
        prop_oneof![
            18 => "I-[0-9]{1,6}".prop_map(quoted),
            2 => "[A-Za-z0-9 #:.\u{e9}\u{1}]{0,8}".prop_map(quoted),
            1 => prop::sample::select(vec![
                r#""I-\u0030""#, r#""a\"b""#, r#""\n""#, r#""I-1"#, "12", "null", r#""""#,
            ])
            .prop_map(str::to_owned),
        ]
    }

    fn timestamp() -> impl Strategy<Value = String> {
        prop_oneof![
            12 => "2026-0[1-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9](\\.[0-9]{1,4})?(Z|z|\\+01:00)"
                .prop_map(quoted),
            1 => string(),
        ]
    }

    fn number() -> impl Strategy<Value = String> {
        prop_oneof![
            24 => "-?(0|[1-9][0-9]{0,4})(\\.[0-9]{1,6})?",
            3 => "-?(0|[1-9][0-9]{0,19})(\\.[0-9]{0,19})?([eE][-+]?[0-9]{0,3})?",
            1 => prop::sample::select(vec!["012", "null", "\"3\"", "true", "-", ".5", "1.", "+1", "1e400", "18446744073709551616"])
                .prop_map(str::to_owned),
        ]
    }

    fn integer() -> impl Strategy<Value = String> {
        prop_oneof![4 => "0|[1-9][0-9]{0,4}", 1 => number()]
    }

    fn whitespace() -> impl Strategy<Value = String> {
        // A form feed is not JSON whitespace.
        prop_oneof![150 => Just(String::new()), 49 => "[ \t\n\r]{1,2}", 1 => Just("\u{c}".to_owned())]
    }

    fn lamps() -> impl Strategy<Value = String> {
        let state = prop::sample::select(vec![
            "\"ok\"",
            "\"broken\"",
            "\"melted\"",
            "null",
            r#""o\u006b""#,
            "\"OK\"",
        ]);
        let colour = prop::sample::select(vec![
            "red", "yellow", "green", "red", "yellow", "green", "blue",
        ]);
        let usual = (
            Just(vec!["red", "yellow", "green"]).prop_shuffle(),
            prop::collection::vec(prop::sample::select(vec!["\"ok\"", "\"broken\""]), 3),
            whitespace(),
        )
            .prop_map(|(cs, ss, w)| {
                let body: Vec<String> = cs
                    .iter()
                    .zip(ss)
                    .map(|(c, s)| format!("{w}\"{c}\"{w}:{w}{s}{w}"))
                    .collect();
                format!("{{{}}}", body.join(","))
            });
        prop_oneof![
            12 => usual,
            4 => prop::collection::vec((colour, state, whitespace()), 0..5).prop_map(|ms| {
                let body: Vec<String> =
                    ms.into_iter().map(|(c, s, w)| format!("{w}\"{c}\"{w}:{w}{s}{w}")).collect();
                format!("{{{}}}", body.join(","))
            }),
            1 => prop::sample::select(vec!["[]", "null", "{}", "\"ok\"", "{\"red\":\"ok\",}"]).prop_map(str::to_owned),
        ]
    }

    /// A record: the contract's fields (sometimes one missing, doubled or unknown), in any
    /// order, with values usual and not, and whitespace here and there.
    fn record() -> impl Strategy<Value = String> {
        let fields = (
            string(),
            integer(),
            timestamp(),
            integer(),
            number(),
            lamps(),
            number(),
            number(),
        );
        let edits = (
            prop::option::weighted(0.15, 0usize..8),
            prop::option::weighted(0.1, 0usize..8),
            prop::option::weighted(0.1, prop::sample::select(vec!["note", "Light", "lat ", ""])),
        );
        (fields, edits, prop::collection::vec(whitespace(), 40))
            .prop_flat_map(
                |((id, light, ts, veh, speed, lamps, lat, lon), (drop, dup, extra), ws)| {
                    let names = [
                        "intersection_id",
                        "light",
                        "ts",
                        "vehicles",
                        "mean_speed_kmh",
                        "lamps",
                        "lat",
                        "lon",
                    ];
                    let values = [id, light, ts, veh, speed, lamps, lat, lon];
                    let mut members: Vec<(String, String)> = names
                        .iter()
                        .zip(values)
                        .enumerate()
                        .filter(|(i, _)| Some(*i) != drop)
                        .map(|(_, (n, v))| ((*n).to_owned(), v))
                        .collect();
                    if let Some(d) = dup.filter(|d| *d < members.len()) {
                        members.push(members[d].clone());
                    }
                    if let Some(k) = extra {
                        members.push((k.to_owned(), "1".to_owned()));
                    }
                    (Just(members).prop_shuffle(), Just(ws))
                },
            )
            .prop_map(|(members, ws)| {
                let w = |i: usize| ws[i % ws.len()].as_str();
                let body: Vec<String> = members
                    .iter()
                    .enumerate()
                    .map(|(i, (k, v))| {
                        format!(
                            "{}\"{k}\"{}:{}{v}{}",
                            w(4 * i),
                            w(4 * i + 1),
                            w(4 * i + 2),
                            w(4 * i + 3)
                        )
                    })
                    .collect();
                format!("{}{{{}}}{}", w(38), body.join(","), w(39))
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn a_record_of_any_form_decodes_as_serde_json_decodes_it(text in record()) {
            check(&text)?;
        }

        #[test]
        fn a_damaged_record_decodes_as_serde_json_decodes_it(
            edits in prop::collection::vec(
                (0usize..200, prop::sample::select(b"{}[]\",:.-+0159eE \\nulx\t\xc3\xa9\x01".to_vec()), 0u8..3),
                1..4,
            )
        ) {
            let mut bytes = EXAMPLE.as_bytes().to_vec();
            for (at, b, op) in edits {
                let at = at % (bytes.len() + 1);
                match op {
                    0 if at < bytes.len() => bytes[at] = b,
                    1 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, b),
                }
            }
            // Not UTF-8 is not a `&str`: the law on bytes.
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if let Some(w) = decode(&bytes) {
                let serde = decode_with_serde(&bytes);
                prop_assert!(serde.as_ref().is_ok_and(|s| same(&w, s)), "{text}: {w:?} but {serde:?}");
            }
            let slow = decode_with_serde(&bytes).and_then(Reading::validate);
            prop_assert_eq!(Reading::parse(&bytes), slow, "{}", text);
        }
    }
}
