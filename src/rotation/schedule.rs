//! Rotation schedules: `rate(...)`/`cron(...)` expressions, window durations,
//! the compliance arithmetic of `max_credential_age_days`, and timeouts.

use std::time::Duration;

/// Secrets Manager allows at most 1000 days between rotations.
pub const MAX_DAYS: i64 = 1000;
/// and at least 4 hours.
const MIN_RATE_HOURS: i64 = 4;

/// Checks a `schedule_expression`; the error says what is wrong.
pub fn check_schedule_expression(expr: &str) -> Result<(), String> {
    let expr = expr.trim();
    if let Some(inner) = expr.strip_prefix("rate(").and_then(|s| s.strip_suffix(')')) {
        return check_rate(inner);
    }
    if let Some(inner) = expr.strip_prefix("cron(").and_then(|s| s.strip_suffix(')')) {
        return check_cron(inner);
    }
    Err(format!(
        "{expr:?} is neither `rate(N hours|days)` nor `cron(minutes hours day-of-month month \
day-of-week year)`"
    ))
}

fn check_rate(inner: &str) -> Result<(), String> {
    let mut words = inner.split_whitespace();
    let (Some(n), Some(unit), None) = (words.next(), words.next(), words.next()) else {
        return Err(format!(
            "rate({inner}) must read rate(N hours) or rate(N days)"
        ));
    };
    let n: i64 = n
        .parse()
        .map_err(|_| format!("rate({inner}): {n:?} is not a whole number"))?;
    let hours = match unit {
        "hour" | "hours" => n,
        "day" | "days" => n.saturating_mul(24),
        other => {
            return Err(format!(
                "rate({inner}): unit {other:?} must be hours or days"
            ))
        }
    };
    if hours < MIN_RATE_HOURS {
        return Err(format!(
            "rate({inner}) is shorter than the minimum of {MIN_RATE_HOURS} hours"
        ));
    }
    if hours > MAX_DAYS * 24 {
        return Err(format!(
            "rate({inner}) is longer than the maximum of {MAX_DAYS} days"
        ));
    }
    Ok(())
}

/// Six fields, as EventBridge-style cron: minutes hours day-of-month month
/// day-of-week year. A basic check of characters and ranges, not a full
/// grammar: AWS remains the final judge.
fn check_cron(inner: &str) -> Result<(), String> {
    let fields: Vec<&str> = inner.split_whitespace().collect();
    if fields.len() != 6 {
        return Err(format!(
            "cron({inner}) has {} fields; it needs six: minutes hours day-of-month month \
day-of-week year",
            fields.len()
        ));
    }
    const NAMES: [&str; 6] = [
        "minutes",
        "hours",
        "day-of-month",
        "month",
        "day-of-week",
        "year",
    ];
    const RANGES: [(i64, i64); 6] = [(0, 59), (0, 23), (1, 31), (1, 12), (1, 7), (1970, 2199)];
    for (i, f) in fields.iter().enumerate() {
        let allowed_extra: &str = match i {
            2 => "?LW",
            4 => "?L#",
            _ => "",
        };
        for c in f.chars() {
            let ok = c.is_ascii_digit()
                || ",-*/".contains(c)
                || allowed_extra.contains(c)
                || ((i == 3 || i == 4) && c.is_ascii_alphabetic());
            if !ok {
                return Err(format!(
                    "cron({inner}): the {} field {f:?} has an invalid character {c:?}",
                    NAMES[i]
                ));
            }
        }
        let (lo, hi) = RANGES[i];
        for number in f
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
        {
            // After '/', a number is an increment, and after '#' an occurrence:
            // both are small positive numbers, which the range check below
            // would only wrongly reject for the year field.
            let value: i64 = number.parse().unwrap_or(i64::MAX);
            if i != 5 && (value < lo || value > hi) && !f.contains('/') && !f.contains('#') {
                return Err(format!(
                    "cron({inner}): the {} field {f:?} is out of range {lo}-{hi}",
                    NAMES[i]
                ));
            }
        }
    }
    let (dom, dow) = (fields[2], fields[4]);
    if (dom == "?") == (dow == "?") {
        return Err(format!(
            "cron({inner}): exactly one of day-of-month and day-of-week must be `?`"
        ));
    }
    Ok(())
}

/// Checks a rotation window `duration`: `Nh`, N from 1 to 24; the hours.
pub fn check_duration(d: &str) -> Result<i64, String> {
    let hours = d
        .strip_suffix('h')
        .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        .and_then(|n| n.parse::<i64>().ok())
        .ok_or_else(|| format!("{d:?} must be a whole number of hours, like `2h`"))?;
    if !(1..=24).contains(&hours) {
        return Err(format!("{d:?} must be between 1h and 24h"));
    }
    Ok(hours)
}

