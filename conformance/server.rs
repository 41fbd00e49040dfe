//! A running `xps` for tests: started on free loopback ports from a config
//! template, waited for by polling with a deadline, killed on drop; and a
//! small HTTP/1.1 client that reads exactly one response.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A listener on a free loopback port, and its address: the one place
/// tests get a port.
pub fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let addr = l.local_addr().expect("its address");
    (l, addr)
}

/// A free loopback port (bound and released; the server binds it next, or
/// nothing does: a port nothing listens on).
pub fn free_port() -> u16 {
    listener().1.port()
}

/// Where the head ends in a response (or request) that starts `bytes`.
pub fn head_len(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

/// Whether process `pid` holds a socket listening on TCP `port` (from
/// `/proc/net/tcp*` and the process's descriptors).
fn listens_on(pid: u32, port: u16) -> bool {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            let local_port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            // State 0A is LISTEN.
            if local_port == Some(port) && *state == "0A" {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
    })
}

/// A running server.
pub struct Server {
    child: Child,
    /// The first port (`{port}` in the template).
    pub port: u16,
    /// The second port (`{port2}`), for configs with two listeners.
    pub port2: u16,
    /// The folder holding the config and whatever the test put there.
    pub dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    stderr_path: PathBuf,
}

impl Server {
    /// Starts xps in a fresh temp folder prepared by `setup`, with the
    /// config `template` (`{port}`, `{port2}`, `{dir}` replaced).
    pub fn start(template: &str, setup: impl Fn(&Path)) -> Server {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().to_path_buf();
        setup(&dir);
        let mut s = Server::start_in(&dir, "xps.conf", template);
        s._temp = Some(temp);
        s
    }

    /// Like [`Server::start`], with the process's descriptor limit (soft
    /// and hard) set to `limit` (through `sh -c 'ulimit -n …'`).
    pub fn start_with_fd_limit(template: &str, setup: impl Fn(&Path), limit: u32) -> Server {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().to_path_buf();
        setup(&dir);
        let mut s = Server::launch(&dir, "xps.conf", template, Some(limit));
        s._temp = Some(temp);
        s
    }

    /// Starts xps in `dir` with the config written to `name`. Retries with
    /// other ports if a port was taken meanwhile.
    pub fn start_in(dir: &Path, name: &str, template: &str) -> Server {
        Server::launch(dir, name, template, None)
    }

    fn launch(dir: &Path, name: &str, template: &str, fd_limit: Option<u32>) -> Server {
        for _ in 0..5 {
            let (port, port2) = (free_port(), free_port());
            let text = template
                .replace("{port}", &port.to_string())
                .replace("{port2}", &port2.to_string())
                .replace("{dir}", &dir.display().to_string());
            std::fs::write(dir.join(name), text).expect("write config");
            let stderr_path = dir.join(format!(".xps-stderr-{port}"));
            let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
            let mut command = match fd_limit {
                None => Command::new(env!("CARGO_BIN_EXE_xps")),
                Some(n) => {
                    let mut c = Command::new("sh");
                    c.arg("-c")
                        .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                        .arg(env!("CARGO_BIN_EXE_xps"));
                    c
                }
            };
            let child = command
                .arg(name)
                .current_dir(dir)
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .expect("xps starts");
            let mut server = Server {
                child,
                port,
                port2,
                dir: dir.to_path_buf(),
                _temp: None,
                stderr_path,
            };
            if server.wait_ready() {
                return server;
            }
            let err = server.stderr();
            if !err.contains("already in use") {
                panic!("xps did not start:\n{err}");
            }
        }
        panic!("could not find free ports");
    }

    /// Polls until the first port accepts, the process exits, or 10 s pass.
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            // The port is this server's, not another test's that was
            // given the same free port a moment before (whose answers
            // would then be taken for this one's).
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && listens_on(self.child.id(), self.port)
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// A config template with this server's ports and folder filled in.
    pub fn render(&self, template: &str) -> String {
        template
            .replace("{port}", &self.port.to_string())
            .replace("{port2}", &self.port2.to_string())
            .replace("{dir}", &self.dir.display().to_string())
    }

