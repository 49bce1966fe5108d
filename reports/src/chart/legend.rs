//! The legend, drawn in its own column to the right of the panels, never over the data.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{Marker, Style, msg};
use crate::style::FONT;

/// What an entry shows beside its label.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Swatch {
    Line(Style),
    Bar(Style, bool),
}

/// Font size of legend labels, in SVG units.
const FONT_SIZE: f64 = 14.0;

/// Width of the legend column for these labels, in SVG units.
pub fn width(labels: &[&str]) -> u32 {
    let chars = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    // DejaVu Sans averages a little over half an em per character.
    (52.0 + chars as f64 * FONT_SIZE * 0.58).clamp(110.0, 360.0) as u32
}

/// `marker` centred at `at` (any coordinate), `size` pixels from centre to edge.
pub fn marker<'a, DB: DrawingBackend + 'a, C: Clone + 'a>(
    marker: Marker,
    at: C,
    size: i32,
    style: ShapeStyle,
) -> DynElement<'a, DB, C> {
    let at = EmptyElement::at(at);
    match marker {
        Marker::Circle => (at + Circle::new((0, 0), size, style)).into_dyn(),
        Marker::Triangle => (at + TriangleMarker::new((0, 0), size + 1, style)).into_dyn(),
        Marker::Square => (at + Rectangle::new([(-size, -size), (size, size)], style)).into_dyn(),
        Marker::Cross => (at + Cross::new((0, 0), size, style)).into_dyn(),
    }
}

/// Draws the entries top-down from `top` pixels.
pub fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(String, Swatch)],
    top: i32,
    scale: f64,
) -> Result<(), String> {
    let px = |v: f64| (v * scale).round() as i32;
    let font = (FONT, FONT_SIZE * scale)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for (j, (label, swatch)) in entries.iter().enumerate() {
        let y = top + j as i32 * px(22.0);
        let x = px(8.0);
        match *swatch {
            Swatch::Line(style) => {
                let stroke = ShapeStyle {
                    color: style.colour.to_rgba(),
                    filled: true,
                    stroke_width: px(2.5) as u32,
                };
                area.draw(&PathElement::new(vec![(x, y), (x + px(28.0), y)], stroke))
                    .map_err(msg)?;
                area.draw(&marker(style.marker, (x + px(14.0), y), px(4.0), stroke))
                    .map_err(msg)?;
            }
            Swatch::Bar(style, filled) => {
                let shape = ShapeStyle {
                    color: style.colour.to_rgba(),
                    filled,
                    stroke_width: px(2.0) as u32,
                };
                area.draw(&Rectangle::new(
                    [(x + px(6.0), y - px(7.0)), (x + px(22.0), y + px(7.0))],
                    shape,
                ))
                .map_err(msg)?;
            }
        }
        area.draw(&Text::new(label.clone(), (x + px(36.0), y), font.clone()))
            .map_err(msg)?;
    }
    Ok(())
}
