//! Request body framing: counting a Content-Length body and decoding a
//! chunked one, strictly. Sizes are checked for overflow; a malformed
//! chunk is an error, never a guess.

use super::is_tchar;
use std::fmt;

/// Why a chunked body was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Malformed chunk framing: 400.
    Malformed(&'static str),
    /// The body is larger than allowed: 413.
    TooLarge,
    /// The trailer section is larger than allowed: 431.
    TrailersTooLarge,
}

impl BodyError {
    /// The status code of the answer.
    pub fn status(self) -> u16 {
        match self {
            BodyError::Malformed(_) => 400,
            BodyError::TooLarge => 413,
            BodyError::TrailersTooLarge => 431,
        }
    }
}

/// Longest chunk-size line (size, extensions and their whitespace).
pub const MAX_SIZE_LINE: usize = 4096;
/// Largest trailer section.
pub const MAX_TRAILERS: usize = 16 << 10;

/// A byte that may not appear in a field value or an extension: a control
/// character other than HTAB, or DEL.
fn is_ctl(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::Malformed(why) => f.write_str(why),
            BodyError::TooLarge => f.write_str("body too large"),
            BodyError::TrailersTooLarge => f.write_str("trailer section too large"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk size.
    Size { digits: u8 },
    /// Whitespace after the size: only a `;` may follow.
    SizeBws,
    /// After `;` (and optional whitespace): an extension name must start.
    ExtStart,
    /// Inside a chunk extension, up to the line end.
    Extension,
    /// Inside a quoted extension value (`;` and spaces are literal).
    ExtQuoted,
    /// After a backslash in a quoted value.
    ExtQuotedEscape,
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
    /// Inside a trailer field's name.
    TrailerName,
    /// Inside a trailer field's value.
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
    /// Bytes of the current chunk-size line, or of the trailer section.
    framing: usize,
}

impl ChunkedDecoder {
    /// A decoder that refuses bodies over `limit` data bytes.
    pub fn new(limit: u64) -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::Size { digits: 0 },
            remaining: 0,
            total: 0,
            limit,
            framing: 0,
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
                State::Size { .. }
                | State::SizeBws
                | State::ExtStart
                | State::Extension
                | State::ExtQuoted
                | State::ExtQuotedEscape
                | State::SizeLf => {
                    self.framing += 1;
                    if self.framing > MAX_SIZE_LINE {
                        return Err(BodyError::Malformed("chunk size line too long"));
                    }
                }
                State::TrailerStart
                | State::TrailerName
                | State::Trailer
                | State::TrailerLf { .. } => {
                    self.framing += 1;
                    if self.framing > MAX_TRAILERS {
                        return Err(BodyError::TrailersTooLarge);
                    }
                }
                _ => {}
            }
            match self.state {
                State::Size { digits } => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        // Leading zeros are fine; the value may not pass
                        // 2^60 (no body is that long).
                        if self.remaining >= 1 << 56 {
                            return Err(BodyError::Malformed("chunk size too large"));
                        }
                        let v = (b as char).to_digit(16).unwrap_or(0) as u64;
                        self.remaining = self.remaining * 16 + v;
                        self.state = State::Size {
                            digits: digits.saturating_add(1),
                        };
                    }
                    b' ' | b'\t' if digits > 0 => self.state = State::SizeBws,
                    b';' if digits > 0 => self.state = State::ExtStart,
                    b'\r' if digits > 0 => self.state = State::SizeLf,
                    _ => return Err(BodyError::Malformed("invalid chunk size")),
                },
                State::SizeBws => match b {
                    b' ' | b'\t' => {}
                    b';' => self.state = State::ExtStart,
                    _ => {
                        return Err(BodyError::Malformed(
                            "whitespace after a chunk size not followed by an extension",
                        ));
                    }
                },
                State::ExtStart => match b {
                    b' ' | b'\t' => {}
                    b if is_tchar(b) => self.state = State::Extension,
                    _ => return Err(BodyError::Malformed("empty chunk extension")),
                },
                State::Extension => match b {
                    b'\r' => self.state = State::SizeLf,
                    b'\n' => return Err(BodyError::Malformed("bare LF in chunk extension")),
                    b';' => self.state = State::ExtStart,
                    b'"' => self.state = State::ExtQuoted,
                    b if is_ctl(b) => {
                        return Err(BodyError::Malformed("control character in chunk extension"));
                    }
                    _ => {}
                },
                State::ExtQuoted => match b {
                    b'"' => self.state = State::Extension,
                    b'\\' => self.state = State::ExtQuotedEscape,
                    b if is_ctl(b) => {
                        return Err(BodyError::Malformed("control character in chunk extension"));
                    }
                    _ => {}
                },
                State::ExtQuotedEscape => {
                    if is_ctl(b) {
                        return Err(BodyError::Malformed("control character in chunk extension"));
                    }
                    self.state = State::ExtQuoted;
                }
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
                    self.framing = 0;
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
                    self.framing = 0;
                    self.state = State::Size { digits: 0 };
                }
                State::TrailerStart => match b {
                    b'\r' => self.state = State::TrailerLf { empty: true },
                    b'\n' => return Err(BodyError::Malformed("bare LF in trailer")),
                    b if is_tchar(b) => self.state = State::TrailerName,
                    _ => return Err(BodyError::Malformed("invalid trailer field name")),
                },
                State::TrailerName => match b {
                    b':' => self.state = State::Trailer,
                    b if is_tchar(b) => {}
                    _ => return Err(BodyError::Malformed("trailer line without a colon")),
                },
                State::Trailer => match b {
                    b'\r' => self.state = State::TrailerLf { empty: false },
                    b'\n' => return Err(BodyError::Malformed("bare LF in trailer")),
                    b if is_ctl(b) => {
                        return Err(BodyError::Malformed("control character in trailer"));
                    }
                    _ => {}
                },
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

    #[test]
    fn extensions_and_trailers_follow_their_grammar_and_limits() {
        let ok = |b: &[u8]| decode_all(b, 1 << 20).map(|(out, _, done)| (out, done));
        let hello = Ok((b"hello".to_vec(), true));
        assert_eq!(ok(b"5 ;a=b\r\nhello\r\n0\r\n\r\n"), hello);
        assert_eq!(ok(b"5;a=\"x y\";b\r\nhello\r\n0\r\n\r\n"), hello);
        assert_eq!(ok(b"5;a=\"x; \\\"y\"\r\nhello\r\n0\r\n\r\n"), hello);
        assert_eq!(ok(b"0000000000000000005\r\nhello\r\n0\r\n\r\n"), hello);
        assert_eq!(ok(b"5\r\nhello\r\n0\r\nX-A: 1\r\nB:\r\n\r\n"), hello);
        let bad = |b: &[u8]| decode_all(b, 1 << 20).unwrap_err();
        assert!(matches!(
            bad(b"5;\r\nhello\r\n0\r\n\r\n"),
            BodyError::Malformed(_)
        ));
        assert!(matches!(
            bad(b"5 \r\nhello\r\n0\r\n\r\n"),
            BodyError::Malformed(_)
        ));
        assert!(matches!(bad(b"5;a\x01\r\nhello"), BodyError::Malformed(_)));
        assert!(matches!(
            bad(b"5\r\nhello\r\n0\r\nX: a\nGET / HTTP/1.1\r\n\r\n"),
            BodyError::Malformed(_)
        ));
        assert!(matches!(
            bad(b"5\r\nhello\r\n0\r\nfoo\r\n\r\n"),
            BodyError::Malformed(_)
        ));
        assert!(matches!(
            bad(b"5\r\nhello\r\n0\r\n X: a\r\n\r\n"),
            BodyError::Malformed(_)
        ));
        let mut long_ext = b"5;e=".to_vec();
        long_ext.extend(std::iter::repeat_n(b'a', MAX_SIZE_LINE));
        assert!(matches!(bad(&long_ext), BodyError::Malformed(_)));
        let mut long_trailer = b"0\r\nX: ".to_vec();
        long_trailer.extend(std::iter::repeat_n(b'a', MAX_TRAILERS));
        assert_eq!(bad(&long_trailer), BodyError::TrailersTooLarge);
        // Many small extensions over many chunks are fine: the limit is
        // per line.
        let mut many = Vec::new();
        for _ in 0..2000 {
            many.extend_from_slice(b"1;ext=value\r\nx\r\n");
        }
        many.extend_from_slice(b"0\r\n\r\n");
        assert_eq!(ok(&many).map(|(out, _)| out.len()), Ok(2000));
    }
}
