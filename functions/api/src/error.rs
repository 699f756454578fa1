//! The API's errors and their JSON form: `{"error": "...", "field": "..."}`.
//!
//! Every handler returns [`ApiError`] for what went wrong; its status says what the client should
//! do (fix the request, authenticate, pick another id, retry later) and `field`, when present,
//! names the part of the request at fault as a path (`lights[0].saturation_veh_h`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use traffic_ports::PortError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or invalid (400).
    #[error("{message}")]
    BadRequest {
        /// The field at fault, as a path.
        field: Option<String>,
        /// What is wrong with it.
        message: String,
    },
    /// A mutating request without valid credentials (401).
    #[error("{0}")]
    Unauthorized(String),
    /// The thing named in the path does not exist (404).
    #[error("{message}")]
    NotFound {
        /// The path parameter naming it.
        field: Option<String>,
        /// What was not found.
        message: String,
    },
    /// The request conflicts with what is stored: a duplicate id, or a change that would leave
    /// the intersection invalid (409).
    #[error("{message}")]
    Conflict {
        /// The field at fault.
        field: Option<String>,
        /// What conflicts.
        message: String,
    },
    /// The `If-Match` header names a version the intersection no longer has (412): someone
    /// (an operator, a retiming) changed it since the client read it.
    #[error("{0}")]
    PreconditionFailed(String),
    /// A request body over the limit (413).
    #[error("request body too large")]
    TooLarge,
    /// The store failed.
    #[error("store: {0}")]
    Port(#[from] PortError),
}

impl ApiError {
    /// A 400 naming `field`.
    pub fn bad(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// A 404 for the thing the path parameter `field` names.
    pub fn not_found(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::NotFound {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// A 409 naming `field`.
    pub fn conflict(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Conflict {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Port(PortError::NotFound(_)) => StatusCode::NOT_FOUND,
            ApiError::Port(PortError::AlreadyExists(_) | PortError::Conflict(_)) => {
                StatusCode::CONFLICT
            }
            ApiError::Port(PortError::Unavailable { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Port(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            ApiError::BadRequest { field, .. }
            | ApiError::NotFound { field, .. }
            | ApiError::Conflict { field, .. } => field.as_deref(),
            ApiError::Unauthorized(_) => Some("Authorization"),
            ApiError::PreconditionFailed(_) => Some("If-Match"),
            _ => None,
        }
    }
}

/// The JSON body of every error response.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    /// What went wrong, for a person.
    pub error: String,
    /// The field or parameter at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'a str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            // Details of store failures go to the log, not to the client.
            ApiError::Port(e) if status.is_server_error() => {
                tracing::error!(error = %e, source = ?std::error::Error::source(e), "store failure");
                match e {
                    PortError::Unavailable { .. } => {
                        "the store is temporarily unavailable; retry later".to_owned()
                    }
                    _ => "internal error in the store".to_owned(),
                }
            }
            other => other.to_string(),
        };
        let body = ErrorBody {
            error: message,
            field: self.field(),
        };
        let mut resp = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"traffic\""),
            );
        }
        resp
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
