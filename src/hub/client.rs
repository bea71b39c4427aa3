//! The tablet's side of protocol h1: JSON calls over mutual TLS with the unit certificate
//! (the same rustls configuration as the eligibility client), and the case's event stream
//! with resumption from the last event id. One connection per call keeps it simple; the
//! stream holds its own. The SSE framing is read by hand: a handful of line rules
//! (`id:`, `event:`, `data:`, comments, a blank line ends an event) that no crate in our
//! tree provides without pulling in a whole HTTP client.

use super::tablet::{
    AskRequest, CaseView, DecideRequest, HospitalList, PATH_CASES, PATH_HOSPITALS,
};
use crate::eligibility::wire::Problem;
use crate::handoff::Change;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use std::sync::Arc;
use thiserror::Error;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

#[derive(Debug, Error)]
pub enum HubClientError {
    #[error("cannot reach the hub: {0}")]
    Connect(String),
    #[error("TLS with the hub failed: {0}")]
    Tls(String),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("the hub refused: {}", .0.log_text())]
    Refused(Problem),
    #[error("the hub's answer is malformed: {0}")]
    Malformed(String),
    #[error("the packet is {0} bytes; the hub takes at most {max}", max = crate::handoff::MAX_PACKET_BYTES)]
    TooLarge(usize),
}

/// The most a JSON answer may be.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

#[derive(Clone)]
pub struct HubClient {
    tls: TlsConnector,
    host: String,
    port: u16,
}

/// One server-sent event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<i64>,
    pub event: String,
    pub data: String,
}

