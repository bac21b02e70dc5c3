//! The service's two error types: [`ApiError`], what a request gets back as an HTTP status and
//! a JSON body, and [`ServiceError`], why the service could not start, serve or stop.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokm_domain::SessionError;
use tokm_engine::EngineError;

/// Why a request failed. Every variant maps to one HTTP status and a stable code; the response
/// body is `{"code": "...", "message": "..."}`.
///
/// A request with bad input gets a 4xx; only a storage failure or a fault of the service itself
/// gets a 5xx. Messages name the field or the rule, never a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The session layer refused the request; its code is the domain's (`TM-SESS-*`).
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The body is not JSON at all (a syntax error, or not UTF-8).
    #[error("request body is not valid JSON: {reason}")]
    MalformedJson {
        /// What the JSON parser reported.
        reason: String,
    },
    /// The query string does not fit the endpoint's parameters.
    #[error("invalid query string: {reason}")]
    InvalidQuery {
        /// What the parser reported.
        reason: String,
    },
    /// No `Authorization: Bearer <token>` header.
    #[error("no bearer token: send the header `Authorization: Bearer <token>`")]
    NoBearerToken,
    /// No endpoint has this path.
    #[error("no such endpoint")]
    NoRoute,
    /// The endpoint exists but not with this method.
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,
    /// The body is larger than [`ServiceConfig::body_bytes_max`](crate::ServiceConfig).
    #[error("request body is larger than {limit_bytes} bytes")]
    BodyTooLarge {
        /// The limit in force.
        limit_bytes: usize,
    },
    /// The body was not declared as JSON.
    #[error("request body must be sent with `Content-Type: application/json`")]
    NotJson,
    /// The body is JSON but not what the endpoint takes (a missing, unknown or mistyped field).
    #[error("request body does not match the endpoint: {reason}")]
    InvalidJson {
        /// What the deserializer reported.
        reason: String,
    },
    /// An engine call ended without a result: it panicked (a bug) or was cancelled.
    #[error("engine call did not complete")]
    EngineCall,
    /// The operating system's random source failed while making a token.
    #[error("random source failed: {0}")]
    RandomSource(getrandom::Error),
    /// The service is shutting down and accepts no more engine calls.
    #[error("service is shutting down")]
    ShuttingDown,
}

impl ApiError {
    /// Every code of the service's own variants, in declaration order; [`ApiError::Session`]
    /// carries the domain's codes.
    pub const CODES: [&'static str; 11] = [
        "TM-HTTP-4001",
        "TM-HTTP-4002",
        "TM-HTTP-4011",
        "TM-HTTP-4041",
        "TM-HTTP-4051",
        "TM-HTTP-4131",
        "TM-HTTP-4151",
        "TM-HTTP-4221",
        "TM-HTTP-5001",
        "TM-HTTP-5002",
        "TM-HTTP-5031",
    ];

