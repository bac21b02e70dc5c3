//! The session service driven over real TCP on 127.0.0.1 by a real HTTP client (`ureq`): every
//! endpoint, bad input, expiry under an injected clock, and a restart that loses no session.
//!
//! Each test runs its own service on its own data directory and a free port; the Prometheus
//! recorder is installed once for the whole test process. The behaviours share one file
//! because each test binary links the whole server stack (axum, tokio, the engine), and CI
//! builds every binary.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokm_domain::{Clock, ManualClock, Quota, QuotaPolicy, SystemClock, Timestamp};
use tokm_engine::EngineConfig;
use tokm_session_service::{Service, ServiceConfig, ServiceError, install_prometheus_recorder};
use ureq::http::{Method, Request};

// ---------------------------------------------------------------------------------------------
// Harness: a running service, and a client that returns status and body whatever the status.
// ---------------------------------------------------------------------------------------------

fn metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| install_prometheus_recorder().expect("the first install in this process"))
        .clone()
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn config(dir: &Path, clock: Arc<dyn Clock>) -> ServiceConfig {
    let mut engine = EngineConfig::new(dir);
    engine.clock = clock;
    // The engine's background sweep would remove a session the manual clock expired at a
    // moment of its choosing, turning "expired" into "unknown token" mid-test.
    engine.sweep.interval = None;
    ServiceConfig::new(engine)
}

/// A service serving on a free port of 127.0.0.1.
struct Server {
    service: Arc<Service>,
    client: Client,
    stop: oneshot::Sender<()>,
    served: JoinHandle<Result<(), ServiceError>>,
}

impl Server {
    fn start(runtime: &Runtime, config: ServiceConfig) -> Server {
        let (service, _report) = Service::open(config, metrics()).expect("the service opens");
        let service = Arc::new(service);
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("a free port");
        let address = listener.local_addr().expect("the bound address");
        let (stop, stopped) = oneshot::channel::<()>();
        let served = runtime.spawn({
            let service = Arc::clone(&service);
            async move {
                let shutdown = async {
                    // A dropped sender stops the server too.
                    let _ = stopped.await;
                };
                service.serve(listener, shutdown).await
            }
        });
        Server {
            service,
            client: Client::new(&format!("http://{address}")),
            stop,
            served,
        }
    }

    /// Graceful shutdown: stop accepting, finish requests in flight, close the engine.
    fn stop(self, runtime: &Runtime) {
        self.stop.send(()).expect("the server is still running");
        runtime
            .block_on(self.served)
            .expect("the server task did not panic")
            .expect("the server stopped cleanly");
        runtime
            .block_on(self.service.close())
            .expect("the engine closed cleanly");
    }
}

struct Client {
    agent: ureq::Agent,
    base: String,
}

/// A response: status, selected headers and the body.
#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: String,
    cache_control: Option<String>,
    www_authenticate: Option<String>,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|error| {
            panic!("body is not JSON ({error}): {}", self.text);
        })
    }

    /// Asserts a JSON error response with this status and code.
    fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert!(
            self.content_type.starts_with("application/json"),
            "{self:?}"
        );
        let body = self.json();
        assert_eq!(body["code"], code, "{self:?}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{self:?}"
        );
    }
}

