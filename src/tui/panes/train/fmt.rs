//! Short human forms of numbers, sizes and durations for a narrow pane.

/// `512 B`, `3.4 MB`, `7.1 GB` (powers of 1024).
pub fn bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = n.max(0.0);
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `950`, `12.3k`, `4.5M`, `1.2G`.
pub fn count(n: f64) -> String {
    let abs = n.abs();
    if abs >= 1e9 {
        format!("{:.1}G", n / 1e9)
    } else if abs >= 1e6 {
        format!("{:.1}M", n / 1e6)
    } else if abs >= 1e4 {
        format!("{:.1}k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

/// `45s`, `3m20s`, `2h05m`, `3d04h`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// An axis label: few characters whatever the magnitude.
pub fn axis(v: f64) -> String {
    let abs = v.abs();
    if v == 0.0 {
        "0".into()
    } else if abs < 0.01 {
        format!("{v:.0e}")
    } else if abs < 10.0 {
        format!("{v:.2}")
    } else if abs < 1e4 {
        format!("{v:.0}")
    } else {
        count(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_forms() {
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(3.5 * 1024.0 * 1024.0), "3.5 MB");
        assert_eq!(count(1234.0), "1234");
        assert_eq!(count(311_000.0), "311.0k");
        assert_eq!(duration(200.0), "3m20s");
        assert_eq!(duration(7500.0), "2h05m");
        assert_eq!(axis(0.0002), "2e-4");
        assert_eq!(axis(4.3123), "4.31");
        assert_eq!(axis(1900.4), "1900");
    }
}