    /// The stable code: `TM-HTTP-NNNN` for the service's own errors, the domain's
    /// `TM-SESS-NNNN` for [`ApiError::Session`].
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Session(error) => error.code(),
            ApiError::MalformedJson { .. } => "TM-HTTP-4001",
            ApiError::InvalidQuery { .. } => "TM-HTTP-4002",
            ApiError::NoBearerToken => "TM-HTTP-4011",
            ApiError::NoRoute => "TM-HTTP-4041",
            ApiError::MethodNotAllowed => "TM-HTTP-4051",
            ApiError::BodyTooLarge { .. } => "TM-HTTP-4131",
            ApiError::NotJson => "TM-HTTP-4151",
            ApiError::InvalidJson { .. } => "TM-HTTP-4221",
            ApiError::EngineCall => "TM-HTTP-5001",
            ApiError::RandomSource(_) => "TM-HTTP-5002",
            ApiError::ShuttingDown => "TM-HTTP-5031",
        }
    }

    /// The HTTP status the response carries.
    ///
    /// A token that matches no live session (`TM-SESS-4042`) or an expired one
    /// (`TM-SESS-4101`) is 401 Unauthorized, as RFC 6750 asks of a bearer-token API; the code
    /// in the body tells the two apart.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Session(error) => session_status(error),
            ApiError::MalformedJson { .. } | ApiError::InvalidQuery { .. } => {
                StatusCode::BAD_REQUEST
            }
            ApiError::NoBearerToken => StatusCode::UNAUTHORIZED,
            ApiError::NoRoute => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::InvalidJson { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::EngineCall | ApiError::RandomSource(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The error for a rejected JSON body, given the limit the body was held to.
    pub(crate) fn from_json_rejection(rejection: &JsonRejection, limit_bytes: usize) -> ApiError {
        match rejection {
            JsonRejection::JsonSyntaxError(_) => ApiError::MalformedJson {
                reason: innermost_message(rejection),
            },
            JsonRejection::JsonDataError(_) => ApiError::InvalidJson {
                reason: innermost_message(rejection),
            },
            JsonRejection::MissingJsonContentType(_) => ApiError::NotJson,
            // Reading the body failed: over the limit, or the client sent a broken stream.
            _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::BodyTooLarge { limit_bytes }
            }
            _ => ApiError::MalformedJson {
                reason: innermost_message(rejection),
            },
        }
    }

    /// The error for a rejected query string.
    pub(crate) fn from_query_rejection(rejection: &QueryRejection) -> ApiError {
        ApiError::InvalidQuery {
            reason: innermost_message(rejection),
        }
    }
}

/// The message of the deepest error in `error`'s source chain: the parser's own words
/// ("unknown field `user`, expected ... at line 1 column 7") without the wrappers' prefixes.
fn innermost_message(error: &dyn std::error::Error) -> String {
    let mut innermost = error;
    // Bounded: a source chain is a handful of wrappers deep.
    for _ in 0..16 {
        let Some(source) = innermost.source() else {
            break;
        };
        innermost = source;
    }
    innermost.to_string()
}

