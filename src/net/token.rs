//! What an epoll event or a timer entry is for. Every descriptor a worker
//! registers, and every deadline it schedules, carries one [`Token`],
//! packed into the 64 bits epoll keeps: the kind in the top 3 bits, a
//! generation in the next 29, an index in the low 32. Signals have no
//! token: the main thread reads them from a blocking signalfd.

/// Bits of a generation.
const GENERATION_BITS: u32 = 29;
/// The largest generation; [`next_generation`] wraps below it.
const MAX_GENERATION: u32 = (1 << GENERATION_BITS) - 1;
/// Where the kind starts.
const KIND_SHIFT: u32 = 32 + GENERATION_BITS;

/// What an event or a deadline names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Token {
    /// A client connection: its slab slot, and the slot's generation (a
    /// stale event for a reused slot carries an older one).
    Client {
        /// The slab slot.
        slot: u32,
        /// The slot's generation when the connection was made.
        generation: u32,
    },
    /// An upstream socket: its slot in the worker's socket table and the
    /// slot's generation.
    Upstream {
        /// The socket table's slot.
        slot: u32,
        /// The slot's generation when the socket was made.
        generation: u32,
    },
    /// A listen socket, by its index in the worker's list.
    Listener(u32),
    /// An active health probe, by its number.
    Probe(u32),
    /// The worker's wake-up eventfd.
    Wake,
    /// The file cache's folder watcher.
    FilesChanged,
}

/// The kinds, as stored in the top bits.
const CLIENT: u64 = 0;
const UPSTREAM: u64 = 1;
const LISTENER: u64 = 2;
const PROBE: u64 = 3;
const WAKE: u64 = 4;
const FILES_CHANGED: u64 = 5;

impl Token {
    /// The 64 bits epoll carries. A generation is kept within its 29 bits
    /// (see [`next_generation`]), so it never reaches the kind.
    pub fn encode(self) -> u64 {
        let pack = |kind: u64, generation: u32, index: u32| {
            (kind << KIND_SHIFT) | (u64::from(generation & MAX_GENERATION) << 32) | u64::from(index)
        };
        match self {
            Token::Client { slot, generation } => pack(CLIENT, generation, slot),
            Token::Upstream { slot, generation } => pack(UPSTREAM, generation, slot),
            Token::Listener(i) => pack(LISTENER, 0, i),
            Token::Probe(id) => pack(PROBE, 0, id),
            Token::Wake => pack(WAKE, 0, 0),
            Token::FilesChanged => pack(FILES_CHANGED, 0, 0),
        }
    }

    /// The token `bits` encode; `None` for bits no token encodes to.
    pub fn decode(bits: u64) -> Option<Token> {
        let generation = ((bits >> 32) as u32) & MAX_GENERATION;
        let index = bits as u32;
        let token = match bits >> KIND_SHIFT {
            CLIENT => Token::Client {
                slot: index,
                generation,
            },
            UPSTREAM => Token::Upstream {
                slot: index,
                generation,
            },
            LISTENER => Token::Listener(index),
            PROBE => Token::Probe(index),
            WAKE => Token::Wake,
            FILES_CHANGED => Token::FilesChanged,
            _ => return None,
        };
        // Kinds without a generation (or an index) carry zeros there.
        (token.encode() == bits).then_some(token)
    }
}

/// The generation after `g`: within its 29 bits, never 0 (a slot's
/// first generation is 1).
pub fn next_generation(g: u32) -> u32 {
    (g.wrapping_add(1) & MAX_GENERATION).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind, at an index and a generation.
    fn all(index: u32, generation: u32) -> [Token; 6] {
        [
            Token::Client {
                slot: index,
                generation,
            },
            Token::Upstream {
                slot: index,
                generation,
            },
            Token::Listener(index),
            Token::Probe(index),
            Token::Wake,
            Token::FilesChanged,
        ]
    }

    #[test]
    fn every_kind_decodes_to_itself_and_never_to_another_kind() {
        let indexes = [0, 1, 2, 0x7fff_ffff, 0x8000_0000, u32::MAX];
        let mut generation = 0;
        let mut generations = vec![0, 1, MAX_GENERATION - 1, MAX_GENERATION];
        // Walk a slot's generations through a wrap.
        for _ in 0..4 {
            generation = next_generation(generation);
            generations.push(generation);
        }
        generation = MAX_GENERATION - 2;
        for _ in 0..4 {
            generation = next_generation(generation);
            generations.push(generation);
        }
        for &i in &indexes {
            for &g in &generations {
                for (kind, t) in all(i, g).into_iter().enumerate() {
                    let back = Token::decode(t.encode());
                    assert_eq!(back, Some(t), "{t:?}");
                    for (other, u) in all(i, g).into_iter().enumerate() {
                        if kind != other {
                            assert_ne!(t.encode(), u.encode(), "{t:?} and {u:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn an_out_of_range_generation_cannot_change_the_kind() {
        for g in [MAX_GENERATION + 1, u32::MAX, 0xe000_0000] {
            let t = Token::Client {
                slot: 7,
                generation: g,
            };
            assert!(matches!(
                Token::decode(t.encode()),
                Some(Token::Client { slot: 7, .. })
            ));
            let u = Token::Upstream {
                slot: 7,
                generation: g,
            };
            assert!(matches!(
                Token::decode(u.encode()),
                Some(Token::Upstream { slot: 7, .. })
            ));
        }
    }

    #[test]
    fn generations_stay_within_their_bits_and_skip_zero() {
        assert_eq!(next_generation(0), 1);
        assert_eq!(next_generation(MAX_GENERATION), 1);
        assert_eq!(next_generation(u32::MAX), 1);
        assert_eq!(next_generation(41), 42);
    }

    #[test]
    fn bits_of_no_kind_decode_to_nothing() {
        assert_eq!(Token::decode(6 << KIND_SHIFT), None);
        assert_eq!(Token::decode(7 << KIND_SHIFT), None);
        // A wake-up with an index is not a wake-up.
        assert_eq!(Token::decode((WAKE << KIND_SHIFT) | 1), None);
        assert_eq!(Token::decode((LISTENER << KIND_SHIFT) | (1 << 32)), None);
    }
}
