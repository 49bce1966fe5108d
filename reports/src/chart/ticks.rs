//! Where an axis puts its ticks and what they say: integer layers, steps on a log axis
//! labelled in steps (0, 1, 10, 100), and round numbers with thousands separators. Pure
//! functions, so the labels a figure prints are tested without drawing it.

/// How an axis maps values and labels its ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Axis {
    /// Round numbers: 0, 0.25, 0.5 … or 0, 20,000, 40,000 ….
    #[default]
    Linear,
    /// Whole numbers only (layers, neurons).
    Integer,
    /// Training steps on a log scale that still shows step 0: drawn at log10(step + 1),
    /// labelled with the steps themselves (0, 1, 10, 100, 1,000).
    Steps,
}

/// The ticks of one axis, in plot coordinates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ticks {
    /// Labelled ticks: (position, label).
    pub major: Vec<(f64, String)>,
    /// Unlabelled grid lines.
    pub minor: Vec<f64>,
}

impl Ticks {
    /// The label of the tick at `position` (plotters asks by position).
    pub fn label_at(&self, position: f64) -> String {
        self.major
            .iter()
            .find(|(p, _)| (p - position).abs() <= 1e-9 * (1.0 + p.abs()))
            .map(|(_, l)| l.clone())
            .unwrap_or_default()
    }
}

impl Axis {
    /// Where `value` is drawn, or `None` if this axis cannot show it.
    pub fn position(self, value: f64) -> Option<f64> {
        match self {
            Axis::Steps => (value >= 0.0).then(|| (value + 1.0).log10()),
            _ => value.is_finite().then_some(value),
        }
    }

    /// The ticks between positions `lo` and `hi`.
    pub fn ticks(self, lo: f64, hi: f64) -> Ticks {
        match self {
            Axis::Linear => linear_ticks(lo, hi, 6),
            Axis::Integer => integer_ticks(lo, hi),
            Axis::Steps => step_ticks(lo, hi),
        }
    }
}

/// 1, 2, 2.5 or 5 times a power of ten: the tick spacing closest above `span / target`.
fn nice_spacing(span: f64, target: usize) -> f64 {
    let raw = (span / target as f64).max(f64::MIN_POSITIVE);
    let magnitude = 10f64.powf(raw.log10().floor());
    let m = raw / magnitude;
    let nice = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .find(|&n| m <= n * (1.0 + 1e-9))
        .unwrap_or(10.0);
    nice * magnitude
}

/// Decimals that print every multiple of `spacing` exactly.
fn decimals(spacing: f64) -> usize {
    (0..=12)
        .find(|&d| {
            let scaled = spacing * 10f64.powi(d as i32);
            (scaled - scaled.round()).abs() < 1e-6 * scaled.max(1.0)
        })
        .unwrap_or(12)
}

fn multiples(lo: f64, hi: f64, spacing: f64) -> Vec<f64> {
    let first = (lo / spacing - 1e-9).ceil() as i64;
    let last = (hi / spacing + 1e-9).floor() as i64;
    (first..=last).map(|k| k as f64 * spacing).collect()
}

fn linear_ticks(lo: f64, hi: f64, target: usize) -> Ticks {
    let spacing = nice_spacing(hi - lo, target);
    let digits = decimals(spacing);
    Ticks {
        major: multiples(lo, hi, spacing)
            .into_iter()
            .map(|v| (v, format_number(v, digits)))
            .collect(),
        minor: multiples(lo, hi, spacing / 2.0),
    }
}

fn integer_ticks(lo: f64, hi: f64) -> Ticks {
    let spacing = if hi - lo <= 12.0 {
        1.0
    } else {
        nice_spacing(hi - lo, 8).max(1.0).round()
    };
    Ticks {
        major: multiples(lo, hi, spacing)
            .into_iter()
            .map(|v| (v, format_number(v, 0)))
            .collect(),
        minor: vec![],
    }
}