impl Client {
    fn new(base: &str) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Client {
            agent,
            base: base.to_owned(),
        }
    }

    fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: &str,
    ) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("User-Agent", "tokm-session-service-test/1");
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        let request = request.body(body).expect("a well-formed request");
        let mut response = self.agent.run(request).expect("an HTTP response");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|value| value.to_str().expect("ascii header").to_owned())
        };
        let content_type = header("content-type").unwrap_or_default();
        let cache_control = header("cache-control");
        let www_authenticate = header("www-authenticate");
        let text = response
            .body_mut()
            .read_to_string()
            .expect("a readable body");
        Reply {
            status: response.status().as_u16(),
            content_type,
            cache_control,
            www_authenticate,
            text,
        }
    }

    fn log_in(&self, body: Value) -> Reply {
        self.send(
            Method::POST,
            "/v1/sessions",
            None,
            Some("application/json"),
            &body.to_string(),
        )
    }

    /// Logs in and returns the token and the session id.
    fn log_in_ok(&self, body: Value) -> (String, String) {
        let reply = self.log_in(body);
        assert_eq!(reply.status, 201, "{reply:?}");
        let json = reply.json();
        let token = json["token"].as_str().expect("a token").to_owned();
        let id = json["session"]["id"].as_str().expect("an id").to_owned();
        (token, id)
    }

    fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(Method::GET, path, token, None, "")
    }

    fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(Method::DELETE, path, token, None, "")
    }

    /// Ids of every session a list walk yields, following `next_cursor` page by page.
    fn list_all(&self, token: &str, query: &str) -> Vec<String> {
        let mut ids = Vec::new();
        let mut path = format!("/v1/sessions?{query}");
        for _page in 0..100 {
            let reply = self.get(&path, Some(token));
            assert_eq!(reply.status, 200, "{reply:?}");
            let json = reply.json();
            for session in json["sessions"].as_array().expect("a list") {
                ids.push(session["id"].as_str().expect("an id").to_owned());
            }
            let Some(cursor) = json["next_cursor"].as_str() else {
                return ids;
            };
            path = format!("/v1/sessions?{query}&cursor={cursor}");
        }
        panic!("more than 100 pages");
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn log_in_authenticate_list_and_log_out_work_over_http() {
    let runtime = runtime();
    let dir = tempfile::tempdir().expect("a temp dir");
    let server = Server::start(&runtime, config(dir.path(), Arc::new(SystemClock)));
    let client = &server.client;

    // Log in: 201, the token once, never cached; the session without any hash.
    let reply = client.log_in(json!({
        "user_id": "alice", "device_id": "laptop", "metadata": {"app": "web"}
    }));
    assert_eq!(reply.status, 201, "{reply:?}");
    assert_eq!(reply.cache_control.as_deref(), Some("no-store"));
    let json = reply.json();
    let laptop = json["token"].as_str().expect("a token").to_owned();
    assert_eq!(laptop.len(), 64);
    let session = &json["session"];
    assert_eq!(session["user_id"], "alice");
    assert_eq!(session["device_id"], "laptop");
    assert_eq!(session["ip_address"], "127.0.0.1");
    assert_eq!(session["user_agent"], "tokm-session-service-test/1");
    assert_eq!(session["metadata"]["app"], "web");
    assert_eq!(session["version"], 1);
    assert!(!reply.text.contains("hash"), "{}", reply.text);

    let (laptop_2, _) = client.log_in_ok(json!({"user_id": "alice", "device_id": "laptop"}));
    let (phone, phone_id) = client.log_in_ok(json!({"user_id": "alice", "device_id": "phone"}));
    let (bob, _) = client.log_in_ok(json!({"user_id": "bob", "device_id": "laptop"}));

    // Authenticate: the token's own session, touched from this address.
    let reply = client.get("/v1/session", Some(&phone));
    assert_eq!(reply.status, 200, "{reply:?}");
    let json = reply.json();
    assert_eq!(json["id"], phone_id.as_str());
    assert_eq!(json["current"], true);
    assert_eq!(json["last_access_ip"], "127.0.0.1");
    assert!(!reply.text.contains(&phone), "the token is never sent back");

    // List: alice's sessions only, newest first, one page at a time, filtered by device.
    let all = client.list_all(&phone, "limit=2");
    assert_eq!(all.len(), 3, "{all:?}");
    let laptops = client.list_all(&phone, "device_id=laptop&limit=1");
    assert_eq!(laptops.len(), 2, "{laptops:?}");
    assert!(laptops.iter().all(|id| all.contains(id) && *id != phone_id));
    let reply = client.get("/v1/sessions", Some(&phone));
    let page = reply.json();
    let sessions = page["sessions"].as_array().expect("a list");
    assert_eq!(page["next_cursor"], Value::Null);
    let current: Vec<&Value> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], phone_id.as_str());
    let created: Vec<u64> = sessions
        .iter()
        .map(|s| s["created_at_ms"].as_u64().expect("a time"))
        .collect();
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "newest first");

    // Log out one session: its token stops working, the others do not.
    let reply = client.delete("/v1/session", Some(&laptop_2));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["logged_out"], 1);
    client
        .get("/v1/session", Some(&laptop_2))
        .assert_error(401, "TM-SESS-4042");
    assert_eq!(client.list_all(&laptop, "").len(), 2);

    // Log out everywhere: every session of alice ends, bob's stays.
    let reply = client.delete("/v1/sessions", Some(&laptop));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["logged_out"], 2);
    for token in [&laptop, &phone] {
        client
            .get("/v1/session", Some(token))
            .assert_error(401, "TM-SESS-4042");
    }
    assert_eq!(client.get("/v1/session", Some(&bob)).status, 200);

    // Health reports the engine.
    let reply = client.get("/healthz", None);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["read_only"], false);
    assert_eq!(reply.json()["session_count"], 1);

    server.stop(&runtime);
}

