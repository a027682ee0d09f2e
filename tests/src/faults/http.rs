//! Just enough HTTP/1.x over Tokio for the fault proxy and its clients: read a request
//! (framed by `content-length`), read an answer (framed by `content-length`, chunked, or
//! by the end of the connection), write either back, and a one-shot client.
//!
//! The proxy parses HTTP itself rather than through hyper because it must decide what
//! happens to the bytes of a connection: reset it after the request arrived, or after the
//! upstream applied it.

use std::fmt::Write as _;
use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest head accepted (request line or status line plus headers).
const MAX_HEAD: usize = 64 * 1024;
/// The largest body accepted (DynamoDB's requests are at most a few MB).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// A message's start line and headers.
#[derive(Debug, Clone, Default)]
pub struct Head {
    /// `POST / HTTP/1.1`, or `HTTP/1.1 200 OK`.
    pub start_line: String,
    /// The headers, in order, names as sent.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
    }

    /// A request's method and target (`POST`, `/`).
    pub fn method_and_path(&self) -> (&str, &str) {
        let mut parts = self.start_line.split(' ');
        (parts.next().unwrap_or_default(), parts.next().unwrap_or_default())
    }

    /// An answer's status code and reason phrase.
    pub fn status(&self) -> (u16, &str) {
        let mut parts = self.start_line.splitn(3, ' ');
        let _version = parts.next();
        let code = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
        (code, parts.next().unwrap_or_default())
    }

    /// Whether the peer asked to close the connection after this message.
    pub fn wants_close(&self) -> bool {
        let close = self.header("connection").is_some_and(|c| c.eq_ignore_ascii_case("close"));
        close || self.start_line.ends_with("HTTP/1.0") && self.header("connection").is_none()
    }
}

/// A message: head and (de-chunked) body.
#[derive(Debug, Clone, Default)]
pub struct Message {
    /// Start line and headers.
    pub head: Head,
    /// The body.
    pub body: Vec<u8>,
}

/// A stream with the bytes read past the last message.
#[derive(Debug)]
pub struct Conn<S> {
    /// The stream.
    pub stream: S,
    buf: Vec<u8>,
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// A connection over `stream`.
    pub fn new(stream: S) -> Self {
        Conn { stream, buf: Vec::new() }
    }

    /// Reads more bytes into the buffer; false at the end of the stream.
    async fn fill(&mut self) -> io::Result<bool> {
        self.buf.reserve(16 * 1024);
        Ok(self.stream.read_buf(&mut self.buf).await? > 0)
    }