/// Checks that a rotation window of `hours` fits the (valid) schedule
/// `expr`: Secrets Manager requires that a window close before the next one
/// opens and before the UTC day ends. `rate(N days)` windows open at the
/// start of a UTC day, so any window up to 24h fits; `rate(N hours)` needs
/// `hours <= N`; for `cron()` the window hours are worked out from the hours
/// field when it is plain numbers, lists, ranges, steps or `*`, and the check
/// is left to AWS otherwise.
pub fn check_window(expr: &str, hours: i64) -> Result<(), String> {
    let expr = expr.trim();
    if let Some(inner) = expr.strip_prefix("rate(").and_then(|s| s.strip_suffix(')')) {
        let mut words = inner.split_whitespace();
        let (Some(n), Some(unit)) = (words.next(), words.next()) else {
            return Ok(());
        };
        let Ok(n) = n.parse::<i64>() else {
            return Ok(());
        };
        if unit.starts_with("hour") && hours > n {
            return Err(format!(
                "duration = \"{hours}h\" is longer than the {n}-hour interval of {expr}: a \
rotation window must close before the next one opens. Use a duration of at most {n}h, or a \
longer interval."
            ));
        }
        return Ok(());
    }
    let Some(inner) = expr.strip_prefix("cron(").and_then(|s| s.strip_suffix(')')) else {
        return Ok(());
    };
    let Some(hours_field) = inner.split_whitespace().nth(1) else {
        return Ok(());
    };
    let Some(starts) = cron_hours(hours_field) else {
        return Ok(());
    };
    // Distinct window start hours of one UTC day, in order.
    let Some(&last) = starts.last() else {
        return Ok(());
    };
    let shortest_gap = starts.windows(2).map(|w| w[1] - w[0]).min();
    if let Some(gap) = shortest_gap.filter(|g| hours > *g) {
        return Err(format!(
            "duration = \"{hours}h\" is longer than the {gap} hours between two windows of \
{expr}: a rotation window must close before the next one opens. Use a duration of at most \
{gap}h."
        ));
    }
    if last + hours > 24 {
        return Err(format!(
            "duration = \"{hours}h\" makes the window of {expr} that opens at {last:02}:00 UTC \
run past midnight: a rotation window must close by the end of the UTC day. Use a duration of \
at most {}h.",
            24 - last
        ));
    }
    Ok(())
}

/// The hours (0-23, sorted, distinct) a cron hours field selects, or `None`
/// when it uses a form this check does not evaluate.
fn cron_hours(field: &str) -> Option<Vec<i64>> {
    let mut hours = std::collections::BTreeSet::new();
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<i64>().ok().filter(|s| *s > 0)?),
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (0, 23)
        } else if let Some((a, b)) = range.split_once('-') {
            (a.parse::<i64>().ok()?, b.parse::<i64>().ok()?)
        } else {
            let start = range.parse::<i64>().ok()?;
            // `4/12` runs from 4 to the end of the day.
            (start, if part.contains('/') { 23 } else { start })
        };
        if !(0..=23).contains(&lo) || !(0..=23).contains(&hi) || lo > hi {
            return None;
        }
        hours.extend((lo..=hi).step_by(usize::try_from(step).ok()?));
    }
    Some(hours.into_iter().collect())
}

/// The rotation interval that keeps every credential younger than
/// `max_age_days`. A rotation may start as late as the end of its window,
/// up to a day after the interval's last day (a window lasts at most 24
/// hours), so each interval counts as one day longer than its number. A
/// single user's password lives for one interval: one day less. With
/// alternating users the previous user stays valid, as the fallback, for
/// one more interval, so a password lives for two: half of what is left
/// after a day for each of them.
pub fn days_for_max_credential_age(
    max_age_days: i64,
    alternating_users: bool,
) -> Result<i64, String> {
    let days = if alternating_users {
        max_age_days.saturating_sub(2).div_euclid(2)
    } else {
        max_age_days.saturating_sub(1)
    };
    if (1..=MAX_DAYS).contains(&days) {
        Ok(days)
    } else {
        let rule = if alternating_users {
            "a day less than half of it: alternating users, whose previous password stays valid one more interval"
        } else {
            "one day less: a single user"
        };
        Err(format!(
            "max_credential_age_days = {max_age_days} gives a rotation every {days} days ({rule}); \
that must be between 1 and {MAX_DAYS}"
        ))
    }
}

const MAX_TIMEOUT_SECS: u64 = 7 * 24 * 3600;

