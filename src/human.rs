//! Figures as people read them on a terminal: sizes, rates, durations and counts, for the
//! commands that print them (`whoami`, `status`, `unmount`'s progress).

/// `1.5 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else if value >= 100.0 || value.fract() < 0.05 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `2.5 MB/s` (decimal, as network rates are usually given).
pub fn human_rate(bytes_per_sec: f64) -> String {
    let mb = bytes_per_sec / 1e6;
    if mb >= 100.0 {
        format!("{mb:.0} MB/s")
    } else if mb >= 0.1 {
        format!("{mb:.1} MB/s")
    } else {
        format!("{:.1} kB/s", bytes_per_sec / 1e3)
    }
}

/// `850 ms`, `12 s`, `5m 02s`, `3h 20m`, `2d 4h`.
pub fn human_duration(secs: f64) -> String {
    if secs < 1.0 {
        return format!("{:.0} ms", secs * 1000.0);
    }
    let s = secs.round() as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        3600..=86399 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

/// `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_like_people_write_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(100 << 30), "100 GiB");
        assert_eq!(human_bytes(10 << 20), "10 MiB");
        assert_eq!(human_rate(2_500_000.0), "2.5 MB/s");
        assert_eq!(human_rate(512.0), "0.5 kB/s");
        assert_eq!(human_rate(250e6), "250 MB/s");
        assert_eq!(human_duration(0.25), "250 ms");
        assert_eq!(human_duration(12.4), "12 s");
        assert_eq!(human_duration(302.0), "5m 02s");
        assert_eq!(human_duration(3.0 * 3600.0 + 1200.0), "3h 20m");
        assert_eq!(human_duration(2.0 * 86400.0 + 4.0 * 3600.0), "2d 4h");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
