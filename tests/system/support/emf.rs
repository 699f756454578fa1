//! A checker of CloudWatch embedded metric format lines against the specification
//! (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>),
//! written for these tests: the root object's `_aws` metadata (`Timestamp` in ms, the
//! `CloudWatchMetrics` directives), each directive's namespace, dimension sets (each name a
//! top-level string member, at most 30 a set) and metric definitions (at most 100, each name a
//! top-level member holding a number or an array of at most 100 numbers, the unit one of
//! CloudWatch's, the storage resolution 1 or 60).
#![allow(dead_code)]

use serde_json::{Map, Value};

/// CloudWatch's units (`MetricDatum.Unit`).
pub const UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// The line's root object when it is a valid EMF document, or what is wrong with it.
pub fn check(line: &str) -> Result<Map<String, Value>, String> {
    let root: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(root) = root else {
        return Err("the root is not an object".into());
    };
    let aws = root
        .get("_aws")
        .and_then(Value::as_object)
        .ok_or("no _aws object")?;
    match aws.get("Timestamp") {
        Some(Value::Number(n)) if n.as_u64().is_some() => {}
        other => return Err(format!("_aws.Timestamp is not a number of ms: {other:?}")),
    }
    let directives = aws
        .get("CloudWatchMetrics")
        .and_then(Value::as_array)
        .ok_or("_aws.CloudWatchMetrics is not an array")?;
    for d in directives {
        directive(&root, d)?;
    }
    Ok(root)
}

fn directive(root: &Map<String, Value>, d: &Value) -> Result<(), String> {
    let d = d.as_object().ok_or("a metric directive is not an object")?;
    match d.get("Namespace").and_then(Value::as_str) {
        Some(ns) if !ns.is_empty() && ns.len() <= 255 => {}
        other => return Err(format!("Namespace is not a string of 1 to 255: {other:?}")),
    }
    let sets = d
        .get("Dimensions")
        .and_then(Value::as_array)
        .ok_or("Dimensions is not an array")?;
    for set in sets {
        let set = set.as_array().ok_or("a dimension set is not an array")?;
        if set.len() > 30 {
            return Err(format!(
                "a dimension set of {} names (30 at most)",
                set.len()
            ));
        }
        for name in set {
            let name = name.as_str().ok_or("a dimension name is not a string")?;
            match root.get(name) {
                Some(Value::String(_)) => {}
                other => {
                    return Err(format!(
                        "dimension {name} is not a top-level string member: {other:?}"
                    ));
                }
            }
        }
    }
    let metrics = d
        .get("Metrics")
        .and_then(Value::as_array)
        .ok_or("Metrics is not an array")?;
    if metrics.len() > 100 {
        return Err(format!(
            "{} metrics in a directive (100 at most)",
            metrics.len()
        ));
    }
    for m in metrics {
        definition(root, m)?;
    }
    Ok(())
}

fn definition(root: &Map<String, Value>, m: &Value) -> Result<(), String> {
    let m = m
        .as_object()
        .ok_or("a metric definition is not an object")?;
    let name = match m.get("Name").and_then(Value::as_str) {
        Some(n) if !n.is_empty() && n.len() <= 1024 => n,
        other => {
            return Err(format!(
                "a metric Name is not a string of 1 to 1024: {other:?}"
            ));
        }
    };
    if let Some(unit) = m.get("Unit") {
        match unit.as_str() {
            Some(u) if UNITS.contains(&u) => {}
            _ => return Err(format!("{name}: unit {unit} is not CloudWatch's")),
        }
    }
    if let Some(r) = m.get("StorageResolution")
        && r.as_u64() != Some(1)
        && r.as_u64() != Some(60)
    {
        return Err(format!("{name}: StorageResolution {r} is not 1 or 60"));
    }
    match root.get(name) {
        Some(Value::Number(_)) => Ok(()),
        Some(Value::Array(values))
            if values.len() <= 100 && values.iter().all(Value::is_number) =>
        {
            Ok(())
        }
        other => Err(format!(
            "metric {name} is not a top-level number or array of at most 100 numbers: {other:?}"
        )),
    }
}

/// The metric names the line's directives declare.
pub fn metric_names(root: &Map<String, Value>) -> Vec<String> {
    root["_aws"]["CloudWatchMetrics"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|d| d["Metrics"].as_array().into_iter().flatten())
        .filter_map(|m| m["Name"].as_str().map(str::to_owned))
        .collect()
}

/// The line's dimension sets.
pub fn dimension_sets(root: &Map<String, Value>) -> Vec<Vec<String>> {
    root["_aws"]["CloudWatchMetrics"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|d| d["Dimensions"].as_array().into_iter().flatten())
        .map(|set| {
            set.as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect()
        })
        .collect()
}
