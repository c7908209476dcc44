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

/// Checks a rotation window `duration`: `Nh`, N from 1 to 24.
pub fn check_duration(d: &str) -> Result<(), String> {
    let hours = d
        .strip_suffix('h')
        .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        .and_then(|n| n.parse::<i64>().ok())
        .ok_or_else(|| format!("{d:?} must be a whole number of hours, like `2h`"))?;
    if !(1..=24).contains(&hours) {
        return Err(format!("{d:?} must be between 1h and 24h"));
    }
    Ok(())
}

/// The rotation interval that keeps every credential younger than
/// `max_age_days`: with multi-user rotation the previous user stays valid
/// one more cycle, so half of it; otherwise one day less.
pub fn days_for_max_credential_age(max_age_days: i64, multi_user: bool) -> Result<i64, String> {
    let days = if multi_user {
        max_age_days.div_euclid(2)
    } else {
        max_age_days.saturating_sub(1)
    };
    if (1..=MAX_DAYS).contains(&days) {
        Ok(days)
    } else {
        let rule = if multi_user {
            "half of it (multi-user rotation)"
        } else {
            "one day less"
        };
        Err(format!(
            "max_credential_age_days = {max_age_days} gives a rotation every {days} days ({rule}); \
that must be between 1 and {MAX_DAYS}"
        ))
    }
}

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

    #[test]
    fn durations() {
        assert!(check_duration("1h").is_ok());
        assert!(check_duration("24h").is_ok());
        for bad in ["0h", "25h", "2d", "h", "", "-1h", "1.5h"] {
            assert!(check_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn compliance_arithmetic() {
        assert_eq!(days_for_max_credential_age(30, true), Ok(15));
        assert_eq!(days_for_max_credential_age(31, true), Ok(15));
        assert_eq!(days_for_max_credential_age(30, false), Ok(29));
        assert_eq!(days_for_max_credential_age(2, false), Ok(1));
        assert_eq!(days_for_max_credential_age(2001, true), Ok(1000));
        assert!(days_for_max_credential_age(1, false).is_err());
        assert!(days_for_max_credential_age(1, true).is_err());
        assert!(days_for_max_credential_age(2002, true).is_err());
        assert!(days_for_max_credential_age(1002, false).is_err());
        assert!(days_for_max_credential_age(i64::MIN, false).is_err());
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_timeout("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_timeout("45s"), Ok(Duration::from_secs(45)));
        for bad in ["", "30", "m", "1x", "0s", "1h 2m"] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
    }
}
