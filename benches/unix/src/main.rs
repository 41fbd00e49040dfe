//! `xps-unix-load unix:/path | HOST:PORT PATH CONNS SECONDS`: CONNS
//! keep-alive connections, each with one request in flight, for SECONDS;
//! prints the number of responses. One thread: a request goes out on every
//! connection, then one response is read from each, and again.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

trait Conn: Read + Write {}
impl<T: Read + Write> Conn for T {}

fn connect(target: &str) -> io::Result<Box<dyn Conn>> {
    Ok(match target.strip_prefix("unix:") {
        Some(path) => Box::new(UnixStream::connect(path)?),
        None => {
            let s = TcpStream::connect(target)?;
            s.set_nodelay(true)?;
            Box::new(s)
        }
    })
}

/// Reads one response with a Content-Length body; what follows it stays
/// in `buf` (nothing does, one request being in flight).
fn read_response(c: &mut dyn Conn, buf: &mut Vec<u8>) -> io::Result<()> {
    let mut chunk = [0u8; 65536];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).unwrap_or("");
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            let total = end + 4 + length;
            while buf.len() < total {
                let n = c.read(&mut chunk)?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.drain(..total);
            return Ok(());
        }
        let n = c.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, target, path, conns, seconds] = args.as_slice() else {
        eprintln!("usage: xps-unix-load unix:/path|HOST:PORT PATH CONNS SECONDS");
        std::process::exit(2);
    };
    let conns: usize = conns.parse().expect("CONNS");
    let seconds: f64 = seconds.parse().expect("SECONDS");
    let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n");
    let mut all: Vec<(Box<dyn Conn>, Vec<u8>)> = (0..conns)
        .map(|_| connect(target).map(|c| (c, Vec::new())))
        .collect::<io::Result<_>>()?;
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let mut done: u64 = 0;
    while Instant::now() < until {
        for (c, buf) in all.iter_mut() {
            // (Over a Unix socket, writing to a connection the server has
            // closed fails at once.)
            if c.write_all(request.as_bytes()).is_err() {
                buf.clear();
                *c = connect(target)?;
                c.write_all(request.as_bytes())?;
            }
        }
        for (c, buf) in all.iter_mut() {
            // A server closes a connection after so many requests
            // (`keepalive_requests`, 1000 in both): open another, as wrk
            // does, and ask again.
            while read_response(c.as_mut(), buf).is_err() {
                buf.clear();
                *c = connect(target)?;
                c.write_all(request.as_bytes())?;
            }
            done += 1;
        }
    }
    println!("{done}");
    Ok(())
}
