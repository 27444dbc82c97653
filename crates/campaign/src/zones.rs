//! Where a number is: the time zones of its prefix and, for a US number, its state, from libphonenumber's own data
//! (embedded from `data/libphonenumber/`, version in `VERSION`, Apache-2.0 licence in `LICENSE`; regenerate with
//! `scripts/libphonenumber-data.py`). No table here is written by hand.
//!
//! A number is looked up by its longest prefix in the data (country code and leading digits, as normalised). A
//! prefix may map to several zones (a mobile range that spans a whole country, for example); a number whose prefix
//! is not in the data, or maps to libphonenumber's "unknown" zone, has no known zone.

use std::collections::HashMap;
use std::sync::OnceLock;

use chrono_tz::Tz;

const VERSION: &str = include_str!("../data/libphonenumber/VERSION");
const TIMEZONES: &str = include_str!("../data/libphonenumber/timezones.tsv");
const US_STATES: &str = include_str!("../data/libphonenumber/us_states.tsv");

/// The libphonenumber release the embedded data comes from.
pub fn libphonenumber_data_version() -> &'static str {
    VERSION.trim()
}

/// Values by number prefix, looked up by the longest prefix of a number.
struct PrefixMap<T> {
    by_prefix: HashMap<&'static str, T>,
    longest: usize,
}

impl<T> PrefixMap<T> {
    fn parse(text: &'static str, value: impl Fn(&'static str) -> Option<T>) -> PrefixMap<T> {
        let mut by_prefix = HashMap::new();
        let mut longest = 0;
        for line in text.lines() {
            let Some((prefix, rest)) = line.split_once('\t') else {
                continue;
            };
            if let Some(v) = value(rest) {
                longest = longest.max(prefix.len());
                by_prefix.insert(prefix, v);
            }
        }
        PrefixMap { by_prefix, longest }
    }

    fn lookup(&self, digits: &str) -> Option<&T> {
        let max = self.longest.min(digits.len());
        (1..=max)
            .rev()
            .find_map(|n| digits.get(..n).and_then(|p| self.by_prefix.get(p)))
    }
}

fn zone_map() -> &'static PrefixMap<Vec<Tz>> {
    static MAP: OnceLock<PrefixMap<Vec<Tz>>> = OnceLock::new();
    MAP.get_or_init(|| {
        PrefixMap::parse(TIMEZONES, |zones| {
            let parsed: Vec<Tz> = zones
                .split(' ')
                .filter_map(|z| z.parse::<Tz>().ok())
                .collect();
            (!parsed.is_empty()).then_some(parsed)
        })
    })
}

fn state_map() -> &'static PrefixMap<&'static str> {
    static MAP: OnceLock<PrefixMap<&'static str>> = OnceLock::new();
    MAP.get_or_init(|| PrefixMap::parse(US_STATES, |st| Some(st.trim())))
}

/// The time zones of a normalised number (country code and national number, digits only), by libphonenumber's
/// data; `None` when they are unknown.
pub fn zones_of(normalized_phone: &str) -> Option<&'static [Tz]> {
    zone_map().lookup(normalized_phone).map(Vec::as_slice)
}

/// The US state (two-letter USPS code, or `DC`) of a normalised US number, by libphonenumber's geocoding data;
/// `None` for other numbers and where the data does not say.
pub fn us_state_of(normalized_phone: &str) -> Option<&'static str> {
    if !normalized_phone.starts_with('1') {
        return None;
    }
    state_map().lookup(normalized_phone).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_is_the_pinned_release_and_every_line_is_read() {
        // Regenerating the data for another release must change this test on purpose.
        assert_eq!(libphonenumber_data_version(), "9.0.43");
        let unknown: Vec<&str> = TIMEZONES
            .lines()
            .flat_map(|l| l.split_once('\t').map(|(_, z)| z).unwrap_or("").split(' '))
            .filter(|z| *z != "Etc/Unknown" && z.parse::<Tz>().is_err())
            .collect();
        assert!(
            unknown.is_empty(),
            "zones chrono-tz does not know: {unknown:?}"
        );
        assert!(TIMEZONES.lines().count() > 3000);
        assert!(US_STATES.lines().all(|l| {
            l.split_once('\t')
                .is_some_and(|(p, s)| p.starts_with('1') && s.len() == 2)
        }));
    }

    #[test]
    fn numbers_get_the_zones_of_their_longest_prefix() {
        let zones = |n: &str| zones_of(n).map(|z| z.iter().map(|t| t.name()).collect::<Vec<_>>());
        assert_eq!(zones("12125550123"), Some(vec!["America/New_York"]));
        assert_eq!(zones("18085550123"), Some(vec!["Pacific/Honolulu"]));
        assert_eq!(zones("13125550123"), Some(vec!["America/Chicago"]));
        assert_eq!(zones("16025550123"), Some(vec!["America/Phoenix"]));
        // Pensacola's exchanges in Florida's 850 are on Central time, the rest of 850 on Eastern.
        assert_eq!(zones("18502005555"), Some(vec!["America/Chicago"]));
        assert_eq!(zones("18505995555"), Some(vec!["America/New_York"]));
        assert_eq!(zones("81312345678"), Some(vec!["Asia/Tokyo"]));
        let uk = zones("447911123456").unwrap();
        assert!(uk.contains(&"Europe/London"), "{uk:?}");
        assert_eq!(
            zones("12083000000"),
            Some(vec!["America/Boise", "America/Los_Angeles"]),
            "part of Idaho's 208 spans two zones"
        );
        assert_eq!(zones(""), None);
    }

    #[test]
    fn us_numbers_get_their_state() {
        assert_eq!(us_state_of("13055550123"), Some("FL"));
        assert_eq!(us_state_of("14055550123"), Some("OK"));
        assert_eq!(us_state_of("12125550123"), Some("NY"));
        assert_eq!(us_state_of("12025550123"), Some("DC"));
        assert_eq!(us_state_of("447911123456"), None);
        assert_eq!(
            us_state_of("14165550123"),
            None,
            "Toronto is not in a US state"
        );
    }
}
