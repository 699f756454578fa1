//! Reading rows back from a window's `window_intersections` file: one intersection's (the API's
//! history of an intersection, window by window) or every one (a closed window's download).

use parquet::errors::{ParquetError, Result};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field, Row};
use traffic_core::IntersectionId;
use traffic_core::ids::LIGHTS_PER_INTERSECTION;
use traffic_core::outputs::{Figures, IntersectionRow};
use traffic_ports::{PortError, PortResult};

fn bad(what: &str) -> ParquetError {
    ParquetError::General(format!("window_intersections: {what}"))
}

fn count(f: Option<&Field>, what: &str) -> Result<u64> {
    match f {
        Some(Field::Long(n)) => u64::try_from(*n).map_err(|_| bad(what)),
        _ => Err(bad(what)),
    }
}

fn double(f: Option<&Field>, what: &str) -> Result<Option<f64>> {
    match f {
        Some(Field::Double(x)) => Ok(Some(*x)),
        Some(Field::Null) => Ok(None),
        _ => Err(bad(what)),
    }
}

fn row_of(id: &IntersectionId, row: &Row) -> Result<IntersectionRow> {
    let field = |name: &str| {
        row.get_column_iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, f)| f)
    };
    let mut light_vehicles = [0; LIGHTS_PER_INTERSECTION];
    match field("light_vehicles") {
        Some(Field::ListInternal(list)) if list.elements().len() == LIGHTS_PER_INTERSECTION => {
            for (slot, v) in light_vehicles.iter_mut().zip(list.elements()) {
                *slot = count(Some(v), "light_vehicles")?;
            }
        }
        _ => return Err(bad("light_vehicles")),
    }
    Ok(IntersectionRow {
        intersection_id: id.clone(),
        figures: Figures {
            readings: count(field("readings"), "readings")?,
            vehicles: count(field("vehicles"), "vehicles")?,
            light_vehicles,
            mean_speed_kmh: double(field("mean_speed_kmh"), "mean_speed_kmh")?,
            median_vehicles: double(field("median_vehicles"), "median_vehicles")?,
        },
    })
}

/// `id`'s row in the `window_intersections` object `bytes` read from `source` (a path, an
/// S3 URL: named in the error), as the port answers: an object that cannot be read is corrupt.
pub fn row_in(
    bytes: Vec<u8>,
    id: &IntersectionId,
    source: &str,
) -> PortResult<Option<IntersectionRow>> {
    intersection_row(bytes, id).map_err(|e| PortError::Corrupt(format!("{source}: {e}")))
}

/// `id`'s row in the `window_intersections` file `bytes`, if it had readings in the window.
pub fn intersection_row(bytes: Vec<u8>, id: &IntersectionId) -> Result<Option<IntersectionRow>> {
    let reader = SerializedFileReader::new(bytes::Bytes::from(bytes))?;
    for row in reader.get_row_iter(None)? {
        let row = row?;
        let this = row
            .get_column_iter()
            .find(|(n, _)| n.as_str() == "intersection_id");
        if matches!(this, Some((_, Field::Str(s))) if s == id.as_str()) {
            return row_of(id, &row).map(Some);
        }
    }
    Ok(None)
}

/// Every row of the `window_intersections` object `bytes` read from `source` (named in the
/// error), in the file's order (by intersection id).
pub fn rows_in(bytes: Vec<u8>, source: &str) -> PortResult<Vec<IntersectionRow>> {
    intersection_rows(bytes).map_err(|e| PortError::Corrupt(format!("{source}: {e}")))
}

/// Every row of the `window_intersections` file `bytes`.
pub fn intersection_rows(bytes: Vec<u8>) -> Result<Vec<IntersectionRow>> {
    let reader = SerializedFileReader::new(bytes::Bytes::from(bytes))?;
    let mut out = Vec::new();
    for row in reader.get_row_iter(None)? {
        let row = row?;
        let id = match row
            .get_column_iter()
            .find(|(n, _)| n.as_str() == "intersection_id")
        {
            Some((_, Field::Str(s))) => {
                IntersectionId::parse_internal(s).map_err(|_| bad("intersection_id"))?
            }
            _ => return Err(bad("intersection_id")),
        };
        out.push(row_of(&id, &row)?);
    }
    Ok(out)
}
