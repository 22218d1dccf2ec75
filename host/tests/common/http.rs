//! A minimal HTTP/1.1 client for the tests of larmd's API.

use std::io::{Read, Write};
use std::net::TcpStream;

/// One request with `body`; returns (status code, body).
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    body: &[u8],
    token: Option<&str>,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let code = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// The API's address, from the line larmd logs when it listens.
pub fn address(line: &str) -> String {
    line.rsplit("http://").next().unwrap().trim().to_string()
}

/// One message of the API's event stream.
#[derive(Debug)]
pub struct Message {
    /// Its `event:` (the kind, or `reset`).
    pub kind: String,
    /// Its `id:`.
    pub id: String,
    /// Its `data:`, as JSON.
    pub data: serde_json::Value,
}

/// `GET /api/v1/events`, read message by message (the body comes chunked).
pub struct EventStream {
    stream: std::io::BufReader<TcpStream>,
    text: String,
}

impl EventStream {
    /// Opens the stream, from `last_id` if given; a refusal gives its
    /// status code and body.
    pub fn open(
        addr: &str,
        last_id: Option<&str>,
        token: Option<&str>,
    ) -> Result<Self, (u16, String)> {
        use std::io::BufRead;
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let last = last_id
            .map(|id| format!("Last-Event-ID: {id}\r\n"))
            .unwrap_or_default();
        write!(
            stream,
            "GET /api/v1/events HTTP/1.1\r\nHost: {addr}\r\n{auth}{last}Accept: text/event-stream\r\n\r\n"
        )
        .unwrap();
        let mut reader = std::io::BufReader::new(stream);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push_str(&line);
        }
        let code: u16 = head[9..12].parse().unwrap();
        if code != 200 {
            let mut body = String::new();
            let _ = reader.read_to_string(&mut body);
            return Err((code, body));
        }
        assert!(
            head.to_ascii_lowercase().contains("text/event-stream"),
            "{head}"
        );
        Ok(Self {
            stream: reader,
            text: String::new(),
        })
    }

    /// The next message (keep-alive comments skipped); panics when none
    /// comes within 30 s.
    pub fn next(&mut self) -> Message {
        use std::io::BufRead;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            assert!(std::time::Instant::now() < deadline, "no event within 30 s");
            if let Some(end) = self.text.find("\n\n") {
                let block: String = self.text.drain(..end + 2).collect();
                let (mut kind, mut id, mut data) = (String::new(), String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        kind = v.trim().into();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().into();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim());
                    }
                }
                if data.is_empty() {
                    continue;
                }
                return Message {
                    kind,
                    id,
                    data: serde_json::from_str(&data).unwrap(),
                };
            }
            // One chunk: its size in hex, the bytes, CRLF.
            let mut size = String::new();
            self.stream
                .read_line(&mut size)
                .expect("no event within 30 s");
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            assert!(size > 0, "the stream ended");
            let mut chunk = vec![0; size + 2];
            self.stream.read_exact(&mut chunk).unwrap();
            self.text
                .push_str(&String::from_utf8_lossy(&chunk[..size]).replace("\r\n", "\n"));
        }
    }

    /// The next message of `kind`, skipping others.
    pub fn next_of(&mut self, kind: &str) -> Message {
        loop {
            let message = self.next();
            if message.kind == kind {
                return message;
            }
        }
    }
}
