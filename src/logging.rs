//! Logging as hclog JSON lines on stderr, the format go-plugin parses.
//!
//! Stdout belongs to the handshake, so nothing here ever writes there. The
//! level comes from `TF_LOG_PROVIDER`, else `TF_LOG`, as Terraform reads it
//! for provider output; without either, only warnings and errors are written.

use std::io::Write;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// The lowest level written, or `None` for OFF.
fn threshold() -> Option<Level> {
    static THRESHOLD: OnceLock<Option<Level>> = OnceLock::new();
    *THRESHOLD.get_or_init(|| {
        let setting = std::env::var("TF_LOG_PROVIDER")
            .ok()
            .filter(|s| !s.is_empty())
            .or_else(|| std::env::var("TF_LOG").ok().filter(|s| !s.is_empty()));
        match setting.map(|s| s.to_ascii_uppercase()).as_deref() {
            None => Some(Level::Warn),
            Some("OFF") => None,
            Some("ERROR") => Some(Level::Error),
            Some("WARN") => Some(Level::Warn),
            Some("INFO") => Some(Level::Info),
            Some("DEBUG") => Some(Level::Debug),
            // TRACE, JSON and anything unrecognised mean trace, as in Terraform.
            Some(_) => Some(Level::Trace),
        }
    })
}

pub fn enabled(level: Level) -> bool {
    threshold().is_some_and(|t| level >= t)
}

/// Writes one JSON line with `@level`, `@message` (always a string),
/// `@timestamp` (six fractional digits, as hclog writes them) and `@module`,
/// plus any extra string fields.
pub fn log(level: Level, module: &str, message: &str, fields: &[(&str, &str)]) {
    if !enabled(level) {
        return;
    }
    let mut line = serde_json::Map::new();
    line.insert("@level".into(), level.as_str().into());
    line.insert("@message".into(), message.into());
    line.insert("@timestamp".into(), timestamp().into());
    line.insert("@module".into(), format!("rdsrot.{module}").into());
    for (k, v) in fields {
        line.insert((*k).to_string(), (*v).into());
    }
    let text = serde_json::Value::Object(line).to_string();
    // A failed write to stderr has nowhere better to be reported.
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

fn timestamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    now.format(&format).unwrap_or_default()
}

pub fn trace(module: &str, message: &str) {
    log(Level::Trace, module, message, &[]);
}
pub fn debug(module: &str, message: &str) {
    log(Level::Debug, module, message, &[]);
}
pub fn info(module: &str, message: &str) {
    log(Level::Info, module, message, &[]);
}
pub fn warn(module: &str, message: &str) {
    log(Level::Warn, module, message, &[]);
}
pub fn error(module: &str, message: &str) {
    log(Level::Error, module, message, &[]);
}

/// Makes a panic print `panic: <message>` on stderr, the prefix Terraform
/// looks for in provider output to report "the plugin crashed" with the
/// message; Rust's default wording would go unnoticed.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_string());
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("unnamed");
        let _ = writeln!(
            std::io::stderr().lock(),
            "panic: {message}\n\nthread {thread:?} at {location}"
        );
    }));
}
