//! A `loglake serve` process for the tests that ask it over HTTP.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The header a verdict is sent with.
pub const JSON: (&str, &str) = ("Content-Type", "application/json");

/// A running `loglake serve` on lake `lake`, stopped (SIGTERM) when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
}

impl Server {
    /// On a free loopback port.
    pub fn start(lake: &Path, env: &[(&str, &str)]) -> Server {
        Self::start_on(lake, "127.0.0.1:0", env).expect("serve started")
    }

    /// On `listen`; the first line it printed to stderr when it did not start.
    pub fn start_on(lake: &Path, listen: &str, env: &[(&str, &str)]) -> Result<Server, String> {
        let mut stderr = tempfile::tempfile().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_loglake"))
            .args([
                "--lake",
                lake.to_str().unwrap(),
                "serve",
                "--listen",
                listen,
            ])
            .envs(super::generator_source("shop"))
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            // A file, not a pipe nobody reads: a service that logs much would block on a pipe.
            .stderr(Stdio::from(stderr.try_clone().unwrap()))
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        if first.is_empty() {
            let _ = child.wait();
            let mut err = String::new();
            stderr.seek(SeekFrom::Start(0)).unwrap();
            stderr.read_to_string(&mut err).unwrap();
            return Err(err);
        }
        let port = first
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {first:?}"));
        Ok(Server { child, port })
    }

    /// `method path` with `body` from this machine: the status and the body (JSON when it
    /// is JSON).
    pub fn ask(&self, method: &str, path: &str, body: &[u8]) -> (u16, Value, String) {
        self.ask_with(method, path, &[], body)
    }

    /// [`Server::ask`] with extra headers (a `Host` among them replaces the loopback one).
    pub fn ask_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Value, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let mut head = format!("{method} {path} HTTP/1.1\r\n");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            head.push_str(&format!("Host: 127.0.0.1:{}\r\n", self.port));
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ));
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        let answer = String::from_utf8(answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let json = serde_json::from_str(body).unwrap_or(Value::Null);
        (status, json, body.to_string())
    }

    /// SIGTERM, then the exit status once it has stopped.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
