//! The simulator's errors.

use traffic_core::IntersectionId;
use traffic_core::city::CityError;

/// Why a city, a configuration, a set of controls or a saved state cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    /// The city is not valid.
    #[error("invalid city: {0}")]
    City(#[from] CityError),
    /// A configuration value is out of range; names the field.
    #[error("invalid configuration: {field}: {message}")]
    Config {
        /// The field at fault.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// A control names an intersection the simulator does not have.
    #[error("controls name an unknown intersection {0}")]
    UnknownIntersection(IntersectionId),
    /// A control's timings do not fit its intersection.
    #[error("timings for {id}: {message}")]
    Timing {
        /// The intersection.
        id: IntersectionId,
        /// What is wrong with them.
        message: String,
    },
    /// A saved state is inconsistent.
    #[error("inconsistent simulator state: {0}")]
    State(String),
}

pub(crate) fn config(field: &'static str, message: impl Into<String>) -> SimError {
    SimError::Config {
        field,
        message: message.into(),
    }
}