/// HTTP status of a domain error; codes echo an HTTP class in their first three digits.
fn session_status(error: &SessionError) -> StatusCode {
    match error {
        SessionError::InvalidField { .. }
        | SessionError::InvalidPage { .. }
        | SessionError::InvalidCursor { .. } => StatusCode::BAD_REQUEST,
        SessionError::NotFound { .. } => StatusCode::NOT_FOUND,
        SessionError::TokenNotFound | SessionError::Expired { .. } => StatusCode::UNAUTHORIZED,
        SessionError::VersionConflict { .. }
        | SessionError::IdConflict { .. }
        | SessionError::TokenConflict { .. } => StatusCode::CONFLICT,
        SessionError::QuotaExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
        SessionError::ReadOnly => StatusCode::SERVICE_UNAVAILABLE,
        // `Storage`, and any variant a later domain version adds: a fault below the request.
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The JSON body of every error response.
#[derive(Debug, Serialize)]
pub(crate) struct ErrorBody {
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody {
            code: self.code(),
            message: self.to_string(),
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            let challenge = match self {
                ApiError::NoBearerToken => "Bearer",
                _ => "Bearer error=\"invalid_token\"",
            };
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

/// Why the service could not start, serve or shut down.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The configuration contradicts itself.
    #[error("invalid service configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// Opening or closing the engine failed; the engine's code is in the message.
    #[error("engine failed ({})", source.code())]
    Engine {
        /// The engine's error.
        #[source]
        source: EngineError,
    },
    /// Binding, accepting or serving on the socket failed.
    #[error("i/o while {action}")]
    Io {
        /// What the service was doing, e.g. "binding 127.0.0.1:8080".
        action: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The Prometheus recorder could not be installed (another recorder is installed already).
    #[error("installing the metrics recorder failed")]
    MetricsRecorder {
        /// The exporter's error.
        #[source]
        source: metrics_exporter_prometheus::BuildError,
    },
    /// The engine's close ran on a thread that panicked.
    #[error("engine close did not complete")]
    CloseTask,
}

impl ServiceError {
    /// Every code, in declaration order.
    pub const CODES: [&'static str; 5] = [
        "TM-SVC-4001",
        "TM-SVC-5002",
        "TM-SVC-5001",
        "TM-SVC-5003",
        "TM-SVC-5004",
    ];

    /// The stable code, `TM-SVC-NNNN`.
    pub fn code(&self) -> &'static str {
        match self {
            ServiceError::InvalidConfig { .. } => "TM-SVC-4001",
            ServiceError::Engine { .. } => "TM-SVC-5002",
            ServiceError::Io { .. } => "TM-SVC-5001",
            ServiceError::MetricsRecorder { .. } => "TM-SVC-5003",
            ServiceError::CloseTask => "TM-SVC-5004",
        }
    }
}

impl From<EngineError> for ServiceError {
    fn from(source: EngineError) -> ServiceError {
        ServiceError::Engine { source }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use tokm_domain::{SessionId, Timestamp};

    use super::*;

    fn is_well_formed(code: &str, area: &str) -> bool {
        let Some(digits) = code
            .strip_prefix("TM-")
            .and_then(|rest| rest.strip_prefix(area))
            .and_then(|rest| rest.strip_prefix('-'))
        else {
            return false;
        };
        digits.len() == 4 && digits.bytes().all(|b| b.is_ascii_digit())
    }

    fn own_api_errors() -> Vec<ApiError> {
        vec![
            ApiError::MalformedJson {
                reason: String::new(),
            },
            ApiError::InvalidQuery {
                reason: String::new(),
            },
            ApiError::NoBearerToken,
            ApiError::NoRoute,
            ApiError::MethodNotAllowed,
            ApiError::BodyTooLarge { limit_bytes: 1 },
            ApiError::NotJson,
            ApiError::InvalidJson {
                reason: String::new(),
            },
            ApiError::EngineCall,
            ApiError::RandomSource(getrandom::Error::UNSUPPORTED),
            ApiError::ShuttingDown,
        ]
    }

    #[test]
    fn api_codes_are_unique_well_formed_listed_and_echo_the_status() {
        let errors = own_api_errors();
        let codes: Vec<&str> = errors.iter().map(ApiError::code).collect();
        assert_eq!(codes, ApiError::CODES, "CODES lists every variant in order");
        let unique: BTreeSet<&str> = ApiError::CODES.iter().copied().collect();
        assert_eq!(unique.len(), ApiError::CODES.len(), "{codes:?}");
        for error in &errors {
            let code = error.code();
            assert!(is_well_formed(code, "HTTP"), "{code}");
            assert_eq!(
                &code[8..11],
                error.status().as_str(),
                "{code} echoes its status"
            );
        }
    }

    #[test]
    fn service_codes_are_unique_and_well_formed() {
        let unique: BTreeSet<&str> = ServiceError::CODES.iter().copied().collect();
        assert_eq!(unique.len(), ServiceError::CODES.len());
        for code in ServiceError::CODES {
            assert!(is_well_formed(code, "SVC"), "{code}");
        }
        let closed = ServiceError::CloseTask;
        assert!(ServiceError::CODES.contains(&closed.code()));
    }

    #[test]
    fn token_errors_are_unauthorized_with_a_challenge() {
        let id = SessionId::from_parts(Timestamp::from_millis(1), 1).expect("valid id");
        for error in [
            ApiError::Session(SessionError::TokenNotFound),
            ApiError::Session(SessionError::Expired {
                id,
                expired_at: Timestamp::from_millis(2),
            }),
            ApiError::NoBearerToken,
        ] {
            let code = error.code();
            let response = error.into_response();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{code}");
            let challenge = response.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .expect("ascii");
            assert!(challenge.starts_with("Bearer"), "{code}: {challenge}");
        }
    }

    #[test]
    fn storage_failures_are_the_only_domain_errors_with_a_5xx() {
        let storage = SessionError::Storage {
            layer_code: "TM-WAL-5001",
            source: Box::new(std::io::Error::other("disk")),
        };
        assert_eq!(
            ApiError::Session(storage).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            ApiError::Session(SessionError::ReadOnly).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let page = SessionError::InvalidPage {
            reason: "size 0".to_owned(),
        };
        assert_eq!(ApiError::Session(page).status(), StatusCode::BAD_REQUEST);
    }
}