/// Parses a timeout such as `30m`, `1h30m`, `45s` (units h, m, s).
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    let mut total: u64 = 0;
    let mut number = String::new();
    let mut any = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => {
                return Err(format!(
                    "{text:?}: unexpected {c:?}; use e.g. `30m`, `1h30m`, `45s`"
                ))
            }
        };
        let n: u64 = number
            .parse()
            .map_err(|_| format!("{text:?}: a unit must follow a number, e.g. `30m`"))?;
        total = total.saturating_add(n.saturating_mul(unit));
        number.clear();
        any = true;
    }
    if !number.is_empty() || !any {
        return Err(format!(
            "{text:?}: every number needs a unit (h, m or s), e.g. `30m`"
        ));
    }
    if total == 0 {
        return Err(format!("{text:?}: a timeout must be longer than zero"));
    }
    // A deadline is `now + timeout`: an absurd timeout would overflow it.
    if total > MAX_TIMEOUT_SECS {
        return Err(format!(
            "{text:?} is longer than the longest timeout this provider takes, 168h (7 days)"
        ));
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits() {
        assert!(check_schedule_expression("rate(4 hours)").is_ok());
        assert!(check_schedule_expression("rate(1 day)").is_ok());
        assert!(check_schedule_expression("rate(1000 days)").is_ok());
        assert!(check_schedule_expression("rate(1 hours)").is_err());
        assert!(check_schedule_expression("rate(3 hours)").is_err());
        assert!(check_schedule_expression("rate(1001 days)").is_err());
        assert!(check_schedule_expression("rate(10 weeks)").is_err());
        assert!(check_schedule_expression("rate(x days)").is_err());
        assert!(check_schedule_expression("every day").is_err());
    }

    #[test]
    fn cron_shape() {
        assert!(check_schedule_expression("cron(0 16 1,15 * ? *)").is_ok());
        assert!(check_schedule_expression("cron(0 8 ? * MON-FRI *)").is_ok());
        assert!(check_schedule_expression("cron(0 */4 * * ? *)").is_ok());
        assert!(
            check_schedule_expression("cron(0 16 1 * ?)").is_err(),
            "five fields"
        );
        assert!(
            check_schedule_expression("cron(0 25 1 * ? *)").is_err(),
            "hour 25"
        );
        assert!(
            check_schedule_expression("cron(0 1 1 * * *)").is_err(),
            "no ?"
        );
        assert!(check_schedule_expression("cron(0 1 $ * ? *)").is_err());
    }

    /// Worst case: every rotation starts at the end of its window, a day
    /// after its interval's last day. The interval is the longest for which
    /// no password outlives the promised age.
    #[test]
    fn no_password_outlives_max_credential_age_even_when_rotations_run_late() {
        for max_age in 2..=2002 {
            for alternating in [false, true] {
                let Ok(days) = days_for_max_credential_age(max_age, alternating) else {
                    continue;
                };
                let intervals_lived = if alternating { 2 } else { 1 };
                let oldest = |days: i64| intervals_lived * (days + 1);
                assert!(oldest(days) <= max_age, "{max_age} {alternating}: {days}");
                if days < MAX_DAYS {
                    assert!(
                        oldest(days + 1) > max_age,
                        "{max_age} {alternating}: {days} is not the longest"
                    );
                }
            }
        }
    }

    #[test]
    fn durations() {
        assert_eq!(check_duration("1h"), Ok(1));
        assert_eq!(check_duration("24h"), Ok(24));
        for bad in ["0h", "25h", "2d", "h", "", "-1h", "1.5h"] {
            assert!(check_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_window_must_close_before_the_next_one_opens() {
        assert!(check_window("rate(4 hours)", 4).is_ok());
        let err = check_window("rate(4 hours)", 6).expect_err("6h in a 4-hour interval");
        assert!(err.contains("4-hour interval"), "{err}");
        assert!(check_window("rate(10 days)", 24).is_ok());
        assert!(check_window("cron(0 4/12 * * ? *)", 8).is_ok());
        assert!(check_window("cron(0 */4 * * ? *)", 4).is_ok());
        assert!(check_window("cron(0 */4 * * ? *)", 5).is_err());
        assert!(
            check_window("cron(0 1,13 * * ? *)", 12).is_err(),
            "13 + 12 > 24"
        );
        assert!(check_window("cron(0 1,13 * * ? *)", 11).is_ok());
        let err = check_window("cron(0 20 ? * MON *)", 6).expect_err("20:00 + 6h passes midnight");
        assert!(err.contains("20:00") && err.contains("at most 4h"), "{err}");
        assert!(check_window("cron(0 8 ? * MON-FRI *)", 6).is_ok());
        // Forms not evaluated are left to AWS.
        assert!(check_window("cron(0 L * * ? *)", 24).is_ok());
    }

    #[test]
    fn compliance_arithmetic() {
        // Two intervals of 14 days, each up to a day late: 30 days at most.
        assert_eq!(days_for_max_credential_age(30, true), Ok(14));
        assert_eq!(days_for_max_credential_age(31, true), Ok(14));
        assert_eq!(days_for_max_credential_age(32, true), Ok(15));
        assert_eq!(days_for_max_credential_age(4, true), Ok(1));
        assert!(days_for_max_credential_age(3, true).is_err());
        assert_eq!(days_for_max_credential_age(30, false), Ok(29));
        assert_eq!(days_for_max_credential_age(2, false), Ok(1));
        assert_eq!(days_for_max_credential_age(2002, true), Ok(1000));
        assert!(days_for_max_credential_age(1, false).is_err());
        assert!(days_for_max_credential_age(1, true).is_err());
        assert!(days_for_max_credential_age(2004, true).is_err());
        assert!(days_for_max_credential_age(1002, false).is_err());
        assert!(days_for_max_credential_age(i64::MIN, false).is_err());
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_timeout("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_timeout("45s"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_timeout("168h"), Ok(Duration::from_secs(604_800)));
        for bad in [
            "",
            "30",
            "m",
            "1x",
            "0s",
            "1h 2m",
            "169h",
            "9999999999999999999s",
        ] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
    }
}
