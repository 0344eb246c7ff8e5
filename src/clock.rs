//! The wall clock: whole Unix seconds, and `chrono::DateTime<Utc>` cheaply: every request reads it three times
//! (its start, its decision, its audit event). `Utc::now` converts the system time's day
//! number into a calendar date on each call, which cost more than the clock read itself;
//! here the date is kept per thread for the day it belongs to and only the time of day is
//! built per call.

use std::cell::Cell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};

const SECS_PER_DAY: u64 = 86_400;

thread_local! {
    /// The last day number (since 1970-01-01) converted on this thread, and its date.
    static DAY: Cell<Option<(u64, NaiveDate)>> = const { Cell::new(None) };
}

/// Whole seconds since the Unix epoch (0 if the clock is before 1970).
pub fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The current time, equal to `chrono::Utc::now()`.
pub fn utc_now() -> DateTime<Utc> {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since_epoch) => from_unix(since_epoch).unwrap_or_else(Utc::now),
        // Before 1970: not worth a cache.
        Err(_) => Utc::now(),
    }
}

/// `UNIX_EPOCH + since_epoch` as a `DateTime<Utc>` (`None` past chrono's range).
fn from_unix(since_epoch: Duration) -> Option<DateTime<Utc>> {
    let secs = since_epoch.as_secs();
    let day = secs / SECS_PER_DAY;
    let date = DAY.with(|cached| match cached.get() {
        Some((d, date)) if d == day => Some(date),
        _ => {
            let date = NaiveDate::from_num_days_from_ce_opt(
                i32::try_from(day).ok()?.checked_add(EPOCH_DAYS_FROM_CE)?,
            )?;
            cached.set(Some((day, date)));
            Some(date)
        }
    })?;
    let time = NaiveTime::from_num_seconds_from_midnight_opt(
        (secs % SECS_PER_DAY) as u32,
        since_epoch.subsec_nanos(),
    )?;
    Some(DateTime::from_naive_utc_and_offset(
        date.and_time(time),
        Utc,
    ))
}

/// Days from 0001-01-01 (day 1 in chrono's count) to 1970-01-01.
const EPOCH_DAYS_FROM_CE: i32 = 719_163;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equals_chrono_across_days_and_back() {
        let chrono_of = |d: Duration| DateTime::<Utc>::from(UNIX_EPOCH + d);
        let mut secs = 0u64;
        // Walk forward and back over day boundaries, leap days and the far future, so the
        // cached day is hit, missed, and returned to.
        for step in [1u64, 86_399, 1, 86_400 * 365, 3_600, 86_400 * 59, 7] {
            for back in [false, true] {
                secs = if back {
                    secs.saturating_sub(step / 2)
                } else {
                    secs + step
                };
                for nanos in [0, 1, 999_999_999] {
                    let d = Duration::new(secs, nanos);
                    assert_eq!(from_unix(d), Some(chrono_of(d)), "at {secs}.{nanos}");
                }
            }
        }
        for secs in [951_782_400u64, 4_102_444_799, 253_402_300_799] {
            let d = Duration::from_secs(secs);
            assert_eq!(from_unix(d), Some(chrono_of(d)), "at {secs}");
        }
        let now = utc_now();
        assert!((Utc::now() - now).num_seconds().abs() < 5);
    }
}
