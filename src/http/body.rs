//! Request body framing: counting a Content-Length body and decoding a
//! chunked one, strictly. Sizes are checked for overflow; a malformed
//! chunk is an error, never a guess.

use std::fmt;

/// Why a chunked body was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Malformed chunk framing: 400.
    Malformed(&'static str),
    /// The body is larger than allowed: 413.
    TooLarge,
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::Malformed(why) => f.write_str(why),
            BodyError::TooLarge => f.write_str("body too large"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk size.
    Size { digits: u8 },
    /// After `;`: a chunk extension, skipped to the line end.
    Extension,
    /// Expecting the `\n` of the size line.
    SizeLf,
    /// Inside chunk data.
    Data,
    /// Expecting `\r` after the data.
    DataCr,
    /// Expecting `\n` after the data.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer field line.
    Trailer,
    /// Expecting the `\n` ending a trailer line.
    TrailerLf { empty: bool },
    /// The body is complete.
    Done,
}

/// An incremental `Transfer-Encoding: chunked` decoder.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    /// Bytes left in the current chunk (or the size being read).
    remaining: u64,
    /// Data bytes so far.
    total: u64,
    /// Largest total accepted.
    limit: u64,
}

impl ChunkedDecoder {
    /// A decoder that refuses bodies over `limit` data bytes.
    pub fn new(limit: u64) -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::Size { digits: 0 },
            remaining: 0,
            total: 0,
            limit,
        }
    }

    /// Whether the final chunk and trailers have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Data bytes decoded so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Decodes from `input`, passing data to `data`; returns the bytes
    /// consumed (less than `input.len()` only once done).
    pub fn decode(
        &mut self,
        input: &[u8],
        mut data: impl FnMut(&[u8]),
    ) -> Result<usize, BodyError> {
        let mut i = 0;
        while i < input.len() && self.state != State::Done {
            let b = input[i];
            match self.state {
                State::Size { digits } => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        if digits >= 15 {
                            return Err(BodyError::Malformed("chunk size too long"));
                        }
                        let v = (b as char).to_digit(16).unwrap_or(0) as u64;
                        self.remaining = self.remaining * 16 + v;
                        self.state = State::Size { digits: digits + 1 };
                    }
                    b';' if digits > 0 => self.state = State::Extension,
                    b'\r' if digits > 0 => self.state = State::SizeLf,
                    _ => return Err(BodyError::Malformed("invalid chunk size")),
                },
                State::Extension => match b {
                    b'\r' => self.state = State::SizeLf,
                    b'\n' => return Err(BodyError::Malformed("bare LF in chunk extension")),
                    _ => {}
                },
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(BodyError::Malformed("chunk size line not ended by CRLF"));
                    }
                    self.total = self
                        .total
                        .checked_add(self.remaining)
                        .ok_or(BodyError::TooLarge)?;
                    if self.total > self.limit {
                        return Err(BodyError::TooLarge);
                    }
                    self.state = if self.remaining == 0 {
                        State::TrailerStart
                    } else {
                        State::Data
                    };
                }
                State::Data => {
                    let n = (self.remaining.min((input.len() - i) as u64)) as usize;
                    data(&input[i..i + n]);
                    self.remaining -= n as u64;
                    i += n;
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                    continue;
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(BodyError::Malformed("chunk data not followed by CRLF"));
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(BodyError::Malformed("chunk data not followed by CRLF"));
                    }
                    self.remaining = 0;
                    self.state = State::Size { digits: 0 };
                }
                State::TrailerStart => match b {
                    b'\r' => self.state = State::TrailerLf { empty: true },
                    b'\n' => return Err(BodyError::Malformed("bare LF in trailer")),
                    _ => self.state = State::Trailer,
                },
                State::Trailer => {
                    if b == b'\r' {
                        self.state = State::TrailerLf { empty: false };
                    }
                }
                State::TrailerLf { empty } => {
                    if b != b'\n' {
                        return Err(BodyError::Malformed("trailer line not ended by CRLF"));
                    }
                    self.state = if empty {
                        State::Done
                    } else {
                        State::TrailerStart
                    };
                }
                State::Done => break,
            }
            i += 1;
        }
        Ok(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8], limit: u64) -> Result<(Vec<u8>, usize, bool), BodyError> {
        let mut d = ChunkedDecoder::new(limit);
        let mut out = Vec::new();
        let n = d.decode(input, |b| out.extend_from_slice(b))?;
        Ok((out, n, d.is_done()))
    }

    #[test]
    fn decodes_chunks_extensions_and_trailers() {
        let body = b"4\r\nWiki\r\n5;name=x\r\npedia\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let (out, n, done) = decode_all(body, 100).expect("valid");
        assert_eq!(out, b"Wikipedia");
        assert!(done);
        assert_eq!(&body[n..], b"NEXT");
    }

    #[test]
    fn decodes_byte_by_byte() {
        let body = b"a\r\n0123456789\r\n0\r\n\r\n";
        let mut d = ChunkedDecoder::new(100);
        let mut out = Vec::new();
        for b in body.iter() {
            let n = d
                .decode(std::slice::from_ref(b), |x| out.extend_from_slice(x))
                .expect("valid");
            assert_eq!(n, 1);
        }
        assert!(d.is_done());
        assert_eq!(out, b"0123456789");
    }

    #[test]
    fn refuses_malformed_and_oversized_bodies() {
        assert!(decode_all(b"x\r\n", 10).is_err());
        assert!(decode_all(b"\r\n", 10).is_err());
        assert!(decode_all(b"4\nWiki", 10).is_err());
        assert!(decode_all(b"4\r\nWikiX\r\n", 10).is_err());
        assert!(decode_all(b"ffffffffffffffffff\r\n", u64::MAX).is_err());
        assert_eq!(decode_all(b"b\r\n", 10).unwrap_err(), BodyError::TooLarge);
        assert!(decode_all(b"-1\r\n", 10).is_err());
    }
}
