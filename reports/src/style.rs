//! Colours, markers and the bundled font.

use plotters::style::RGBColor;
use std::sync::Once;

/// Okabe–Ito colours: distinguishable with colour blindness; paired with markers so series
/// also survive greyscale printing.
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(230, 159, 0),   // orange
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(240, 228, 66),  // yellow
    RGBColor(0, 0, 0),       // black
];

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
