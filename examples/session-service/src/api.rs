//! The endpoints: request and response bodies, and the handlers that turn them into engine
//! calls. Every engine call runs through [`EngineCalls::run`](crate::engine_calls::EngineCalls)
//! on the blocking pool; handlers themselves only parse, validate and serialize.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router, middleware};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};
use tokm_domain::{
    Clock, Cursor, DeviceId, Metadata, NewSession, PageSize, Session, SessionError, SessionFields,
    SessionFilter, SessionId, SessionStatus, Sort, Timestamp, TokenHash, UserAgent, UserId,
};
use tokm_domain::{SessionRepository as _, TokenRepository as _};
use tokm_engine::Engine;

use crate::engine_calls::EngineCalls;
use crate::error::ApiError;
use crate::http_metrics::{self, HTTP_TOUCH_FAILURES_TOTAL};
use crate::token::{BearerToken, bearer_token_hash};

/// Shared by every handler.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) engine: EngineCalls,
    /// The engine's clock: "now" of a login and of a touch.
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) session_ttl: Duration,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) body_bytes_max: usize,
    pub(crate) metrics: PrometheusHandle,
}

/// The routes; see the crate docs for what each does.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    let body_bytes_max = state.body_bytes_max;
    Router::new()
        .route(
            "/v1/sessions",
            get(list_sessions).post(log_in).delete(log_out_everywhere),
        )
        .route("/v1/session", get(authenticate).delete(log_out))
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(health))
        .fallback(|| async { ApiError::NoRoute })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(body_bytes_max))
        .layer(middleware::from_fn(http_metrics::record_request))
        .with_state(state)
}

/// `POST /v1/sessions`.
///
/// The service trusts its caller to have checked the user's credentials: in a real
/// deployment this endpoint sits behind the identity provider, not on the open internet.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogInRequest {
    user_id: String,
    #[serde(default)]
    device_id: Option<String>,
    /// Lifetime in seconds; the service's default when absent.
    #[serde(default)]
    ttl_seconds: Option<u64>,
    /// Idle timeout in seconds; the service's default when absent.
    #[serde(default)]
    idle_timeout_seconds: Option<u64>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct LogInResponse {
    /// The bearer token. Sent this once; the engine keeps only its hash.
    token: String,
    session: SessionView,
}

/// A session as clients see it: no token hash, times in milliseconds since the Unix epoch.
#[derive(Serialize)]
struct SessionView {
    id: String,
    user_id: String,
    device_id: Option<String>,
    user_agent: Option<String>,
    ip_address: Option<IpAddr>,
    last_access_ip: Option<IpAddr>,
    created_at_ms: u64,
    last_active_ms: u64,
    expires_at_ms: u64,
    idle_timeout_ms: Option<u64>,
    /// When the session ends unless used again: the earlier of `expires_at_ms` and
    /// `last_active_ms + idle_timeout_ms`.
    expiry_ms: u64,
    metadata: BTreeMap<String, String>,
    version: u64,
    /// Whether this is the session of the token the request came with.
    current: bool,
}

impl SessionView {
    fn of(session: &Session, current_id: SessionId) -> SessionView {
        let fields = session.fields();
        SessionView {
            id: session.id().to_string(),
            user_id: fields.user_id.as_str().to_owned(),
            device_id: fields.device_id.as_ref().map(|id| id.as_str().to_owned()),
            user_agent: fields.user_agent.as_ref().map(|ua| ua.as_str().to_owned()),
            ip_address: fields.ip_address,
            last_access_ip: fields.last_access_ip,
            created_at_ms: fields.created_at.as_millis(),
            last_active_ms: fields.last_active.as_millis(),
            expires_at_ms: fields.expires_at.as_millis(),
            idle_timeout_ms: fields
                .idle_timeout
                .map(|idle| u64::try_from(idle.as_millis()).unwrap_or(u64::MAX)),
            expiry_ms: session.expiry().as_millis(),
            metadata: fields.metadata.to_map(),
            version: session.version(),
            current: session.id() == current_id,
        }
    }
}

/// `GET /v1/sessions` query: `?device_id=...&limit=...&cursor=...`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    device_id: Option<String>,
    /// Page size, 1..=100 (default 20).
    #[serde(default)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[serde(default)]
    cursor: Option<String>,
}

