//! A file compressed as it is sent: one too large for the compressed
//! cache. Its compressed length is not known up front, so it goes as
//! chunks (close-delimited to an HTTP/1.0 client). The file is read a
//! piece at a time, only when everything compressed before it has been
//! written, so a slow client holds one piece and the compressor's state,
//! never the file.

use crate::handler::gzip;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

/// Bytes of the file read and compressed at a time.
const PIECE: usize = 64 << 10;

/// The state of one compressed file being sent.
pub struct GzFile {
    file: File,
    /// The next byte of the file to read.
    offset: u64,
    /// The file's size when it was looked up: what is sent.
    size: u64,
    stream: gzip::Stream,
    /// Compressed bytes (framed as chunks when `chunked`) not yet written.
    out: Vec<u8>,
    pos: usize,
    /// A piece of the file.
    piece: Vec<u8>,
    chunked: bool,
    /// The gzip trailer (and the last chunk) is in `out`.
    ended: bool,
}

impl GzFile {
    /// Starts sending `file` (of `size` bytes) gzipped at `level`.
    pub fn new(file: File, size: u64, level: u32, chunked: bool) -> GzFile {
        GzFile {
            file,
            offset: 0,
            size,
            stream: gzip::Stream::new(level),
            out: Vec::new(),
            pos: 0,
            piece: Vec::new(),
            chunked,
            ended: false,
        }
    }

    /// Writes as much as `socket` takes, reading and compressing more of
    /// the file as what came before is written; `sent` counts the bytes
    /// written. `Ok(true)`: the whole body is out. A file that shrank
    /// while it was sent is an error: the client is left short rather than
    /// given a gzip stream that looks complete.
    pub fn send(&mut self, mut socket: impl Write, sent: &mut u64) -> io::Result<bool> {
        loop {
            if self.pos < self.out.len() {
                match socket.write(&self.out[self.pos..]) {
                    Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                    Ok(n) => {
                        self.pos += n;
                        *sent += n as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
                continue;
            }
            self.out.clear();
            self.pos = 0;
            if self.ended {
                return Ok(true);
            }
            self.refill()?;
        }
    }

    /// Compresses the next piece of the file into `out` (the trailer after
    /// the last one).
    fn refill(&mut self) -> io::Result<()> {
        if self.offset >= self.size {
            self.stream.finish_into(&mut self.out, self.chunked);
            if self.chunked {
                self.out.extend_from_slice(b"0\r\n\r\n");
            }
            self.ended = true;
            self.piece = Vec::new();
            return Ok(());
        }
        let want = (self.size - self.offset).min(PIECE as u64) as usize;
        self.piece.resize(want, 0);
        let n = loop {
            match self.file.read_at(&mut self.piece[..want], self.offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other?,
            }
        };
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while it was sent",
            ));
        }
        self.offset += n as u64;
        self.stream
            .compress_into(&self.piece[..n], &mut self.out, self.chunked);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};

    fn unchunk(mut data: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line = data.iter().position(|&b| b == b'\n').expect("size line");
            let size = usize::from_str_radix(std::str::from_utf8(&data[..line - 1]).unwrap(), 16)
                .expect("hex size");
            data = &data[line + 1..];
            if size == 0 {
                assert_eq!(data, b"\r\n");
                return body;
            }
            body.extend_from_slice(&data[..size]);
            assert_eq!(&data[size..size + 2], b"\r\n");
            data = &data[size + 2..];
        }
    }

    #[test]
    fn a_file_goes_out_as_chunks_of_one_gzip_stream() {
        let dir = std::env::temp_dir().join(format!("xps-gzfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("big.txt");
        let text: String = (0..40_000).map(|i| format!("line {i} of text\n")).collect();
        std::fs::write(&path, &text).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            (&client).read_to_end(&mut all).unwrap();
            all
        });
        let file = File::open(&path).unwrap();
        let mut g = GzFile::new(file, text.len() as u64, 5, true);
        let mut sent = 0;
        assert!(g.send(&server, &mut sent).unwrap());
        drop(server);
        let wire = reader.join().unwrap();
        assert_eq!(sent, wire.len() as u64);
        let mut back = String::new();
        GzDecoder::new(&unchunk(&wire)[..])
            .read_to_string(&mut back)
            .unwrap();
        assert_eq!(back, text);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