    /// Reads a head; `None` when the stream ends before its first byte.
    async fn read_head(&mut self) -> io::Result<Option<Head>> {
        let end = loop {
            if let Some(p) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(invalid("the head is too long"));
            }
            if !self.fill().await? {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the stream ended within a head"));
            }
        };
        let text = String::from_utf8(self.buf[..end].to_vec()).map_err(|_| invalid("the head is not UTF-8"))?;
        self.buf.drain(..end + 4);
        let mut lines = text.split("\r\n");
        let start_line = lines.next().unwrap_or_default().to_owned();
        let headers =
            lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned())).collect();
        Ok(Some(Head { start_line, headers }))
    }

    /// Reads exactly `n` body bytes.
    async fn read_exact_body(&mut self, n: usize) -> io::Result<Vec<u8>> {
        if n > MAX_BODY {
            return Err(invalid(format!("a body of {n} bytes is too large")));
        }
        while self.buf.len() < n {
            if !self.fill().await? {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the stream ended within a body"));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Reads one line (without its CRLF).
    async fn read_line(&mut self) -> io::Result<String> {
        loop {
            if let Some(p) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..p]).into_owned();
                self.buf.drain(..p + 2);
                return Ok(line);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(invalid("a chunk line is too long"));
            }
            if !self.fill().await? {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the stream ended within a chunk line"));
            }
        }
    }

    /// Reads a chunked body, de-chunked (trailers are dropped).
    async fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line().await?;
            let size = usize::from_str_radix(line.split(';').next().unwrap_or_default().trim(), 16)
                .map_err(|_| invalid(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                // Trailers, up to an empty line.
                while !self.read_line().await?.is_empty() {}
                return Ok(body);
            }
            if body.len() + size > MAX_BODY {
                return Err(invalid("a chunked body is too large"));
            }
            body.extend(self.read_exact_body(size).await?);
            self.read_line().await?;
        }
    }

    /// Reads everything up to the end of the stream.
    async fn read_to_end(&mut self) -> io::Result<Vec<u8>> {
        while self.fill().await? {
            if self.buf.len() > MAX_BODY {
                return Err(invalid("a body is too large"));
            }
        }
        Ok(std::mem::take(&mut self.buf))
    }

    /// Reads a request; `None` when the client closed the connection between requests.
    /// Answers `expect: 100-continue` itself.
    pub async fn read_request(&mut self) -> io::Result<Option<Message>> {
        let Some(head) = self.read_head().await? else { return Ok(None) };
        if head.header("expect").is_some_and(|e| e.eq_ignore_ascii_case("100-continue")) {
            self.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        }
        let body = if head.header("transfer-encoding").is_some_and(|t| t.to_ascii_lowercase().contains("chunked")) {
            self.read_chunked().await?
        } else {
            let length = match head.header("content-length") {
                Some(l) => l.parse().map_err(|_| invalid(format!("bad content-length {l:?}")))?,
                None => 0,
            };
            self.read_exact_body(length).await?
        };
        Ok(Some(Message { head, body }))
    }

    /// Reads an answer to a request with `method`, skipping interim (1xx) answers.
    pub async fn read_response(&mut self, method: &str) -> io::Result<Message> {
        loop {
            let head = self.read_head().await?.ok_or_else(|| {
                io::Error::new(io::ErrorKind::UnexpectedEof, "the connection closed without an answer")
            })?;
            let (status, _) = head.status();
            if (100..200).contains(&status) {
                continue;
            }
            let body = if method.eq_ignore_ascii_case("HEAD") || status == 204 || status == 304 {
                Vec::new()
            } else if head.header("transfer-encoding").is_some_and(|t| t.to_ascii_lowercase().contains("chunked")) {
                self.read_chunked().await?
            } else if let Some(l) = head.header("content-length") {
                let n = l.parse().map_err(|_| invalid(format!("bad content-length {l:?}")))?;
                self.read_exact_body(n).await?
            } else {
                self.read_to_end().await?
            };
            return Ok(Message { head, body });
        }
    }
}

/// Headers that describe one hop's connection or framing, which the proxy sets itself.
fn hop_by_hop(name: &str) -> bool {
    ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "content-length", "expect", "te", "upgrade"]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

/// A request's bytes as forwarded: the same method, target and end-to-end headers, framed
/// by `content-length`, asking the server to close the connection after answering.
pub fn encode_request(head: &Head, body: &[u8]) -> Vec<u8> {
    let mut out = format!("{}\r\n", head.start_line);
    for (name, value) in head.headers.iter().filter(|(n, _)| !hop_by_hop(n)) {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    let _ = write!(out, "content-length: {}\r\nconnection: close\r\n\r\n", body.len());
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// An answer's bytes: HTTP/1.1, the given status and end-to-end headers, framed by
/// `content-length`; `close` announces that the connection closes after it.
pub fn encode_response(status: u16, reason: &str, headers: &[(String, String)], body: &[u8], close: bool) -> Vec<u8> {
    let reason = if reason.is_empty() { "Status" } else { reason };
    let mut out = format!("HTTP/1.1 {status} {reason}\r\n");
    for (name, value) in headers.iter().filter(|(n, _)| !hop_by_hop(n)) {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    let connection = if close { "close" } else { "keep-alive" };
    let _ = write!(out, "content-length: {}\r\nconnection: {connection}\r\n\r\n", body.len());
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// `http://host:port[/...]` as `host:port`.
pub fn authority(url: &str) -> &str {
    let rest = url.trim_start_matches("http://");
    rest.split('/').next().unwrap_or(rest)
}

/// One request to `url` (`http://host:port`) on a new connection: the answer's status and
/// body, within `timeout`.
pub async fn request(
    url: &str,
    method: &str,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> io::Result<(u16, Vec<u8>)> {
    let host = authority(url).to_owned();
    let exchange = async {
        let stream = TcpStream::connect(&host).await?;
        let mut conn = Conn::new(stream);
        let head = Head {
            start_line: format!("{method} {path} HTTP/1.1"),
            headers: vec![("host".into(), host.clone()), ("content-type".into(), "application/json".into())],
        };
        conn.stream.write_all(&encode_request(&head, body)).await?;
        let answer = conn.read_response(method).await?;
        Ok((answer.head.status().0, answer.body))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, format!("{method} {url}{path}: no answer"))))
}
