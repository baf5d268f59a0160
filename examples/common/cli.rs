//! Command-line checks shared by the examples: a bad value is clap's one-line error
//! (`error: invalid value 'nan' for '--timeout <SECS>': ...`) and exit status 2, never
//! a panic inside the program or greenweave.
#![allow(dead_code)] // each example uses some of these

use std::fmt::Display;
use std::time::Duration;

/// The longest accepted number of seconds: a year. More is surely a mistake, and it
/// keeps `Instant::now() + duration` representable for every library it reaches.
pub const MAX_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// Parses a number of seconds (`--timeout 2.5`) for clap's `value_parser`: finite, more
/// than zero, at most [`MAX_SECONDS`].
pub fn seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| "not a number of seconds".to_owned())?;
    if !secs.is_finite() {
        return Err("not a finite number of seconds".to_owned());
    }
    if secs > MAX_SECONDS {
        return Err(format!("more than a year ({MAX_SECONDS} s)"));
    }
    let duration = Duration::try_from_secs_f64(secs).unwrap_or(Duration::ZERO);
    if duration.is_zero() {
        return Err("must be more than 0 seconds".to_owned());
    }
    Ok(duration)
}

/// Exits like clap does for a bad value (one `error:` line naming it, status 2), for
/// checks that need more than one argument or the file system.
pub fn invalid(message: impl Display) -> ! {
    eprintln!("error: {message}");
    std::process::exit(2);
}
