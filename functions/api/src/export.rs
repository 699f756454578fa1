//! Downloads of a window's per-intersection results: CSV (RFC 4180) and GeoJSON (RFC 7946),
//! chosen by a `format` query parameter or, without one, by the `Accept` header; JSON
//! otherwise, as every other answer.

use crate::error::ApiError;
use crate::error::ApiResult;
use axum::http::HeaderMap;
use axum::http::HeaderValue;
use axum::http::header;
use axum::response::IntoResponse;
use axum::response::Response;
use serde_json::Value;
use serde_json::json;
use std::collections::HashMap;
use traffic_core::IntersectionId;
use traffic_core::query::NetworkState;

/// What an answer is written as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `application/json`, the API's own form.
    Json,
    /// `text/csv`, a header line and a row an intersection.
    Csv,
    /// `application/geo+json`, a FeatureCollection of points.
    GeoJson,
}

/// The media types of [`Format::Csv`] and [`Format::GeoJson`].
pub const CSV: &str = "text/csv; charset=utf-8";
/// The GeoJSON media type (RFC 7946).
pub const GEOJSON: &str = "application/geo+json";

/// The format asked for: `format=json|csv|geojson` when given (anything else is a 400 naming
/// the three), else the first of `text/csv` and `application/geo+json` the `Accept` header
/// names, else JSON.
pub fn negotiate(q: &HashMap<String, String>, headers: &HeaderMap) -> ApiResult<Format> {
    if let Some(f) = q.get("format") {
        return match f.as_str() {
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "geojson" => Ok(Format::GeoJson),
            _ => Err(ApiError::bad(
                "format",
                format!("must be json, csv or geojson, got {f:?}"),
            )),
        };
    }
    let accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    for media in accept {
        match media.as_str() {
            "text/csv" => return Ok(Format::Csv),
            "application/geo+json" => return Ok(Format::GeoJson),
            "application/json" | "*/*" | "application/*" => return Ok(Format::Json),
            _ => {}
        }
    }
    Ok(Format::Json)
}

/// The columns of the network's CSV, in order.
pub const NETWORK_CSV_COLUMNS: [&str; 10] = [
    "length",
    "start",
    "end",
    "closed",
    "intersection_id",
    "lat",
    "lon",
    "mean_speed_kmh",
    "vehicles",
    "readings",
];

/// A position by intersection, from the registry; an intersection no longer registered has none.
pub type Positions = HashMap<IntersectionId, (f64, f64)>;

/// The network state as CSV: the header, then a row an intersection in id order; an empty
/// cell where a value is unknown (no vehicle crossed: no mean speed; not registered: no
/// position). Before the merge built one, the header alone.
pub fn network_csv(state: Option<&NetworkState>, positions: &Positions) -> String {
    let mut out = NETWORK_CSV_COLUMNS.join(",");
    out.push_str("\r\n");
    let Some(s) = state else { return out };
    for x in &s.intersections {
        let (lat, lon) = positions
            .get(&x.intersection_id)
            .map_or((String::new(), String::new()), |(lat, lon)| {
                (lat.to_string(), lon.to_string())
            });
        let cells = [
            s.length.clone(),
            s.start.clone(),
            s.end.clone(),
            s.closed.to_string(),
            x.intersection_id.to_string(),
            lat,
            lon,
            x.mean_speed_kmh.map_or(String::new(), |v| v.to_string()),
            x.vehicles.to_string(),
            x.readings.to_string(),
        ];
        let row: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    out
}

/// A cell, quoted (its quotes doubled) when it holds a comma, a quote or a line break.
fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// The network state as a GeoJSON FeatureCollection: a Point feature an intersection
/// (`[lon, lat]`, RFC 7946's order; a `null` geometry when it is no longer registered), its
/// figures as properties, the window as the collection's `window` member. Before the merge
/// built one, no features and a `null` window.
pub fn network_geojson(state: Option<&NetworkState>, positions: &Positions) -> Value {
    let Some(s) = state else {
        return json!({"type": "FeatureCollection", "window": null, "features": []});
    };
    let features: Vec<Value> = s
        .intersections
        .iter()
        .map(|x| {
            let geometry = positions.get(&x.intersection_id).map_or(
                Value::Null,
                |(lat, lon)| json!({"type": "Point", "coordinates": [lon, lat]}),
            );
            json!({
                "type": "Feature",
                "id": x.intersection_id.to_string(),
                "geometry": geometry,
                "properties": {
                    "intersection_id": x.intersection_id.to_string(),
                    "mean_speed_kmh": x.mean_speed_kmh,
                    "vehicles": x.vehicles,
                    "readings": x.readings,
                },
            })
        })
        .collect();
    json!({
        "type": "FeatureCollection",
        "window": {"length": s.length, "start": s.start, "end": s.end, "closed": s.closed},
        "features": features,
    })
}

/// An answer of `media` type, offered as a download named `file`.
pub fn download(media: &'static str, file: &str, body: String) -> Response {
    let mut resp = ([(header::CONTENT_TYPE, media)], body).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

/// The file name of a window's download: `network-15m-20260105T0800Z.csv`.
pub fn file_name(state: Option<&NetworkState>, extension: &str) -> String {
    match state {
        Some(s) => {
            let start: String = s
                .start
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect();
            format!("network-{}-{start}.{extension}", s.length)
        }
        None => format!("network.{extension}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(accept: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT,
            HeaderValue::from_str(accept).unwrap_or_else(|e| panic!("{e}")),
        );
        h
    }

    #[test]
    fn the_format_parameter_wins_over_accept_and_an_unknown_one_is_refused() {
        let q: HashMap<String, String> = [("format".to_owned(), "csv".to_owned())].into();
        assert_eq!(
            negotiate(&q, &headers("application/geo+json")).ok(),
            Some(Format::Csv)
        );
        let q: HashMap<String, String> = [("format".to_owned(), "xml".to_owned())].into();
        assert!(negotiate(&q, &HeaderMap::new()).is_err());
    }

    #[test]
    fn accept_chooses_the_first_type_it_names_that_the_api_writes() {
        let none = HashMap::new();
        for (accept, format) in [
            ("text/csv", Format::Csv),
            ("text/html, application/geo+json;q=0.9", Format::GeoJson),
            ("*/*, text/csv", Format::Json),
            ("text/html", Format::Json),
        ] {
            assert_eq!(
                negotiate(&none, &headers(accept)).ok(),
                Some(format),
                "{accept}"
            );
        }
        assert_eq!(negotiate(&none, &HeaderMap::new()).ok(), Some(Format::Json));
    }

    #[test]
    fn a_cell_with_a_comma_or_a_quote_is_quoted() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn a_download_is_named_after_its_window() {
        let s = NetworkState {
            length: "15m".into(),
            start: "2026-01-05T08:00:00Z".into(),
            end: "2026-01-05T08:15:00Z".into(),
            closed: true,
            intersections: vec![],
        };
        assert_eq!(
            file_name(Some(&s), "csv"),
            "network-15m-20260105T080000Z.csv"
        );
        assert_eq!(file_name(None, "geojson"), "network.geojson");
    }
}
