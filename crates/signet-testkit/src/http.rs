//! An HTTP server that records webhook calls, standing in for an SMS gateway.
//!
//! Every request is recorded with the status it was answered: `200` for a
//! `POST` with a JSON body, `500` while [`HttpSink::set_failing`] is on (to
//! simulate the gateway being down), `405` for other methods and `400` for a
//! body that is not JSON. A form-encoded `POST` (the Twilio Messages API's
//! shape) is answered `201`, as Twilio does.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// One request the sink received.
#[derive(Clone, Debug)]
pub struct CapturedRequest {
    pub method: String,
    pub path: String,
    pub content_type: Option<String>,
    /// The body as text (lossy UTF-8).
    pub body: String,
    /// The body parsed as JSON, when it was JSON.
    pub json: Option<serde_json::Value>,
    /// The `Authorization` header, as sent.
    pub authorization: Option<String>,
    /// The status the sink answered.
    pub status: u16,
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<CapturedRequest>>,
    failing: AtomicBool,
    arrived: Notify,
}

impl Shared {
    fn requests(&self) -> Vec<CapturedRequest> {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// An HTTP server on `127.0.0.1` that records what is sent to it.
///
/// Dropping the sink stops the server.
pub struct HttpSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl HttpSink {
    /// Binds `127.0.0.1:0` and serves on the current tokio runtime.
    pub async fn start() -> std::io::Result<HttpSink> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let app = Router::new().fallback(record).with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            // Ends only when the task is aborted on drop.
            let _ = axum::serve(listener, app).await;
        });
        Ok(HttpSink { addr, shared, server })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/sms`; any path is accepted.
    pub fn url(&self) -> String {
        format!("http://{}/sms", self.addr)
    }

    /// Every request received so far, oldest first, including refused ones.
    pub fn requests(&self) -> Vec<CapturedRequest> {
        self.shared.requests()
    }

    /// The JSON bodies of the requests that were answered `200`.
    pub fn accepted_json(&self) -> Vec<serde_json::Value> {
        self.shared
            .requests()
            .into_iter()
            .filter(|r| r.status == 200)
            .filter_map(|r| r.json)
            .collect()
    }

    /// While `true`, every request is answered `500`.
    pub fn set_failing(&self, failing: bool) {
        self.shared.failing.store(failing, Ordering::SeqCst);
    }

    /// The first request matching `pred`, waiting up to `timeout` for one.
    pub async fn wait_for(
        &self,
        pred: impl Fn(&CapturedRequest) -> bool,
        timeout: Duration,
    ) -> Option<CapturedRequest> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.shared.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if let Some(found) = self.shared.requests().into_iter().find(|r| pred(r)) {
                return Some(found);
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return self.shared.requests().into_iter().find(|r| pred(r));
            }
        }
    }
}

impl Drop for HttpSink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn record(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let json = serde_json::from_slice::<serde_json::Value>(&body).ok();
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let status = if method != Method::POST {
        StatusCode::METHOD_NOT_ALLOWED
    } else if shared.failing.load(Ordering::SeqCst) {
        StatusCode::INTERNAL_SERVER_ERROR
    } else if form {
        StatusCode::CREATED
    } else if json.is_none() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let request = CapturedRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        content_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: String::from_utf8_lossy(&body).into_owned(),
        json,
        authorization: headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        status: status.as_u16(),
    };
    shared
        .requests
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(request);
    shared.arrived.notify_waiters();
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A minimal HTTP/1.1 POST over a raw socket (the testkit has no HTTP client).
    async fn post(addr: SocketAddr, body: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "POST /sms HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn records_json_posts_and_fails_on_demand() {
        let sink = HttpSink::start().await.unwrap();
        assert!(sink.url().starts_with("http://127.0.0.1:"));

        let answer = post(sink.addr(), r#"{"to":"+14155550100","body":"hi"}"#).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

        sink.set_failing(true);
        let answer = post(sink.addr(), r#"{"to":"+14155550100","body":"again"}"#).await;
        assert!(answer.starts_with("HTTP/1.1 500"), "{answer}");
        sink.set_failing(false);

        let answer = post(sink.addr(), "not json").await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");

        let requests = sink.requests();
        assert_eq!(requests.len(), 3);
        assert_eq!(requests[0].path, "/sms");
        assert_eq!(requests[0].content_type.as_deref(), Some("application/json"));
        assert_eq!(
            sink.accepted_json(),
            vec![serde_json::json!({"to": "+14155550100", "body": "hi"})]
        );
        let got = sink
            .wait_for(|r| r.status == 400, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(got.body, "not json");
    }
}