#[test]
fn bad_input_gets_a_clear_4xx_with_its_code_and_never_a_5xx() {
    let runtime = runtime();
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut config = config(dir.path(), Arc::new(SystemClock));
    config.engine.quota = Quota {
        sessions_per_user_max: 2,
        policy: QuotaPolicy::Reject,
    };
    let server = Server::start(&runtime, config);
    let client = &server.client;
    let (token, _) = client.log_in_ok(json!({"user_id": "carol"}));
    let json_type = Some("application/json");
    let too_big = format!(
        r#"{{"user_id": "carol", "metadata": {{"k": "{}"}}}}"#,
        "x".repeat(20_000)
    );

    let cases: Vec<(&str, Reply, u16, &str)> = vec![
        (
            "malformed JSON",
            client.send(
                Method::POST,
                "/v1/sessions",
                None,
                json_type,
                r#"{"user_id": "#,
            ),
            400,
            "TM-HTTP-4001",
        ),
        (
            "JSON of the wrong shape",
            client.send(
                Method::POST,
                "/v1/sessions",
                None,
                json_type,
                r#"{"user": "carol"}"#,
            ),
            422,
            "TM-HTTP-4221",
        ),
        (
            "a mistyped field",
            client.log_in(json!({"user_id": "carol", "ttl_seconds": "soon"})),
            422,
            "TM-HTTP-4221",
        ),
        (
            "no JSON content type",
            client.send(
                Method::POST,
                "/v1/sessions",
                None,
                None,
                r#"{"user_id": "carol"}"#,
            ),
            415,
            "TM-HTTP-4151",
        ),
        (
            "a body over the limit",
            client.send(Method::POST, "/v1/sessions", None, json_type, &too_big),
            413,
            "TM-HTTP-4131",
        ),
        (
            "an empty user id",
            client.log_in(json!({"user_id": ""})),
            400,
            "TM-SESS-4001",
        ),
        (
            "a zero lifetime",
            client.log_in(json!({"user_id": "carol", "ttl_seconds": 0})),
            400,
            "TM-SESS-4001",
        ),
        (
            "a lifetime past the end of time",
            client.log_in(json!({"user_id": "carol", "ttl_seconds": u64::MAX})),
            400,
            "TM-SESS-4001",
        ),
        (
            "a user over quota",
            {
                client.log_in_ok(json!({"user_id": "carol"}));
                client.log_in(json!({"user_id": "carol"}))
            },
            429,
            "TM-SESS-4291",
        ),
        (
            "no token",
            client.get("/v1/session", None),
            401,
            "TM-HTTP-4011",
        ),
        (
            "an unknown token",
            client.get("/v1/session", Some("not-a-token-anyone-was-given")),
            401,
            "TM-SESS-4042",
        ),
        (
            "log out with an unknown token",
            client.delete("/v1/session", Some("not-a-token-anyone-was-given")),
            401,
            "TM-SESS-4042",
        ),
        (
            "a page size of 0",
            client.get("/v1/sessions?limit=0", Some(&token)),
            400,
            "TM-SESS-4002",
        ),
        (
            "a page size over 100",
            client.get("/v1/sessions?limit=101", Some(&token)),
            400,
            "TM-SESS-4002",
        ),
        (
            "a page size that is no number",
            client.get("/v1/sessions?limit=many", Some(&token)),
            400,
            "TM-HTTP-4002",
        ),
        (
            "an unknown query parameter",
            client.get("/v1/sessions?user_id=dave", Some(&token)),
            400,
            "TM-HTTP-4002",
        ),
        (
            "a garbled cursor",
            client.get("/v1/sessions?cursor=garbage", Some(&token)),
            400,
            "TM-SESS-4003",
        ),
        (
            "an unknown path",
            client.get("/v1/nothing-here", Some(&token)),
            404,
            "TM-HTTP-4041",
        ),
        (
            "a method the endpoint lacks",
            client.send(Method::PUT, "/v1/session", Some(&token), json_type, "{}"),
            405,
            "TM-HTTP-4051",
        ),
    ];
    for (what, reply, status, code) in &cases {
        assert!(reply.status < 500, "{what}: {reply:?}");
        assert!(
            !reply.text.contains("Failed to"),
            "{what}: one message, not a chain: {reply:?}"
        );
        assert_eq!(reply.status, *status, "{what}: {reply:?}");
        reply.assert_error(*status, code);
    }
    let (_, unknown, _, _) = cases
        .iter()
        .find(|(what, ..)| *what == "an unknown token")
        .expect("the case is listed");
    assert_eq!(
        unknown.www_authenticate.as_deref(),
        Some(r#"Bearer error="invalid_token""#)
    );

    // Nothing above hurt the service: the first session still authenticates.
    assert_eq!(client.get("/v1/session", Some(&token)).status, 200);
    server.stop(&runtime);
}

#[test]
fn an_expired_token_is_refused_with_its_code_and_may_still_log_out() {
    let runtime = runtime();
    let dir = tempfile::tempdir().expect("a temp dir");
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
    let server = Server::start(&runtime, config(dir.path(), clock.clone()));
    let client = &server.client;

    // Absolute lifetime.
    let (short, _) = client.log_in_ok(json!({"user_id": "erin", "ttl_seconds": 60}));
    assert_eq!(client.get("/v1/session", Some(&short)).status, 200);
    clock.advance(Duration::from_secs(60));
    client
        .get("/v1/session", Some(&short))
        .assert_error(401, "TM-SESS-4101");
    client
        .get("/v1/sessions", Some(&short))
        .assert_error(401, "TM-SESS-4101");
    client
        .delete("/v1/sessions", Some(&short))
        .assert_error(401, "TM-SESS-4101");
    let reply = client.delete("/v1/session", Some(&short));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["logged_out"], 1);
    client
        .get("/v1/session", Some(&short))
        .assert_error(401, "TM-SESS-4042");

    // Idle timeout: each authentication touches the session and pushes its end back.
    let (idle, _) = client.log_in_ok(json!({"user_id": "erin", "idle_timeout_seconds": 30}));
    for _ in 0..3 {
        clock.advance(Duration::from_secs(20));
        let reply = client.get("/v1/session", Some(&idle));
        assert_eq!(reply.status, 200, "20 s idle of 30: {reply:?}");
        let session = reply.json();
        assert_eq!(
            session["expiry_ms"].as_u64(),
            Some(clock.now().as_millis() + 30_000)
        );
    }
    clock.advance(Duration::from_secs(30));
    client
        .get("/v1/session", Some(&idle))
        .assert_error(401, "TM-SESS-4101");

    server.stop(&runtime);
}