impl HubClient {
    pub fn new(config: rustls::ClientConfig, host: &str, port: u16) -> HubClient {
        HubClient {
            tls: TlsConnector::from(Arc::new(config)),
            host: host.to_string(),
            port,
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        last_event_id: Option<i64>,
    ) -> Result<http::Response<hyper::body::Incoming>, HubClientError> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| HubClientError::Connect(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let name = rustls::pki_types::ServerName::try_from(self.host.clone())
            .map_err(|e| HubClientError::Tls(e.to_string()))?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| HubClientError::Tls(e.to_string()))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| HubClientError::Http(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, format!("{}:{}", self.host, self.port))
            .header(http::header::ACCEPT, "application/json, text/event-stream");
        if body.is_some() {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| HubClientError::Http(e.to_string()))?;
        sender
            .send_request(req)
            .await
            .map_err(|e| HubClientError::Http(e.to_string()))
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Option<T>), HubClientError> {
        let res = self.send(method, path, body, None).await?;
        let status = res.status();
        let bytes = http_body_util::Limited::new(res.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| HubClientError::Http(e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            let problem = serde_json::from_slice::<Problem>(&bytes)
                .unwrap_or_else(|_| Problem::new("about:blank", "Refused", status, None));
            return Err(HubClientError::Refused(problem));
        }
        if status == StatusCode::NO_CONTENT {
            return Ok((status, None));
        }
        serde_json::from_slice(&bytes)
            .map(|v| (status, Some(v)))
            .map_err(|e| HubClientError::Malformed(e.to_string()))
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, HubClientError> {
        self.call(method, path, body)
            .await?
            .1
            .ok_or_else(|| HubClientError::Malformed("an empty answer".into()))
    }

    fn to_json(v: &impl serde::Serialize) -> Result<Vec<u8>, HubClientError> {
        serde_json::to_vec(v).map_err(|e| HubClientError::Malformed(e.to_string()))
    }

    pub async fn hospitals(&self) -> Result<HospitalList, HubClientError> {
        self.json(Method::GET, PATH_HOSPITALS, None).await
    }

    /// 受入照会.
    pub async fn ask(&self, req: &AskRequest) -> Result<CaseView, HubClientError> {
        self.json(Method::POST, PATH_CASES, Some(Self::to_json(req)?))
            .await
    }

    /// A request with a raw body (the attacker tests' oversized and malformed ones).
    pub async fn ask_raw(&self, body: Vec<u8>) -> Result<CaseView, HubClientError> {
        self.json(Method::POST, PATH_CASES, Some(body)).await
    }

    pub async fn case(&self, id: &str) -> Result<CaseView, HubClientError> {
        self.json(Method::GET, &format!("{PATH_CASES}/{id}"), None)
            .await
    }

    /// 搬送決定, with the packet for that hospital only.
    pub async fn decide(&self, id: &str, req: &DecideRequest) -> Result<CaseView, HubClientError> {
        let packet = Self::to_json(&req.packet)?.len();
        if packet > crate::handoff::MAX_PACKET_BYTES {
            return Err(HubClientError::TooLarge(packet));
        }
        self.json(
            Method::POST,
            &format!("{PATH_CASES}/{id}/decision"),
            Some(Self::to_json(req)?),
        )
        .await
    }

    pub async fn decide_raw(&self, id: &str, body: Vec<u8>) -> Result<CaseView, HubClientError> {
        self.json(
            Method::POST,
            &format!("{PATH_CASES}/{id}/decision"),
            Some(body),
        )
        .await
    }

    pub async fn update(&self, id: &str, change: &Change) -> Result<CaseView, HubClientError> {
        self.json(
            Method::POST,
            &format!("{PATH_CASES}/{id}/updates"),
            Some(Self::to_json(change)?),
        )
        .await
    }

    pub async fn close(&self, id: &str) -> Result<(), HubClientError> {
        self.call::<serde_json::Value>(Method::POST, &format!("{PATH_CASES}/{id}/close"), None)
            .await
            .map(|_| ())
    }

    /// The case's event stream, after `last_event_id` if given.
    pub async fn events(
        &self,
        id: &str,
        last_event_id: Option<i64>,
    ) -> Result<EventStream, HubClientError> {
        let res = self
            .send(
                Method::GET,
                &format!("{PATH_CASES}/{id}/events"),
                None,
                last_event_id,
            )
            .await?;
        if !res.status().is_success() {
            return Err(HubClientError::Refused(Problem::new(
                "about:blank",
                "Refused",
                res.status(),
                None,
            )));
        }
        Ok(EventStream {
            body: res.into_body(),
            buf: Vec::new(),
        })
    }
}

/// A case's events as they come.
pub struct EventStream {
    body: hyper::body::Incoming,
    buf: Vec<u8>,
}

/// The longest event the stream takes before it gives up on the hub.
const MAX_EVENT_BYTES: usize = 256 * 1024;

impl EventStream {
    /// The next event (keep-alive comments skipped); None when the hub ended the stream.
    pub async fn next(&mut self) -> Result<Option<SseEvent>, HubClientError> {
        loop {
            if let Some(end) = find_blank_line(&self.buf) {
                let block: Vec<u8> = self.buf.drain(..end.1).collect();
                if let Some(e) = parse_event(&block[..end.0]) {
                    return Ok(Some(e));
                }
                continue;
            }
            if self.buf.len() > MAX_EVENT_BYTES {
                return Err(HubClientError::Malformed("an event over 256 KiB".into()));
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(HubClientError::Http(e.to_string())),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    /// The next event that carries a case view.
    pub async fn next_view(&mut self) -> Result<Option<(SseEvent, CaseView)>, HubClientError> {
        match self.next().await? {
            None => Ok(None),
            Some(e) => {
                let view = serde_json::from_str(&e.data)
                    .map_err(|err| HubClientError::Malformed(err.to_string()))?;
                Ok(Some((e, view)))
            }
        }
    }
}

/// (end of the event's text, end of its terminating blank line)
fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    let text = buf;
    for i in 0..text.len() {
        if text[i..].starts_with(b"\n\n") {
            return Some((i, i + 2));
        }
        if text[i..].starts_with(b"\r\n\r\n") {
            return Some((i, i + 4));
        }
    }
    None
}

fn parse_event(block: &[u8]) -> Option<SseEvent> {
    let text = String::from_utf8_lossy(block);
    let mut e = SseEvent {
        id: None,
        event: "message".into(),
        data: String::new(),
    };
    let mut any = false;
    for line in text.lines() {
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "" => {} // a comment (keep-alive)
            "id" => {
                e.id = value.parse().ok();
                any = true;
            }
            "event" => {
                e.event = value.to_string();
                any = true;
            }
            "data" => {
                if !e.data.is_empty() {
                    e.data.push('\n');
                }
                e.data.push_str(value);
                any = true;
            }
            _ => {}
        }
    }
    any.then_some(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_blocks_parse_and_comments_are_skipped() {
        assert_eq!(parse_event(b":keep-alive"), None);
        let e = parse_event(b"event: answer\nid: 42\ndata: {\"a\":1}\ndata: x").unwrap();
        assert_eq!(
            e,
            SseEvent {
                id: Some(42),
                event: "answer".into(),
                data: "{\"a\":1}\nx".into()
            }
        );
        assert_eq!(find_blank_line(b"data: a\n\nrest"), Some((7, 9)));
        assert_eq!(find_blank_line(b"data: a\r\n\r\n"), Some((7, 11)));
        assert_eq!(find_blank_line(b"data: a\n"), None);
    }
}
