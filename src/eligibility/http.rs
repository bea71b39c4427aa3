//! Just enough HTTP/1.1 for the protocol: request/status line, headers, a body framed by
//! Content-Length (chunked is refused), keep-alive. Every length is capped so a peer can
//! neither make us allocate without bound nor wait forever for a line.

use thiserror::Error;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The most header bytes we read from a peer.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

#[derive(Debug, Error)]
pub enum HttpError {
    #[error("connection closed")]
    Closed,
    #[error("connection closed in the middle of a message")]
    Truncated,
    #[error("malformed HTTP: {0}")]
    Malformed(String),
    #[error("body of {0} bytes exceeds the limit of {1}")]
    TooLarge(u64, usize),
    #[error("transfer-encoding not supported")]
    UnsupportedEncoding,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A parsed message head: the first line's parts and the headers (names lower-cased).
#[derive(Clone, Debug, Default)]
pub struct Head {
    pub first: Vec<String>,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the peer asked to close the connection after this message.
    pub fn wants_close(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }

    fn content_length(&self) -> Result<u64, HttpError> {
        if self.header("transfer-encoding").is_some() {
            return Err(HttpError::UnsupportedEncoding);
        }
        match self.header("content-length") {
            None => Ok(0),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| HttpError::Malformed(format!("content-length {v:?}"))),
        }
    }
}

/// Read one line (without CRLF), counting it against `budget`.
async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    budget: &mut usize,
) -> Result<Option<String>, HttpError> {
    let mut buf = Vec::new();
    let n = (&mut *r)
        .take(*budget as u64 + 1)
        .read_until(b'\n', &mut buf)
        .await?;
    if n == 0 {
        return Ok(None);
    }
    if n > *budget {
        return Err(HttpError::Malformed("header section too large".into()));
    }
    *budget -= n;
    if buf.last() != Some(&b'\n') {
        return Err(HttpError::Truncated);
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| HttpError::Malformed("non-UTF-8 header".into()))
}

/// Read a message head. `Ok(None)` when the peer closed cleanly before sending anything.
pub async fn read_head<R: AsyncBufRead + Unpin>(r: &mut R) -> Result<Option<Head>, HttpError> {
    let mut budget = MAX_HEAD_BYTES;
    let first = loop {
        match read_line(r, &mut budget).await? {
            None => return Ok(None),
            // tolerate empty lines before a message (RFC 9112 §2.2)
            Some(line) if line.is_empty() => continue,
            Some(line) => break line,
        }
    };
    let first: Vec<String> = first.splitn(3, ' ').map(str::to_string).collect();
    if first.len() < 2 {
        return Err(HttpError::Malformed("first line".into()));
    }
    let mut headers = Vec::new();
    loop {
        let line = read_line(r, &mut budget)
            .await?
            .ok_or(HttpError::Truncated)?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| HttpError::Malformed("header line".into()))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        if headers.len() > 100 {
            return Err(HttpError::Malformed("too many headers".into()));
        }
    }
    Ok(Some(Head { first, headers }))
}

/// Read the body announced by `head`, refusing anything over `max` bytes before reading it.
pub async fn read_body<R: AsyncBufRead + Unpin>(
    r: &mut R,
    head: &Head,
    max: usize,
) -> Result<Vec<u8>, HttpError> {
    let len = head.content_length()?;
    if len > max as u64 {
        return Err(HttpError::TooLarge(len, max));
    }
    let mut body = vec![0; len as usize];
    r.read_exact(&mut body).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            HttpError::Truncated
        } else {
            HttpError::Io(e)
        }
    })?;
    Ok(body)
}

/// Write a request with a JSON body (or none).
pub async fn write_request<W: AsyncWrite + Unpin>(
    w: &mut W,
    method: &str,
    path: &str,
    host: &str,
    body: Option<&[u8]>,
) -> Result<(), HttpError> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {host}\r\nuser-agent: mynakyukyu/{}\r\naccept: application/json\r\n",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(body) = body {
        head.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    let mut message = head.into_bytes();
    if let Some(body) = body {
        message.extend_from_slice(body);
    }
    w.write_all(&message).await?;
    w.flush().await?;
    Ok(())
}

/// Write a response; one buffer, one write, so a small answer is one TLS record.
pub async fn write_response<W: AsyncWrite + Unpin>(
    w: &mut W,
    status: u16,
    content_type: &str,
    body: &[u8],
    close: bool,
) -> Result<(), HttpError> {
    let mut message = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: {}\r\n\r\n",
        reason(status),
        body.len(),
        if close { "close" } else { "keep-alive" }
    )
    .into_bytes();
    message.extend_from_slice(body);
    w.write_all(&message).await?;
    w.flush().await?;
    Ok(())
}

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        422 => "Unprocessable Content",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::BufReader;

    async fn head_of(bytes: &[u8]) -> Result<Option<Head>, HttpError> {
        read_head(&mut BufReader::new(bytes)).await
    }

    #[tokio::test]
    async fn parses_a_response_head_and_body() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
        let mut r = BufReader::new(&raw[..]);
        let head = read_head(&mut r).await.unwrap().unwrap();
        assert_eq!(head.first[1], "200");
        assert!(head.wants_close());
        assert_eq!(read_body(&mut r, &head, 10).await.unwrap(), b"{}");
    }

    #[tokio::test]
    async fn refuses_oversized_truncated_chunked_and_garbage() {
        let big = b"HTTP/1.1 200 OK\r\ncontent-length: 999999999\r\n\r\n";
        let mut r = BufReader::new(&big[..]);
        let head = read_head(&mut r).await.unwrap().unwrap();
        assert!(matches!(
            read_body(&mut r, &head, 1024).await,
            Err(HttpError::TooLarge(999_999_999, 1024))
        ));
        let short = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc";
        let mut r = BufReader::new(&short[..]);
        let head = read_head(&mut r).await.unwrap().unwrap();
        assert!(matches!(
            read_body(&mut r, &head, 1024).await,
            Err(HttpError::Truncated)
        ));
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        let mut r = BufReader::new(&chunked[..]);
        let head = read_head(&mut r).await.unwrap().unwrap();
        assert!(matches!(
            read_body(&mut r, &head, 1024).await,
            Err(HttpError::UnsupportedEncoding)
        ));
        assert!(matches!(
            head_of(b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n").await,
            Err(HttpError::Malformed(_))
        ));
        assert!(matches!(
            head_of(b"HTTP/1.1 200 OK\r\nx: y").await,
            Err(HttpError::Truncated)
        ));
        assert!(head_of(b"").await.unwrap().is_none());
        let endless = vec![b'a'; MAX_HEAD_BYTES * 2];
        assert!(matches!(
            head_of(&endless).await,
            Err(HttpError::Malformed(_))
        ));
        assert!(matches!(
            head_of(b"\xff\xfe\r\n\r\n").await,
            Err(HttpError::Malformed(_))
        ));
    }
}
