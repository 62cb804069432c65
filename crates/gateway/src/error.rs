//! Errors as the API answers them: a status and the contract's body, either
//! `{"detail", "code"}` or DRF-style field errors `{"field": ["message"]}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::FieldErrors;
use serde_json::{Value, json};
use wire::pb::{Failure, FailureKind};

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: Value,
    retry_after_seconds: Option<u32>,
    www_authenticate: bool,
    /// Asks the client's connection to close after this answer: the request was cut short, so
    /// what follows on the connection is not the start of another request.
    close_connection: bool,
}

impl ApiError {
    /// Names the request field the error is about (`{"detail", "code", "field"}`).
    pub fn with_field(mut self, field: &str) -> Self {
        self.body["field"] = Value::String(field.to_owned());
        self
    }

    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({ "detail": detail.into(), "code": code }),
            retry_after_seconds: None,
            www_authenticate: false,
            close_connection: false,
        }
    }

    pub fn invalid(errors: FieldErrors) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            body: serde_json::to_value(errors.0).expect("field errors are JSON"),
            retry_after_seconds: None,
            www_authenticate: false,
            close_connection: false,
        }
    }

    /// The error's machine code, for one that has one (field errors do not).
    pub fn code(&self) -> Option<&str> {
        self.body.get("code").and_then(Value::as_str)
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::invalid(FieldErrors::single(field, message))
    }

    pub fn unauthenticated(code: &str, detail: impl Into<String>) -> Self {
        Self { www_authenticate: true, ..Self::new(StatusCode::UNAUTHORIZED, code, detail) }
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "Not found.")
    }

    /// The request's body did not arrive within the server's body read timeout.
    pub fn request_timeout() -> Self {
        Self {
            close_connection: true,
            ..Self::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", "The request body did not arrive in time.")
        }
    }

    /// Something behind the gateway cannot answer now; the client may retry.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self {
            retry_after_seconds: Some(1),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", detail)
        }
    }

    /// The key made more requests this second than its limit allows.
    pub fn rate_limited(reset_at_ms: i64) -> Self {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let retry_after_seconds = ((reset_at_ms - now_ms).max(0) as u64).div_ceil(1000).max(1) as u32;
        Self {
            retry_after_seconds: Some(retry_after_seconds),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Request rate limit exceeded for this API key; retry after the advertised delay.",
            )
        }
    }

    /// Another request holds what this one needs; it may retry shortly.
    pub fn in_progress(detail: &str) -> Self {
        Self { retry_after_seconds: Some(1), ..Self::new(StatusCode::CONFLICT, "idempotency_in_progress", detail) }
    }

    /// A reply the gateway did not expect: a bug between services, never the client's fault.
    pub fn unexpected_reply() -> Self {
        tracing::error!("unexpected reply from a service");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "An internal error occurred.")
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<Failure> for ApiError {
    fn from(f: Failure) -> Self {
        let kind = FailureKind::try_from(f.kind).unwrap_or(FailureKind::Internal);
        let status = match kind {
            FailureKind::Invalid if !f.field_errors.is_empty() => {
                return Self::invalid(f.field_errors());
            }
            FailureKind::Invalid => StatusCode::BAD_REQUEST,
            FailureKind::NotFound => StatusCode::NOT_FOUND,
            FailureKind::Conflict => StatusCode::CONFLICT,
            FailureKind::Unauthenticated => return Self::unauthenticated(&f.code, f.detail),
            FailureKind::Forbidden => StatusCode::FORBIDDEN,
            FailureKind::Unavailable => return Self::unavailable(f.detail),
            FailureKind::Upstream => StatusCode::BAD_GATEWAY,
            FailureKind::PaymentRequired => StatusCode::PAYMENT_REQUIRED,
            FailureKind::TooManyRequests => {
                return Self {
                    retry_after_seconds: Some(f.retry_after_seconds.unwrap_or(5)),
                    ..Self::new(StatusCode::TOO_MANY_REQUESTS, &f.code, f.detail)
                };
            }
            FailureKind::Internal | FailureKind::Unspecified => {
                tracing::error!(code = %f.code, detail = %f.detail, "service failure");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        Self::new(status, &f.code, f.detail)
    }
}

impl From<bus::Error> for ApiError {
    fn from(e: bus::Error) -> Self {
        tracing::warn!(error = %e, "bus request failed");
        match e {
            bus::Error::NoResponders(_) => {
                Self::unavailable("No worker is serving this organization right now; retry shortly.")
            }
            bus::Error::TimedOut(_) => Self::unavailable("The service did not answer in time; retry shortly."),
            bus::Error::Unavailable(_) => Self::unavailable("The message bus is unavailable; retry shortly."),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        if let Some(seconds) = self.retry_after_seconds {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.www_authenticate {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"api\""));
        }
        if self.close_connection {
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}
