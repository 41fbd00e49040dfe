//! Real upstream servers for proxy tests: a listener on a free loopback
//! port, a thread per connection, requests read with their bodies, and a
//! handler that decides what goes back.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request as the upstream received it.
#[derive(Clone, Debug)]
pub struct Received {
    /// The head, as sent by xps.
    pub head: String,
    /// The body, decoded.
    pub body: Vec<u8>,
}

impl Received {
    /// A header's value (first, case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.split("\r\n").skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// What the handler wants done.
pub enum Answer {
    /// Write these bytes and keep the connection for the next request.
    Bytes(Vec<u8>),
    /// Write these bytes and close.
    Close(Vec<u8>),
    /// Close without a byte.
    Reset,
    /// Write these bytes, then echo everything the client sends (WebSocket).
    Tunnel(Vec<u8>),
    /// Do nothing and keep the connection open (a hanging upstream).
    Hang,
}

/// A running upstream.
pub struct Upstream {
    /// Its port.
    pub port: u16,
    /// Requests it received.
    pub received: Arc<Mutex<Vec<Received>>>,
    /// Connections it accepted.
    pub connections: Arc<AtomicUsize>,
}

impl Upstream {
    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Number of requests received.
    pub fn count(&self) -> usize {
        self.received.lock().map(|r| r.len()).unwrap_or(0)
    }
}

/// Starts an upstream answering with `handler`.
pub fn start(handler: impl Fn(&Received) -> Answer + Send + Sync + 'static) -> Upstream {
    let (listener, bound) = crate::server::listener();
    let port = bound.port();
    let received = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicUsize::new(0));
    let handler = Arc::new(handler);
    let (r, c) = (received.clone(), connections.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            c.fetch_add(1, Ordering::SeqCst);
            let (r, h) = (r.clone(), handler.clone());
            std::thread::spawn(move || serve(stream, r, h));
        }
    });
    Upstream {
        port,
        received,
        connections,
    }
}

/// A plain 200 with `body` and a Content-Length.
pub fn ok(body: &str) -> Answer {
    Answer::Bytes(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nServer: upstream/1\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

fn serve(
    mut s: TcpStream,
    received: Arc<Mutex<Vec<Received>>>,
    handler: Arc<dyn Fn(&Received) -> Answer + Send + Sync>,
) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let Some(req) = read_request(&mut s, &mut buf) else {
            return;
        };
        if let Ok(mut r) = received.lock() {
            r.push(req.clone());
        }
        match handler(&req) {
            Answer::Bytes(b) => {
                if s.write_all(&b).is_err() {
                    return;
                }
            }
            Answer::Close(b) => {
                let _ = s.write_all(&b);
                return;
            }
            Answer::Reset => return,
            Answer::Hang => {
                let mut sink = [0u8; 1024];
                while let Ok(n) = s.read(&mut sink) {
                    if n == 0 {
                        return;
                    }
                }
                return;
            }
            Answer::Tunnel(b) => {
                if s.write_all(&b).is_err() {
                    return;
                }
                if !buf.is_empty() {
                    let _ = s.write_all(&buf);
                }
                let mut chunk = [0u8; 4096];
                while let Ok(n) = s.read(&mut chunk) {
                    if n == 0 || s.write_all(&chunk[..n]).is_err() {
                        return;
                    }
                }
                return;
            }
        }
    }
}

/// Reads one request (head and body) from the connection.
fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Received> {
    let head_end = loop {
        if let Some(n) = crate::server::head_len(buf) {
            break n;
        }
        let mut chunk = [0u8; 8192];
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end);
    let mut req = Received {
        head,
        body: Vec::new(),
    };
    if let Some(n) = req
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        while buf.len() < n {
            let mut chunk = vec![0u8; 1 << 16];
            let k = s.read(&mut chunk).ok()?;
            if k == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..k]);
        }
        req.body = buf.drain(..n).collect();
    } else if req
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let line_end = loop {
                if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                let mut chunk = [0u8; 8192];
                let k = s.read(&mut chunk).ok()?;
                if k == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..k]);
            };
            let size =
                usize::from_str_radix(String::from_utf8_lossy(&buf[..line_end]).trim(), 16).ok()?;
            buf.drain(..line_end + 2);
            while buf.len() < size + 2 {
                let mut chunk = vec![0u8; 1 << 16];
                let k = s.read(&mut chunk).ok()?;
                if k == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..k]);
            }
            req.body.extend_from_slice(&buf[..size]);
            buf.drain(..size + 2);
            if size == 0 {
                break;
            }
        }
    }
    Some(req)
}

/// Reads a request head byte by byte (nothing of the body); `false` if the
/// connection ended first. For hand-made upstreams that must not read on.
pub fn read_head(s: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return false,
        }
    }
    true
}

/// A listener whose accept queue is full: new handshakes get no answer, so
/// connecting to it times out. Kept while the value lives.
pub struct Unanswering {
    /// Its port.
    pub port: u16,
    _fd: std::os::fd::OwnedFd,
    _fillers: Vec<TcpStream>,
}

impl Unanswering {
    /// Binds it on a free loopback port and fills its queue.
    pub fn start() -> Unanswering {
        use nix::sys::socket::{
            AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, bind, listen, socket,
        };
        use std::os::fd::AsRawFd;
        let fd = socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::empty(),
            None,
        )
        .expect("socket");
        bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, 0)).expect("bind");
        listen(&fd, Backlog::new(0).expect("backlog")).expect("listen");
        let port = nix::sys::socket::getsockname::<SockaddrIn>(fd.as_raw_fd())
            .expect("name")
            .port();
        let mut fillers = Vec::new();
        for _ in 0..4 {
            if let Ok(s) = TcpStream::connect_timeout(
                &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                Duration::from_millis(200),
            ) {
                fillers.push(s);
            }
        }
        Unanswering {
            port,
            _fd: fd,
            _fillers: fillers,
        }
    }
}

/// A port with nothing listening.
pub fn closed_port() -> u16 {
    let (l, bound) = crate::server::listener();
    let port = bound.port();
    drop(l);
    port
}
