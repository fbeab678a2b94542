//! Shifts: weekly windows in an IANA time zone, windows past midnight.

use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;

use super::error::{Error, Result};
use super::model::ShiftDef;
use super::org::{Shift, Window};

/// Parses `HH:MM` (00:00 to 24:00) into minutes since midnight.
fn parse_minutes(field: &str, text: &str) -> Result<u16> {
    let bad = || Error::invalid(field, format!("window time must be HH:MM, got {text:?}"));
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// Checks a shift and compiles it; `field` prefixes error paths.
pub fn compile_shift(field: &str, def: &ShiftDef) -> Result<Shift> {
    let tz: Tz = def.time_zone.parse().map_err(|_| {
        Error::invalid(
            format!("{field}.time_zone"),
            format!("unknown IANA time zone {:?}", def.time_zone),
        )
    })?;
    let mut windows = Vec::with_capacity(def.windows.len());
    for (i, w) in def.windows.iter().enumerate() {
        let wf = format!("{field}.windows[{i}]");
        if w.days.is_empty() {
            return Err(Error::invalid(
                format!("{wf}.days"),
                "a window needs at least one day",
            ));
        }
        let start = parse_minutes(&format!("{wf}.start"), &w.start)?;
        let end = parse_minutes(&format!("{wf}.end"), &w.end)?;
        if start == 24 * 60 {
            return Err(Error::invalid(
                format!("{wf}.start"),
                "a window cannot start at 24:00",
            ));
        }
        if start == end {
            return Err(Error::invalid(
                wf,
                "window start and end must differ (an empty window)",
            ));
        }
        let days = w.days.iter().fold(0u8, |acc, d| acc | (1 << d.index()));
        windows.push(Window { days, start, end });
    }
    Ok(Shift {
        def: def.clone(),
        tz,
        windows,
    })
}

impl Shift {
    /// Whether `at` falls inside one of the shift's windows.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.tz);
        let day = local.weekday().num_days_from_monday() as u8;
        let yesterday = (day + 6) % 7;
        let minute = (local.hour() * 60 + local.minute()) as u16;
        self.windows.iter().any(|w| {
            let today = w.days & (1 << day) != 0;
            if w.end > w.start {
                today && minute >= w.start && minute < w.end
            } else {
                // Past midnight: from start to midnight on its day, then to
                // end on the next day.
                (today && minute >= w.start) || (w.days & (1 << yesterday) != 0 && minute < w.end)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::{Weekday, WindowDef};

    fn shift(tz: &str, days: Vec<Weekday>, start: &str, end: &str) -> Shift {
        compile_shift(
            "shift",
            &ShiftDef {
                id: "s".into(),
                time_zone: tz.into(),
                windows: vec![WindowDef {
                    days,
                    start: start.into(),
                    end: end.into(),
                }],
            },
        )
        .unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn day_window_in_its_time_zone() {
        let s = shift("Asia/Tokyo", vec![Weekday::Mon], "09:00", "18:00");
        assert!(s.contains(at("2026-11-23T00:00:00Z"))); // Mon 09:00 Tokyo
        assert!(!s.contains(at("2026-11-22T23:59:00Z"))); // Mon 08:59 Tokyo
        assert!(!s.contains(at("2026-11-23T09:00:00Z"))); // Mon 18:00 Tokyo: end excluded
    }

    #[test]
    fn night_window_runs_into_next_day_only_from_its_own_days() {
        let s = shift("UTC", vec![Weekday::Fri], "22:00", "06:00");
        assert!(s.contains(at("2026-11-27T22:00:00Z"))); // Fri 22:00
        assert!(s.contains(at("2026-11-28T05:59:00Z"))); // Sat 05:59
        assert!(!s.contains(at("2026-11-28T06:00:00Z")));
        assert!(!s.contains(at("2026-11-27T05:00:00Z"))); // Fri early: Thu had no window
    }

    #[test]
    fn end_of_day_and_refusals() {
        let s = shift("UTC", vec![Weekday::Sun], "00:00", "24:00");
        assert!(s.contains(at("2026-11-22T23:59:00Z")));
        let bad = |tz: &str, start: &str, end: &str| {
            compile_shift(
                "shifts[0]",
                &ShiftDef {
                    id: "s".into(),
                    time_zone: tz.into(),
                    windows: vec![WindowDef {
                        days: vec![Weekday::Mon],
                        start: start.into(),
                        end: end.into(),
                    }],
                },
            )
            .unwrap_err()
            .to_string()
        };
        assert!(bad("Mars/Olympus", "09:00", "10:00").contains("time_zone"));
        assert!(bad("UTC", "09:00", "09:00").contains("window"));
        assert!(bad("UTC", "9:00", "10:00").contains("HH:MM"));
        assert!(bad("UTC", "09:60", "10:00").contains("HH:MM"));
    }
}
