//! The chunked decoder (request bodies and upstream bodies share it).
//!
//! Any bytes: decoding them whole, in the pieces the input's first bytes
//! choose, or byte by byte gives the same data, the same end and the same
//! verdict. And any body, chunked into any sizes, decodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xps::http::body::ChunkedDecoder;

/// (data, consumed, failed, done) after feeding `input` cut at `cuts`.
fn decode(input: &[u8], cuts: &[usize]) -> (Vec<u8>, usize, bool, bool) {
    let mut d = ChunkedDecoder::new(1 << 20);
    let mut data = Vec::new();
    let mut consumed = 0;
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&input.len())) {
        let end = end.clamp(start, input.len());
        match d.decode(&input[start..end], |c| data.extend_from_slice(c)) {
            Ok(n) => consumed += n,
            Err(_) => return (data, 0, true, false),
        }
        if d.is_done() {
            break;
        }
        start = end;
    }
    (data, consumed, false, d.is_done())
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (choice, input) = rest.split_at((n as usize % 8).min(rest.len()));
    // Cut points from the first bytes.
    let mut cuts: Vec<usize> = choice
        .iter()
        .map(|&c| c as usize % (input.len() + 1))
        .collect();
    cuts.sort_unstable();
    let whole = decode(input, &[]);
    assert_eq!(whole, decode(input, &cuts));
    let bytewise: Vec<usize> = (1..input.len()).collect();
    assert_eq!(whole, decode(input, &bytewise));
    assert!(whole.0.len() <= input.len() && whole.1 <= input.len());

    // Round trip: `input` as a body, chunked into sizes from `choice`.
    let mut encoded = Vec::new();
    let mut at = 0;
    let mut k = 0;
    while at < input.len() {
        let size = (choice.get(k % choice.len().max(1)).copied().unwrap_or(7) as usize % 64 + 1)
            .min(input.len() - at);
        encoded.extend_from_slice(format!("{size:x}\r\n").as_bytes());
        encoded.extend_from_slice(&input[at..at + size]);
        encoded.extend_from_slice(b"\r\n");
        at += size;
        k += 1;
    }
    encoded.extend_from_slice(b"0\r\n\r\n");
    let (body, consumed, failed, done) = decode(&encoded, &cuts);
    assert!(!failed && done);
    assert_eq!(consumed, encoded.len());
    assert_eq!(body, input);
});
