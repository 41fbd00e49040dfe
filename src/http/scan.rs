//! Deciding when a head still arriving is worth parsing again.

/// What is known of a head still arriving, so that each new byte is looked
/// at once: how many bytes were looked at, and whether the request line
/// has ended among them.
#[derive(Clone, Copy, Debug, Default)]
pub struct HeadScan {
    seen: usize,
    line_ended: bool,
}

impl HeadScan {
    /// Whether `data` (the buffered head: what was seen before, then new
    /// bytes) is worth parsing: it is new, the request line just ended (a
    /// malformed one is answered as soon as it is whole), a blank line may
    /// have arrived, or the size limit is reached. Nothing else can change
    /// the answer, so a head trickled a byte at a time is not parsed again
    /// from its start on every read, which would cost CPU quadratic in its
    /// size. Looks only at the new bytes (and the two before them).
    pub fn worth_parsing(&mut self, data: &[u8], max_head: usize) -> bool {
        let seen = self.seen.min(data.len());
        self.seen = data.len();
        if seen == 0 || data.len() >= max_head {
            self.line_ended |= data.contains(&b'\n');
            return true;
        }
        let new = &data[seen..];
        if !self.line_ended && new.contains(&b'\n') {
            self.line_ended = true;
            return true;
        }
        // `\n\n` or `\n\r\n` ending in the new bytes.
        let tail = &data[seen.saturating_sub(2)..];
        tail.windows(2).any(|w| w == b"\n\n") || tail.windows(3).any(|w| w == b"\n\r\n")
    }
}

#[cfg(test)]
mod tests {
    use super::HeadScan;

    /// Feeds `head` a byte at a time and counts the parses the gate lets
    /// through, checking that the last byte always gets one.
    fn parses(head: &[u8], max: usize) -> usize {
        let mut scan = HeadScan::default();
        let mut count = 0;
        for end in 1..=head.len() {
            if scan.worth_parsing(&head[..end], max) {
                count += 1;
            } else {
                assert!(end < head.len(), "the complete head was not parsed");
            }
        }
        count
    }

    #[test]
    fn a_trickled_head_is_parsed_a_bounded_number_of_times() {
        let mut head = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
        for i in 0..2000 {
            head.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        // The first byte, the request line's end, the blank line: however
        // many fields.
        assert_eq!(parses(&head, 1 << 20), 3);
        let lf_only = b"GET / HTTP/1.1\nHost: x\nA: b\n\n";
        assert_eq!(parses(lf_only, 1 << 20), 3);
    }

    #[test]
    fn the_size_limit_and_a_bad_request_line_are_seen_at_once() {
        let fresh = |seen: usize, line_ended: bool| HeadScan { seen, line_ended };
        // At the limit: parsed (and refused) without waiting for a blank
        // line.
        assert!(fresh(63, true).worth_parsing(&[b'a'; 64], 64));
        // The request line just ended: parsed, so garbage gets its 400.
        assert!(fresh(7, false).worth_parsing(b"GARBAGE\r\n", 1024));
        // A field line ended, no blank line: nothing new to learn.
        assert!(!fresh(20, true).worth_parsing(b"GET / HTTP/1.1\r\nA: b\r\n", 1024));
        // The blank line split across reads.
        assert!(!fresh(22, true).worth_parsing(b"GET / HTTP/1.1\r\nA: b\r\n\r", 1024));
        assert!(fresh(23, true).worth_parsing(b"GET / HTTP/1.1\r\nA: b\r\n\r\n", 1024));
    }
}
