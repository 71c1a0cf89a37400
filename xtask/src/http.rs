//! The one small HTTP/1.1 client of xtask: a request to a server it started on this
//! machine (is the worker up, is a benchmark server ready, the soak's admin calls), one
//! connection per request (`Connection: close`). Each caller says how long to wait.

use crate::Result;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long a request waits.
#[derive(Clone, Copy)]
pub(crate) struct Timeouts {
    /// For the TCP connection to open; `None`: as long as the system's connect takes.
    pub(crate) connect: Option<Duration>,
    /// For each read of the answer.
    pub(crate) read: Duration,
}

/// What the server answered.
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: String,
}

/// `GET path` from `host` (`127.0.0.1:port`).
pub(crate) fn get(host: &str, path: &str, timeouts: Timeouts) -> Result<Response> {
    request(host, "GET", path, &[], "", timeouts)
}

/// One request to `host` (`address:port`, also sent as the `Host` header) with these
/// extra headers and body; the answer is read until the server closes or a read times
/// out, and whatever came is parsed.
pub(crate) fn request(
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
    timeouts: Timeouts,
) -> Result<Response> {
    let mut stream = connect(host, timeouts.connect)?;
    stream
        .set_read_timeout(Some(timeouts.read))
        .map_err(|e| e.to_string())?;
    let headers: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{headers}Content-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("{method} {path}: {e}"))?;
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("{method} {path}: no answer"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok(Response { status, body })
}

fn connect(host: &str, timeout: Option<Duration>) -> Result<TcpStream> {
    let fail = |e: &dyn std::fmt::Display| format!("connecting to {host}: {e}");
    let Some(timeout) = timeout else {
        return TcpStream::connect(host).map_err(|e| fail(&e));
    };
    let mut last_error = None;
    for address in host.to_socket_addrs().map_err(|e| fail(&e))? {
        match TcpStream::connect_timeout(&address, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => last_error = Some(e),
        }
    }
    Err(match last_error {
        Some(e) => fail(&e),
        None => fail(&"no address"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Shutdown, TcpListener};

    /// A server that answers one connection with `answer` and hands back what it was sent.
    fn answer_once(answer: &'static str) -> (String, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buffer = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut buffer).unwrap();
                request.extend_from_slice(&buffer[..n]);
            }
            stream.write_all(answer.as_bytes()).unwrap();
            // Reads the rest (a body) so that closing sends no reset.
            stream.shutdown(Shutdown::Write).unwrap();
            stream.read_to_end(&mut request).unwrap();
            String::from_utf8(request).unwrap()
        });
        (host, server)
    }

    const TIMEOUTS: Timeouts = Timeouts {
        connect: Some(Duration::from_secs(2)),
        read: Duration::from_secs(5),
    };

    #[test]
    fn a_request_sends_its_headers_and_reads_the_status_and_body() {
        let (host, server) = answer_once("HTTP/1.1 201 Created\r\nX-A: b\r\n\r\n{\"ok\":true}");
        let response = request(
            &host,
            "POST",
            "/v1/x",
            &[("Authorization", "Bearer t")],
            "{}",
            TIMEOUTS,
        )
        .unwrap();
        assert_eq!(response.status, 201);
        assert_eq!(response.body, "{\"ok\":true}");
        let sent = server.join().unwrap();
        assert!(sent.starts_with("POST /v1/x HTTP/1.1\r\n"), "{sent}");
        assert!(sent.contains(&format!("\r\nHost: {host}\r\n")), "{sent}");
        assert!(sent.contains("\r\nAuthorization: Bearer t\r\n"), "{sent}");
        assert!(sent.contains("\r\nContent-Length: 2\r\n"), "{sent}");
    }

    #[test]
    fn no_listener_and_no_answer_are_errors() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        drop(listener);
        assert!(get(&host, "/", TIMEOUTS).is_err());
        let (host, server) = answer_once("");
        assert!(get(&host, "/", TIMEOUTS)
            .err()
            .is_some_and(|e| e.contains("no answer")));
        server.join().unwrap();
    }
}
