//! The `Date` value, formatted once per second rather than per response.

use std::time::{SystemTime, UNIX_EPOCH};

/// A cached IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
#[derive(Debug)]
pub struct DateCache {
    second: u64,
    text: String,
}

impl Default for DateCache {
    fn default() -> Self {
        let mut d = DateCache {
            second: u64::MAX,
            text: String::new(),
        };
        d.refresh();
        d
    }
}

impl DateCache {
    /// Re-formats when the second has changed; call once per loop turn.
    pub fn refresh(&mut self) {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.second {
            self.second = second;
            self.text = httpdate::fmt_http_date(now);
        }
    }

    /// The current value.
    pub fn get(&self) -> &str {
        &self.text
    }
}

/// `YYYY-MM-DD HH:MM` in UTC for Unix seconds (directory listings).
pub fn listing_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_times_are_utc_minutes() {
        assert_eq!(listing_time(0), "1970-01-01 00:00");
        assert_eq!(listing_time(951_782_400), "2000-02-29 00:00");
        assert_eq!(listing_time(1_795_000_000), "2026-11-18 11:06");
    }

    #[test]
    fn the_date_is_an_imf_fixdate() {
        let d = DateCache::default();
        assert_eq!(d.get().len(), 29);
        assert!(d.get().ends_with(" GMT"));
    }
}