    /// Polls `check` until it holds, failing the test after `within`.
    pub fn wait_for(&self, within: Duration, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + within;
        while !check() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; server stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// A new connection with a 10 s read timeout.
    pub fn connect(&self) -> TcpStream {
        connect(self.addr())
    }

    /// Sends raw bytes on a new connection and reads one response.
    pub fn raw(&self, request: &[u8]) -> Response {
        let mut s = self.connect();
        s.write_all(request).expect("send");
        match try_read_response(&mut s, request.starts_with(b"HEAD ")) {
            Ok(Some(r)) => r,
            Ok(None) => panic!(
                "the connection closed before a response; server stderr:\n{}",
                self.stderr()
            ),
            Err(e) => panic!("{e}; server stderr:\n{}", self.stderr()),
        }
    }

    /// `GET path` with `Host: localhost` and extra header lines.
    pub fn get(&self, path: &str, headers: &[&str]) -> Response {
        self.raw(request("GET", path, headers).as_bytes())
    }

    /// Sends a signal to the server.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the process to exit (at most `within`); its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("xps did not exit within {within:?}");
    }

    /// Resident memory of the server, in KiB (from /proc).
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A connection with a 10 s read and write timeout.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.set_write_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

/// A connection to `addr` from the loopback address `from` (any of
/// 127.0.0.0/8), with a 10 s read and write timeout.
pub fn connect_from(from: std::net::Ipv4Addr, addr: SocketAddr) -> TcpStream {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, socket};
    use std::os::fd::AsRawFd;
    let SocketAddr::V4(to) = addr else {
        panic!("an IPv4 address: {addr}");
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .expect("socket");
    let [a, b, c, d] = from.octets();
    bind(fd.as_raw_fd(), &SockaddrIn::new(a, b, c, d, 0)).expect("bind the source address");
    connect(fd.as_raw_fd(), &SockaddrIn::from(to)).expect("connect");
    let s = TcpStream::from(fd);
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.set_write_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

/// `METHOD path HTTP/1.1` with `Host: localhost` and extra header lines.
pub fn request(method: &str, path: &str, headers: &[&str]) -> String {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r
}

/// One response.
#[derive(Debug)]
pub struct Response {
    /// `HTTP/1.1 200 OK`.
    pub status_line: String,
    /// The status code.
    pub status: u16,
    /// Header fields in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response from `s` (its body per Content-Length, or to the
/// end of the connection). `None` when the connection closed before a
/// status line.
pub fn read_response(s: &mut impl Read, head_request: bool) -> Option<Response> {
    try_read_response(s, head_request).unwrap_or_else(|e| panic!("{e}"))
}

/// Like [`read_response`], with a read error as `Err`.
pub fn try_read_response(
    s: &mut impl Read,
    head_request: bool,
) -> Result<Option<Response>, String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte up to the blank line, so nothing of a pipelined next
    // response is consumed.
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(0) => return Ok(None),
            Ok(_) => buf.push(byte[0]),
            Err(e) => {
                return Err(format!(
                    "reading a response head: {e} (got {:?})",
                    String::from_utf8_lossy(&buf)
                ));
            }
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("").to_string();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            l.split_once(':')
                .map(|(n, v)| (n.to_string(), v.trim().to_string()))
        })
        .collect();
    let mut r = Response {
        status_line,
        status,
        headers,
        body: Vec::new(),
    };
    if head_request || status == 304 || status == 204 || (100..200).contains(&status) {
        return Ok(Some(r));
    }
    match r
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        Some(n) => {
            r.body = vec![0; n];
            s.read_exact(&mut r.body).expect("the whole body");
        }
        None => {
            s.read_to_end(&mut r.body).expect("body to the end");
        }
    }
    Ok(Some(r))
}

/// Whether the server closed the connection (EOF within the timeout).
pub fn is_closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        // The read timeout passed: still open.
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
        // Reset by the peer: closed.
        Err(_) => true,
    }
}
