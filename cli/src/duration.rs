//! Durations on the command line: a whole number and a unit (`500ms`, `5s`, `12h`), read by one
//! parser; each option says which units it takes and what a plain number means.

/// `(suffix, value of one)`: `""` is the plain number's unit.
pub type Units = &'static [(&'static str, u64)];

/// Milliseconds; a plain number is milliseconds (`--timeout`).
pub const MILLISECONDS: Units = &[("", 1), ("ms", 1), ("s", 1000), ("m", 60_000)];
/// Seconds; a plain number is seconds (`--expires-in`).
pub const SECONDS: Units = &[("", 1), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)];

/// The duration in the table's smallest unit, or `None` when `text` is not a number and a unit
/// of `units` (zero included: callers say what they need of it).
pub fn parse(text: &str, units: Units) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let (_, factor) = units.iter().find(|(suffix, _)| *suffix == unit)?;
    number.checked_mul(*factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_option_reads_its_own_units() {
        assert_eq!(parse("500ms", MILLISECONDS), Some(500));
        assert_eq!(parse("5s", MILLISECONDS), Some(5000));
        assert_eq!(parse("250", MILLISECONDS), Some(250));
        assert_eq!(parse("1h", MILLISECONDS), None);
        assert_eq!(parse("90d", SECONDS), Some(90 * 86_400));
        assert_eq!(parse("30", SECONDS), Some(30));
        assert_eq!(parse("5 seconds", SECONDS), None);
        assert_eq!(parse("", SECONDS), None);
    }
}
