//! Colours, markers and the bundled font; one colour per model across every figure.

use plotters::style::RGBColor;
use std::sync::Once;

/// Okabe–Ito colours: distinguishable with colour blindness; paired with markers so series
/// also survive greyscale printing. (Its yellow is left out: unreadable on white.)
pub const PALETTE: [RGBColor; 7] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(230, 159, 0),   // orange
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(0, 0, 0),       // black
];

/// Point markers, so series also differ in greyscale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Marker {
    Circle,
    Triangle,
    Square,
    Cross,
}

impl Marker {
    pub const ALL: [Marker; 4] = [
        Marker::Circle,
        Marker::Triangle,
        Marker::Square,
        Marker::Cross,
    ];
}

/// How one series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub colour: RGBColor,
    pub marker: Marker,
}

impl Style {
    /// The `i`-th style of a chart whose series name no model.
    pub fn nth(i: usize) -> Self {
        Self {
            colour: PALETTE[i % PALETTE.len()],
            marker: Marker::ALL[i % Marker::ALL.len()],
        }
    }

    pub fn with_marker(self, marker: Marker) -> Self {
        Self { marker, ..self }
    }

    /// The colour mixed with white: `amount` 0 is unchanged, 1 is white.
    pub fn lighter(self, amount: f64) -> Self {
        let mix = |c: u8| (c as f64 + (255.0 - c as f64) * amount.clamp(0.0, 1.0)).round() as u8;
        let RGBColor(r, g, b) = self.colour;
        Self {
            colour: RGBColor(mix(r), mix(g), mix(b)),
            ..self
        }
    }
}

/// One colour per model, the same in every figure of a report. Seeds of one model
/// (`topk`, `topk-seed2`) share its hue, lighter and with another marker.
#[derive(Debug, Clone, Default)]
pub struct Colours {
    families: Vec<String>,
}

/// `topk-seed2` → (`topk`, 2); `topk` → (`topk`, 1).
pub fn family_and_seed(model: &str) -> (&str, usize) {
    if let Some((family, n)) = model.rsplit_once("-seed")
        && let Ok(n) = n.parse::<usize>()
    {
        return (family, n.max(1));
    }
    (model, 1)
}

impl Colours {
    /// Models in the order their colours are assigned (the run's `models`, then its SAE
    /// series).
    pub fn new<S: AsRef<str>>(models: impl IntoIterator<Item = S>) -> Self {
        let mut families: Vec<String> = Vec::new();
        for m in models {
            let family = family_and_seed(m.as_ref()).0;
            if !families.iter().any(|f| f == family) {
                families.push(family.to_owned());
            }
        }
        Self { families }
    }

    /// The style of `model`. A model not given to [`Colours::new`] gets a colour after the
    /// known ones, the same each time it is asked for.
    pub fn model(&self, model: &str) -> Style {
        let (family, seed) = family_and_seed(model);
        let i = self
            .families
            .iter()
            .position(|f| f == family)
            .unwrap_or_else(|| {
                // Stable for a name: a byte sum, past the known families.
                self.families.len() + family.bytes().map(usize::from).sum::<usize>()
            });
        let style = Style {
            colour: PALETTE[i % PALETTE.len()],
            marker: Marker::ALL[(seed - 1) % Marker::ALL.len()],
        };
        style.lighter(if seed > 1 { 0.45 } else { 0.0 })
    }

    /// Where a series labelled `label` ("topk-seed2 (matching)": the model first) goes in a
    /// legend: by the model's family in colour order, then by seed; unknown models last.
    pub fn rank(&self, label: &str) -> (usize, usize) {
        let model = label.split(' ').next().unwrap_or(label);
        let (family, seed) = family_and_seed(model);
        let i = self.families.iter().position(|f| f == family);
        (i.unwrap_or(usize::MAX), seed)
    }
}

/// Family name the bundled DejaVu Sans is registered under.
pub const FONT: &str = "sans-serif";

/// DejaVu Sans (licence in `reports/assets/DejaVu-LICENSE`): charts render the same on a
/// fresh machine with no fonts installed.
static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Registers the bundled font once.
pub fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ =
            plotters::style::register_font(FONT, plotters::style::FontStyle::Normal, FONT_BYTES);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_keeps_its_colour_and_seeds_share_their_family_hue() {
        let c = Colours::new(["topk", "topk-seed2", "dense", "dense-sae"]);
        assert_eq!(c.model("topk").colour, PALETTE[0]);
        assert_eq!(c.model("dense").colour, PALETTE[1]);
        assert_eq!(c.model("dense-sae").colour, PALETTE[2]);
        let seed2 = c.model("topk-seed2");
        assert_eq!(
            seed2,
            c.model("topk").lighter(0.45).with_marker(Marker::Triangle)
        );
        // Asking again, or in another order, gives the same answer.
        assert_eq!(c.model("unknown-x"), c.model("unknown-x"));
        let mut labels = [
            "x (index)",
            "dense",
            "topk-seed2 (matching)",
            "topk (index)",
        ];
        labels.sort_by_key(|l| c.rank(l));
        assert_eq!(
            labels,
            [
                "topk (index)",
                "topk-seed2 (matching)",
                "dense",
                "x (index)"
            ]
        );
    }
}
