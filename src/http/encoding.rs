//! `Accept-Encoding` (RFC 9110 §12.5.3): whether a client takes gzip.

use super::is_token;

/// Whether `value` (every `Accept-Encoding` line of a request, joined with
/// commas) accepts gzip: `gzip` or `x-gzip` with a q-value above 0, or, when
/// neither is named, `*` with a q-value above 0. `gzip;q=0` and `*;q=0`
/// refuse; no field, an empty one or a malformed one means no gzip (never
/// an error).
pub fn accepts_gzip(value: Option<&str>) -> bool {
    let Some(value) = value else {
        return false;
    };
    let mut named: Option<u16> = None;
    let mut star: Option<u16> = None;
    for element in value.split(',') {
        let element = element.trim_matches([' ', '\t']);
        if element.is_empty() {
            continue; // empty list elements are allowed (RFC 9110 §5.6.1)
        }
        let mut parts = element.split(';');
        let coding = parts.next().unwrap_or("").trim_matches([' ', '\t']);
        if !is_token(coding) {
            return false;
        }
        let mut q = 1000;
        for param in parts {
            let Some((name, v)) = param.trim_matches([' ', '\t']).split_once('=') else {
                return false;
            };
            // A coding takes only a weight (`;q=`): anything else is
            // malformed.
            if !name.trim_end().eq_ignore_ascii_case("q") {
                return false;
            }
            match qvalue(v.trim_start()) {
                Some(v) => q = v,
                None => return false,
            }
        }
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            named = Some(named.map_or(q, |n| n.max(q)));
        } else if coding == "*" {
            star = Some(q);
        }
    }
    match (named, star) {
        (Some(q), _) => q > 0,
        (None, Some(q)) => q > 0,
        (None, None) => false,
    }
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in
/// thousandths.
fn qvalue(v: &str) -> Option<u16> {
    let (whole, frac) = match v.split_once('.') {
        Some((w, f)) => (w, f),
        None => (v, ""),
    };
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{frac:0<3}").parse::<u16>().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::accepts_gzip;

    #[test]
    fn negotiation_follows_rfc_9110() {
        let yes = [
            "gzip",
            "GZIP",
            "x-gzip",
            "gzip, deflate",
            "gzip, deflate, br",
            "deflate, gzip;q=0.5",
            "gzip;q=1",
            "gzip;q=1.000",
            "gzip;q=0.001",
            "*",
            "br, *;q=0.1",
            "gzip ; q=0.5",
            "identity, gzip",
            ", gzip,",
            "gzip;q=0, x-gzip",
        ];
        for v in yes {
            assert!(accepts_gzip(Some(v)), "{v:?} accepts gzip");
        }
        let no = [
            "",
            "identity",
            "deflate, br",
            "gzip;q=0",
            "gzip;q=0.000",
            "x-gzip;q=0",
            "*;q=0",
            "*;q=0, deflate",
            "gzip;q=0, *",
            "gzip;q=2",
            "gzip;q=1.5",
            "gzip;q=0.0001",
            "gzip;q=",
            "gzip;q",
            "gzip;q=abc",
            "gzip;;",
            "gz ip",
            "gzip;level=1",
            "\u{e9}gzip",
        ];
        for v in no {
            assert!(!accepts_gzip(Some(v)), "{v:?} does not accept gzip");
        }
        assert!(!accepts_gzip(None));
    }
}
