//! Timestamps as the protocol carries them.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time, in milliseconds since the Unix epoch.
///
/// AWS carries timestamps in three shapes: the REST/JSON APIs use epoch **seconds** as a
/// number (possibly fractional), the local emulator's invocation events use epoch
/// **milliseconds** as integers, and some SDK comments mention ISO-8601 strings. All three
/// are accepted when parsing. An integer of magnitude 10^11 or more is read as milliseconds
/// (10^11 seconds is the year 5138; 10^11 milliseconds is 1973). Serialisation always
/// writes epoch seconds with millisecond precision, the REST/JSON wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// A timestamp from milliseconds since the epoch.
    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// The wall-clock time now.
    pub fn now() -> Self {
        let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Timestamp(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }

    /// This timestamp plus `ms` milliseconds (saturating).
    #[must_use]
    pub const fn plus_millis(self, ms: i64) -> Self {
        Timestamp(self.0.saturating_add(ms))
    }

    /// This timestamp plus a duration (saturating, to the millisecond).
    #[must_use]
    pub fn plus(self, d: std::time::Duration) -> Self {
        self.plus_millis(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }

    /// This timestamp plus whole seconds (saturating).
    #[must_use]
    pub const fn plus_seconds(self, s: i64) -> Self {
        Timestamp(self.0.saturating_add(s.saturating_mul(1000)))
    }

    /// Parses an RFC 3339 / ISO-8601 UTC timestamp such as `2026-11-26T10:00:00.123Z`
    /// (an offset `+hh:mm` is honoured).
    #[allow(clippy::many_single_char_names)]
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || (b[10] != b'T' && b[10] != b't' && b[10] != b' ') {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
        let mut rest = &s[19..];
        let mut ms = 0i64;
        if let Some(frac) = rest.strip_prefix('.') {
            let digits: String = frac.chars().take_while(char::is_ascii_digit).collect();
            rest = &frac[digits.len()..];
            let mut padded = digits.chars().take(3).collect::<String>();
            while padded.len() < 3 {
                padded.push('0');
            }
            ms = padded.parse().ok()?;
        }
        let offset_min = match rest {
            "Z" | "z" | "" => 0,
            _ => {
                let sign = match rest.as_bytes()[0] {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return None,
                };
                let oh: i64 = rest.get(1..3)?.parse().ok()?;
                let om: i64 = rest.get(4..6)?.parse().ok()?;
                sign * (oh * 60 + om)
            }
        };
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
            return None;
        }
        let days = days_from_civil(y, mo, d);
        let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset_min * 60;
        Some(Timestamp(secs * 1000 + ms))
    }

    /// Formats as RFC 3339 in UTC with milliseconds, e.g. `2026-11-26T10:00:00.123Z`.
    pub fn to_rfc3339(self) -> String {
        let ms = self.0.rem_euclid(1000);
        let secs = self.0.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z", sod / 3600, (sod / 60) % 60, sod % 60)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

// Howard Hinnant's civil-date algorithms (public domain), proleptic Gregorian calendar.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if !s.is_human_readable() {
            return s.serialize_i64(self.0);
        }
        if self.0 % 1000 == 0 { s.serialize_i64(self.0 / 1000) } else { s.serialize_f64(self.0 as f64 / 1000.0) }
    }
}

const MILLIS_THRESHOLD: i64 = 100_000_000_000;

impl<'de> Deserialize<'de> for Timestamp {
    #[allow(clippy::items_after_statements)]
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        if !d.is_human_readable() {
            return i64::deserialize(d).map(Timestamp);
        }
        impl Visitor<'_> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("epoch seconds, epoch milliseconds or an ISO-8601 timestamp")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                if v.abs() >= MILLIS_THRESHOLD { Ok(Timestamp(v)) } else { Ok(Timestamp(v.saturating_mul(1000))) }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                self.visit_i64(i64::try_from(v).map_err(|_| E::custom("timestamp out of range"))?)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Timestamp, E> {
                if !v.is_finite() {
                    return Err(E::custom("timestamp is not a finite number"));
                }
                if v.abs() >= MILLIS_THRESHOLD as f64 {
                    Ok(Timestamp(v.round() as i64))
                } else {
                    Ok(Timestamp((v * 1000.0).round() as i64))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Timestamp::parse_rfc3339(v).ok_or_else(|| E::custom(format!("invalid timestamp {v:?}")))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_wire_shape() {
        let ms: Timestamp = serde_json::from_str("1795723518638").unwrap();
        assert_eq!(ms.as_millis(), 1_795_723_518_638);
        let secs: Timestamp = serde_json::from_str("1795723518.638").unwrap();
        assert_eq!(secs, ms);
        let whole: Timestamp = serde_json::from_str("1795723518").unwrap();
        assert_eq!(whole.as_millis(), 1_795_723_518_000);
        let iso: Timestamp = serde_json::from_str("\"2026-11-26T19:25:18.638Z\"").unwrap();
        assert_eq!(iso.to_rfc3339(), "2026-11-26T19:25:18.638Z");
        let off = Timestamp::parse_rfc3339("2026-11-26T20:25:18.638+01:00").unwrap();
        assert_eq!(off, iso);
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
    }

    #[test]
    fn serialises_as_epoch_seconds() {
        assert_eq!(serde_json::to_string(&Timestamp::from_millis(1_500)).unwrap(), "1.5");
        assert_eq!(serde_json::to_string(&Timestamp::from_millis(2_000)).unwrap(), "2");
        let t = Timestamp::from_millis(1_795_723_518_638);
        let back: Timestamp = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn civil_round_trip() {
        for days in [-719_468, -1, 0, 1, 20_000, 60_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(Timestamp::EPOCH.to_rfc3339(), "1970-01-01T00:00:00.000Z");
    }
}
