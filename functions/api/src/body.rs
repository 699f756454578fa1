//! Request bodies: JSON decoding that names the field at fault, and JSON Merge Patch.

use crate::error::ApiError;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Parses `bytes` as a JSON value; a syntax error is a 400 on the field `body`.
pub fn json_value(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad("body", "a JSON body is required"));
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad("body", strip_position(&e)))
}

/// Decodes `value` into `T`; an error names the field at fault as a path
/// (`lights[1].saturation_veh_h`), prefixed with `at`.
pub fn decode<T: DeserializeOwned>(value: Value, at: &str) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = strip_position(e.inner());
        // serde reports a missing field at the object that lacks it; name the field itself.
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next());
        let field = match (path.as_str(), missing) {
            (".", Some(name)) => format!("{at}{name}"),
            (p, Some(name)) => format!("{at}{p}.{name}"),
            (".", None) if at.is_empty() => "body".to_owned(),
            (".", None) => at.trim_end_matches('.').to_owned(),
            (p, None) => format!("{at}{p}"),
        };
        ApiError::bad(field, message)
    })
}

/// serde_json's message without its "at line 1 column 7" suffix (meaningless once the body is a
/// value).
fn strip_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// Applies a JSON Merge Patch (RFC 7396) to `target`: members of an object patch replace or, when
/// `null`, remove the target's members, recursively; any other patch replaces the target whole.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use traffic_core::Intersection;

    fn field_of(v: Value) -> Option<String> {
        match decode::<Intersection>(v, "") {
            Err(ApiError::BadRequest { field, .. }) => field,
            _ => None,
        }
    }

    #[test]
    fn a_missing_field_is_named_by_its_path() {
        let v = json!({"id": "X", "lat": 1.0, "lights": [], "phases": []});
        assert_eq!(field_of(v).as_deref(), Some("lon"));
        let v = json!({"id": "X", "lat": 1.0, "lon": 2.0, "lights": [{"light": 0}], "phases": []});
        assert_eq!(field_of(v).as_deref(), Some("lights[0].saturation_veh_h"));
    }

    #[test]
    fn a_wrong_type_is_named_by_its_path() {
        let v = json!({"id": "X", "lat": "north", "lon": 2.0, "lights": [], "phases": []});
        assert_eq!(field_of(v).as_deref(), Some("lat"));
        let v = json!({"id": "a b", "lat": 1, "lon": 2.0, "lights": [], "phases": []});
        assert_eq!(field_of(v).as_deref(), Some("id"));
        assert_eq!(field_of(json!([1, 2])).as_deref(), Some("body"));
    }

    #[test]
    fn a_merge_patch_replaces_removes_and_recurses() {
        let mut t = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2]});
        merge_patch(&mut t, &json!({"a": null, "b": {"c": 9}, "e": [3]}));
        assert_eq!(t, json!({"b": {"c": 9, "d": 3}, "e": [3]}));
    }
}