#[derive(Serialize)]
struct ListResponse {
    sessions: Vec<SessionView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

#[derive(Serialize)]
struct LoggedOut {
    /// Sessions removed.
    logged_out: u64,
}

#[derive(Serialize)]
struct Health {
    read_only: bool,
    session_count: usize,
    last_lsn: u64,
    durable_lsn: u64,
    /// Code of the engine's most recent failure, if any.
    last_error_code: Option<&'static str>,
}

type PeerAddress = Option<Extension<ConnectInfo<SocketAddr>>>;

fn peer_ip(peer: PeerAddress) -> Option<IpAddr> {
    peer.map(|Extension(ConnectInfo(address))| address.ip())
}

/// Log in: create a session and return its bearer token, once.
async fn log_in(
    State(state): State<Arc<AppState>>,
    peer: PeerAddress,
    headers: HeaderMap,
    body: Result<Json<LogInRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) =
        body.map_err(|rejection| ApiError::from_json_rejection(&rejection, state.body_bytes_max))?;
    let token = BearerToken::generate()?;
    let now = state.clock.now();
    let mut fields = SessionFields::new(
        SessionId::generate(now)?,
        UserId::new(&request.user_id)?,
        token.hash()?,
        now,
        after(
            now,
            request_duration(request.ttl_seconds, state.session_ttl),
            "ttl_seconds",
        )?,
    );
    fields.device_id = request
        .device_id
        .as_deref()
        .map(DeviceId::new)
        .transpose()?;
    fields.user_agent = user_agent_of(&headers)?;
    fields.ip_address = peer_ip(peer);
    fields.idle_timeout = request
        .idle_timeout_seconds
        .map(Duration::from_secs)
        .or(state.idle_timeout);
    fields.metadata = Metadata::from_map(request.metadata)?;
    let new_session = NewSession::new(fields)?;

    let session = state
        .engine
        .run(move |engine| Ok(engine.create(new_session)?.session))
        .await?;
    let body = LogInResponse {
        token: token.into_string(),
        session: SessionView::of(&session, session.id()),
    };
    // RFC 6749 §5.1: a response carrying a token must not be cached.
    let no_store = [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))];
    Ok((StatusCode::CREATED, no_store, Json(body)).into_response())
}

/// Authenticate: the session of the bearer token, touched (its `last_active` moves to now).
async fn authenticate(
    State(state): State<Arc<AppState>>,
    peer: PeerAddress,
    headers: HeaderMap,
) -> Result<Json<SessionView>, ApiError> {
    let token_hash = bearer_token_hash(&headers)?;
    let ip = peer_ip(peer);
    let clock = Arc::clone(&state.clock);
    let session = state
        .engine
        .run(move |engine| authenticate_blocking(engine, &token_hash, clock.now(), ip))
        .await?;
    Ok(Json(SessionView::of(&session, session.id())))
}