#[test]
fn a_restart_in_the_middle_loses_no_session() {
    let runtime = runtime();
    let dir = tempfile::tempdir().expect("a temp dir");
    let server = Server::start(&runtime, config(dir.path(), Arc::new(SystemClock)));
    let mut tokens = Vec::new();
    for index in 0..12 {
        let device = format!("device-{}", index % 3);
        let user = format!("user-{}", index % 4);
        tokens.push(
            server
                .client
                .log_in_ok(json!({"user_id": user, "device_id": device})),
        );
    }
    let (revoked, _) = tokens.remove(0);
    assert_eq!(
        server.client.delete("/v1/session", Some(&revoked)).status,
        200
    );
    let before: Vec<Vec<String>> = tokens
        .iter()
        .map(|(token, _)| server.client.list_all(token, "limit=1"))
        .collect();
    server.stop(&runtime);

    // Same directory, a new engine, a new port.
    let server = Server::start(&runtime, config(dir.path(), Arc::new(SystemClock)));
    let client = &server.client;
    for ((token, id), listed) in tokens.iter().zip(&before) {
        let reply = client.get("/v1/session", Some(token));
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.json()["id"], id.as_str());
        assert_eq!(&client.list_all(token, "limit=1"), listed);
    }
    client
        .get("/v1/session", Some(&revoked))
        .assert_error(401, "TM-SESS-4042");
    let (fresh, _) = client.log_in_ok(json!({"user_id": "user-1"}));
    assert_eq!(client.get("/v1/session", Some(&fresh)).status, 200);
    server.stop(&runtime);
}