/// 0, then 1, 10, 100 … (and 2 and 5 times each while the axis spans at most three
/// decades); grid lines at the other whole multiples.
fn step_ticks(lo: f64, hi: f64) -> Ticks {
    let inside = |p: f64| p >= lo - 1e-9 && p <= hi + 1e-9;
    let decades = (hi - lo).max(0.0);
    let labelled: &[f64] = if decades <= 3.2 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    let mut ticks = Ticks::default();
    if inside(0.0) {
        ticks.major.push((0.0, "0".into()));
    }
    let top = 10f64.powf(hi).ceil();
    let mut power = 1.0;
    while power <= top {
        for m in 1..10 {
            let step = m as f64 * power;
            let p = (step + 1.0).log10();
            if !inside(p) {
                continue;
            }
            if labelled.contains(&(m as f64)) {
                ticks.major.push((p, format_number(step, 0)));
            } else {
                ticks.minor.push(p);
            }
        }
        power *= 10.0;
    }
    ticks
}

/// `value` with `digits` decimals and a comma between thousands: 100000 → "100,000".
pub fn format_number(value: f64, digits: usize) -> String {
    let text = format!("{:.digits$}", value.abs());
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let negative = value < 0.0 && text.chars().any(|c| c.is_ascii_digit() && c != '0');
    let sign = if negative { "-" } else { "" };
    if frac.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}.{frac}")
    }
}

/// A count with thousands separators: 11000 → "11,000".
pub fn format_count(n: u64) -> String {
    format_number(n as f64, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(t: &Ticks) -> Vec<&str> {
        t.major.iter().map(|(_, l)| l.as_str()).collect()
    }

    #[test]
    fn numbers_get_thousands_separators_and_no_stray_decimals() {
        assert_eq!(format_number(100000.0, 0), "100,000");
        assert_eq!(format_number(1234567.891, 2), "1,234,567.89");
        assert_eq!(format_number(999.0, 0), "999");
        assert_eq!(format_number(-2500.0, 0), "-2,500");
        assert_eq!(format_number(-0.0001, 2), "0.00");
        assert_eq!(format_count(11), "11");
        assert_eq!(format_count(11000), "11,000");
    }

    #[test]
    fn layers_get_whole_number_ticks_only() {
        // The old chart labelled this range 0.0, 0.5, 1.0 … 3.0.
        let t = Axis::Integer.ticks(-0.15, 3.15);
        assert_eq!(labels(&t), ["0", "1", "2", "3"]);
        assert!(t.minor.is_empty());
        let wide = Axis::Integer.ticks(0.0, 47.0);
        assert!(wide.major.iter().all(|(p, _)| p.fract() == 0.0));
        assert_eq!(labels(&wide), ["0", "10", "20", "30", "40"]);
    }

    #[test]
    fn a_log_step_axis_is_labelled_in_steps() {
        let (lo, hi) = (
            Axis::Steps.position(0.0).unwrap(),
            Axis::Steps.position(600.0).unwrap(),
        );
        let t = Axis::Steps.ticks(lo, hi);
        assert_eq!(
            labels(&t),
            ["0", "1", "2", "5", "10", "20", "50", "100", "200", "500"]
        );
        // Each label sits where that step is drawn.
        for (p, label) in &t.major {
            let step: f64 = label.replace(',', "").parse().unwrap();
            assert!((Axis::Steps.position(step).unwrap() - p).abs() < 1e-12);
        }
        let long = Axis::Steps.ticks(0.0, Axis::Steps.position(100_000.0).unwrap());
        assert_eq!(
            labels(&long),
            ["0", "1", "10", "100", "1,000", "10,000", "100,000"]
        );
    }

    #[test]
    fn linear_ticks_are_round_and_printed_exactly() {
        assert_eq!(
            labels(&Axis::Linear.ticks(0.0, 120_000.0)),
            [
                "0", "20,000", "40,000", "60,000", "80,000", "100,000", "120,000"
            ]
        );
        assert_eq!(
            labels(&Axis::Linear.ticks(0.63, 0.91)),
            ["0.65", "0.70", "0.75", "0.80", "0.85", "0.90"]
        );
        assert_eq!(
            labels(&Axis::Linear.ticks(-0.06, 0.02)),
            ["-0.06", "-0.04", "-0.02", "0.00", "0.02"]
        );
        let t = Axis::Linear.ticks(0.0, 0.125);
        assert_eq!(
            labels(&t),
            ["0.000", "0.025", "0.050", "0.075", "0.100", "0.125"]
        );
        assert_eq!(t.label_at(0.05), "0.050");
        assert_eq!(t.label_at(0.051), "");
    }
}
