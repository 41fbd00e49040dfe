//! Values written back in xps.conf syntax: the inverse of
//! [`crate::config::values`] for durations and sizes.

use std::time::Duration;

/// The shortest exact form: `1d`, `2h`, `5m`, `10s`, `250ms`.
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0".to_string();
    }
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// The shortest exact form: `1g`, `1m`, `16k`, `300`.
pub fn size(n: u64) -> String {
    for (unit, shift) in [("g", 30), ("m", 20), ("k", 10)] {
        if n != 0 && n % (1u64 << shift) == 0 {
            return format!("{}{unit}", n >> shift);
        }
    }
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::values;

    #[test]
    fn round_trips_through_the_parsers() {
        for text in ["1d", "2h", "5m", "10s", "250ms", "90s", "0"] {
            let d = values::duration(text).expect("valid");
            assert_eq!(values::duration(&duration(d)), Some(d), "{text}");
        }
        assert_eq!(duration(Duration::from_secs(90)), "90s");
        for n in [0, 1, 300, 1024, 16 << 10, 1 << 20, 3 << 30, 1500] {
            assert_eq!(values::size(&size(n)), Some(n));
        }
        assert_eq!(size(16 << 10), "16k");
    }
}