#[test]
fn metrics_are_prometheus_text_with_request_counters_and_no_secrets() {
    let runtime = runtime();
    let dir = tempfile::tempdir().expect("a temp dir");
    let server = Server::start(&runtime, config(dir.path(), Arc::new(SystemClock)));
    let client = &server.client;
    let (token, _) = client.log_in_ok(json!({"user_id": "frank-the-metric-user"}));
    assert_eq!(client.get("/v1/session", Some(&token)).status, 200);
    client.get("/no/such/path/for-metrics", None);

    let reply = client.get("/metrics", None);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.content_type.starts_with("text/plain"), "{reply:?}");
    let text = &reply.text;
    let has_line = |parts: &[&str]| {
        text.lines()
            .any(|line| parts.iter().all(|part| line.contains(part)))
    };
    assert!(
        has_line(&[
            "tokm_http_requests_total{",
            r#"method="POST""#,
            r#"route="/v1/sessions""#,
            r#"status="201""#,
        ]),
        "{text}"
    );
    assert!(
        has_line(&[
            "tokm_http_requests_total{",
            r#"route="unmatched""#,
            r#"status="404""#
        ]),
        "{text}"
    );
    assert!(
        has_line(&[
            "tokm_http_request_duration_seconds_bucket{",
            r#"route="/v1/session""#,
            r#"le="0.001""#,
        ]),
        "{text}"
    );
    // The engine's own metrics, registered with the same recorder when the service opened it.
    assert!(
        has_line(&[
            "tokm_operations_total{",
            r#"operation="create""#,
            r#"outcome="ok""#,
        ]),
        "{text}"
    );
    assert!(has_line(&["tokm_wal_appends_total"]), "{text}");
    assert!(has_line(&["tokm_sessions"]), "{text}");
    assert!(!text.contains(&token), "no token in metrics");
    assert!(
        !text.contains("frank-the-metric-user"),
        "no user id in metrics"
    );
    assert!(!text.contains("for-metrics"), "no raw path in metrics");
    server.stop(&runtime);
}