/// List the caller's live sessions, newest first, a page at a time, optionally of one device.
async fn list_sessions(
    State(state): State<Arc<AppState>>,
    peer: PeerAddress,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ListResponse>, ApiError> {
    let Query(query) = query.map_err(|rejection| ApiError::from_query_rejection(&rejection))?;
    let token_hash = bearer_token_hash(&headers)?;
    let limit = query.limit.map_or(Ok(PageSize::DEFAULT), PageSize::new)?;
    let sort = Sort::default();
    let cursor = query.cursor.as_deref().map(Cursor::decode).transpose()?;
    let device_id = query.device_id.as_deref().map(DeviceId::new).transpose()?;
    let ip = peer_ip(peer);
    let clock = Arc::clone(&state.clock);
    let (current, page) = state
        .engine
        .run(move |engine| {
            let current = authenticate_blocking(engine, &token_hash, clock.now(), ip)?;
            let filter = SessionFilter {
                user_id: Some(current.fields().user_id.clone()),
                device_id,
                status: Some(SessionStatus::Active),
                ..SessionFilter::default()
            };
            let page = engine.list_after(&filter, sort, cursor.as_ref(), limit)?;
            Ok((current, page))
        })
        .await?;
    Ok(Json(ListResponse {
        sessions: page
            .items
            .iter()
            .map(|session| SessionView::of(session, current.id()))
            .collect(),
        next_cursor: page.next.map(|cursor| cursor.encode()),
    }))
}

/// Log out: delete the session of the bearer token. An expired token logs out too: its
/// holder proves the session was theirs, and deleting it frees memory before a sweep would.
async fn log_out(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<LoggedOut>, ApiError> {
    let token_hash = bearer_token_hash(&headers)?;
    let logged_out = state
        .engine
        .run(move |engine| {
            let id = match engine.get_by_token_hash(&token_hash) {
                Ok(session) => session.id(),
                Err(SessionError::Expired { id, .. }) => id,
                Err(error) => return Err(error.into()),
            };
            Ok(u64::from(engine.delete(id)?))
        })
        .await?;
    Ok(Json(LoggedOut { logged_out }))
}

/// Log out everywhere: delete every session of the bearer token's user.
async fn log_out_everywhere(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<LoggedOut>, ApiError> {
    let token_hash = bearer_token_hash(&headers)?;
    let logged_out = state
        .engine
        .run(move |engine| {
            let current = engine.get_by_token_hash(&token_hash)?;
            Ok(engine.delete_by_user(&current.fields().user_id)?)
        })
        .await?;
    Ok(Json(LoggedOut { logged_out }))
}

/// `GET /metrics`: everything the installed recorder holds, in Prometheus text format.
async fn render_metrics(State(state): State<Arc<AppState>>) -> Response {
    let content_type = [(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    )];
    (content_type, state.metrics.render()).into_response()
}

/// `GET /healthz`: 200 while the engine accepts writes, 503 once it turned read-only.
async fn health(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    // `status()` briefly takes the snapshot lock, which a running snapshot holds across I/O.
    let status = state.engine.run(|engine| Ok(engine.status())).await?;
    let code = if status.read_only {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = Health {
        read_only: status.read_only,
        session_count: status.session_count,
        last_lsn: status.last_lsn.get(),
        durable_lsn: status.durable_lsn.get(),
        last_error_code: status.last_error.map(|error| error.code),
    };
    Ok((code, Json(body)).into_response())
}

/// The live session of `token_hash`, touched at `now`.
///
/// A failed touch (the engine turned read-only, or the log failed) does not fail the
/// request: the session was found live, reads keep working in read-only mode, and only its
/// `last_active` stays behind. The failure is counted in [`HTTP_TOUCH_FAILURES_TOTAL`].
fn authenticate_blocking(
    engine: &Engine,
    token_hash: &TokenHash,
    now: Timestamp,
    ip: Option<IpAddr>,
) -> Result<Session, ApiError> {
    let session = engine.get_by_token_hash(token_hash)?;
    match engine.touch(session.id(), now, ip) {
        Ok(touched) => Ok(touched),
        // Logged out between the lookup and the touch: the token no longer names a session.
        Err(SessionError::NotFound { .. }) => Err(SessionError::TokenNotFound.into()),
        Err(error @ (SessionError::ReadOnly | SessionError::Storage { .. })) => {
            metrics::counter!(HTTP_TOUCH_FAILURES_TOTAL, "code" => error.code()).increment(1);
            Ok(session)
        }
        Err(error) => Err(error.into()),
    }
}

/// The request's value in seconds, or the service's default.
fn request_duration(seconds: Option<u64>, default: Duration) -> Duration {
    seconds.map_or(default, Duration::from_secs)
}

/// `now + duration`, refused when it overflows.
fn after(now: Timestamp, duration: Duration, field: &'static str) -> Result<Timestamp, ApiError> {
    now.checked_add(duration).ok_or_else(|| {
        SessionError::InvalidField {
            field,
            reason: "is too far in the future".to_owned(),
        }
        .into()
    })
}

/// The `User-Agent` header as a session field; absent is fine, unreadable or over the
/// domain's limit is refused (never truncated).
fn user_agent_of(headers: &HeaderMap) -> Result<Option<UserAgent>, ApiError> {
    let Some(value) = headers.get(header::USER_AGENT) else {
        return Ok(None);
    };
    let Ok(text) = value.to_str() else {
        return Err(SessionError::InvalidField {
            field: "user_agent",
            reason: "is not visible ASCII".to_owned(),
        }
        .into());
    };
    Ok(Some(UserAgent::new(text)?))
}
