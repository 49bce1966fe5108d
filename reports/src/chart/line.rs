//! Line charts: small multiples sharing their axes, legend beside them.

use std::fmt::Write as _;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::legend::{self, Swatch};
use super::ticks::Axis;
use super::{
    Figure, Intervals, KeyedAxis, LineChart, Marker, Series, Style, csv_field, msg, write_figure,
};
use crate::style::FONT;

/// Horizontal distance between side-by-side error bars, in x units.
const DODGE: f64 = 0.09;

/// The figure's shape, in SVG units.
struct Layout {
    cols: usize,
    rows: usize,
    legend_width: u32,
    size: (u32, u32),
}

fn layout(panels: usize, labels: &[&str]) -> Layout {
    let panels = panels.max(1);
    let cols = match panels {
        1..=3 => panels,
        4 => 2,
        _ => 3,
    };
    let rows = panels.div_ceil(cols);
    let (panel_w, panel_h) = match (cols, rows) {
        (1, 1) => (680, 520),
        (_, 1) => (470, 470),
        _ => (450, 360),
    };
    let legend_width = legend::width(labels);
    Layout {
        cols,
        rows,
        legend_width,
        size: (
            cols as u32 * panel_w + legend_width,
            rows as u32 * panel_h + super::TITLE_HEIGHT,
        ),
    }
}

/// Padded (low, high) of finite values; a flat or empty range is widened.
fn span(values: impl Iterator<Item = f64>, pad: f64) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        (0.0, 1.0)
    } else if hi - lo < 1e-12 {
        (lo - 0.5, hi + 0.5)
    } else {
        let pad = pad * (hi - lo);
        (lo - pad, hi + pad)
    }
}

impl LineChart {
    fn series(&self) -> impl Iterator<Item = &Series> {
        self.panels.iter().flat_map(|p| &p.series)
    }

    /// Every series label once, in first-seen order, with its style: a series without one
    /// takes the chart's next default, the same in every panel.
    pub(super) fn legend(&self) -> Vec<(String, Style)> {
        let mut out: Vec<(String, Style)> = Vec::new();
        for s in self.series() {
            if !out.iter().any(|(l, _)| *l == s.label) {
                let style = s.style.unwrap_or_else(|| Style::nth(out.len()));
                out.push((s.label.clone(), style));
            }
        }
        out
    }

    /// Ranges of both axes in plot coordinates, shared by every panel.
    fn ranges(&self) -> ((f64, f64), (f64, f64)) {
        let xs = self.series().flat_map(|s| {
            s.points
                .iter()
                .map(|p| p.0)
                .chain(s.band.iter().map(|b| b.0))
        });
        let xs = xs.filter_map(|x| self.x_axis.position(x));
        let x = if self.x_axis == Axis::Integer {
            // Room for side-by-side error bars and markers at the edges.
            let (lo, hi) = span(xs, 0.0);
            (lo - 0.4, hi + 0.4)
        } else {
            span(xs, 0.04)
        };
        let ys = self.series().flat_map(|s| {
            s.points
                .iter()
                .map(|p| p.1)
                .chain(s.band.iter().flat_map(|b| [b.1, b.2]))
        });
        // Counts start from zero.
        let zero = (self.y_axis == Axis::Integer).then_some(0.0);
        (x, span(ys.chain(self.reference_y).chain(zero), 0.06))
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: DrawingArea<DB, Shift>,
        scale: f64,
    ) -> std::result::Result<(), String> {
        let px = |v: f64| (v * scale).round() as u32;
        let entries = self.legend();
        let labels: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        let shape = layout(self.panels.len(), &labels);
        let (plots, legend_area) = super::frame(root, &self.title, shape.legend_width, scale)?;
        let ((x0, x1), (y0, y1)) = self.ranges();
        let x_ticks = self.x_axis.ticks(x0, x1);
        let y_ticks = self.y_axis.ticks(y0, y1);
        let areas = plots.split_evenly((shape.rows, shape.cols));
        for (k, (panel, area)) in self.panels.iter().zip(&areas).enumerate() {
            let (row, col) = (k / shape.cols, k % shape.cols);
            let mut builder = ChartBuilder::on(area);
            if !panel.title.is_empty() {
                builder.caption(&panel.title, (FONT, 17.0 * scale));
            }
            let mut chart = builder
                .margin(px(10.0))
                .x_label_area_size(px(46.0))
                .y_label_area_size(px(62.0))
                .build_cartesian_2d(
                    KeyedAxis::new((x0, x1), x_ticks.clone()),
                    KeyedAxis::new((y0, y1), y_ticks.clone()),
                )
                .map_err(msg)?;
            let x_desc = if row + 1 == shape.rows || areas.len() - k <= shape.cols {
                self.x_label.as_str()
            } else {
                ""
            };
            let y_desc = if col == 0 { self.y_label.as_str() } else { "" };
            chart
                .configure_mesh()
                .x_desc(x_desc)
                .y_desc(y_desc)
                .x_label_formatter(&|v| x_ticks.label_at(*v))
                .y_label_formatter(&|v| y_ticks.label_at(*v))
                .label_style((FONT, 14.0 * scale))
                .axis_desc_style((FONT, 16.0 * scale))
                .bold_line_style(RGBColor(215, 215, 215))
                .light_line_style(RGBColor(240, 240, 240))
                .draw()
                .map_err(msg)?;
            if let Some(y) = self.reference_y {
                chart
                    .draw_series(LineSeries::new(
                        [(x0, y), (x1, y)],
                        BLACK.mix(0.6).stroke_width(px(1.2)),
                    ))
                    .map_err(msg)?;
            }
            let n = panel.series.len();
            for (i, s) in panel.series.iter().enumerate() {
                let style = entries
                    .iter()
                    .find(|e| e.0 == s.label)
                    .map_or(Style::nth(i), |e| e.1);
                let dodge =
                    if self.intervals == Intervals::ErrorBars && self.x_axis == Axis::Integer {
                        (i as f64 - (n as f64 - 1.0) / 2.0) * DODGE
                    } else {
                        0.0
                    };
                let at = |x: f64| self.x_axis.position(x).map(|p| p + dodge);
                let stroke = ShapeStyle {
                    color: style.colour.to_rgba(),
                    filled: true,
                    stroke_width: px(2.2),
                };
                let band: Vec<(f64, f64, f64)> = s
                    .band
                    .iter()
                    .filter_map(|&(x, lo, hi)| Some((at(x)?, lo, hi)))
                    .filter(|b| b.1.is_finite() && b.2.is_finite())
                    .collect();
                match self.intervals {
                    Intervals::Band if !band.is_empty() => {
                        let upper = band.iter().map(|b| (b.0, b.2));
                        let lower = band.iter().rev().map(|b| (b.0, b.1));
                        chart
                            .draw_series(std::iter::once(Polygon::new(
                                upper.chain(lower).collect::<Vec<_>>(),
                                style.colour.mix(0.16).filled(),
                            )))
                            .map_err(msg)?;
                    }
                    Intervals::ErrorBars => {
                        // A stem from low to high with a cap at each end.
                        let cap = px(5.0) as i32;
                        let caps = band.iter().flat_map(|&(x, lo, hi)| [(x, lo), (x, hi)]);
                        chart
                            .draw_series(band.iter().map(|&(x, lo, hi)| {
                                PathElement::new(vec![(x, lo), (x, hi)], stroke)
                            }))
                            .map_err(msg)?;
                        chart
                            .draw_series(caps.map(|at| {
                                EmptyElement::at(at)
                                    + PathElement::new(vec![(-cap, 0), (cap, 0)], stroke)
                            }))
                            .map_err(msg)?;
                    }
                    Intervals::Band => {}
                }
                let points: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .filter_map(|&(x, y)| Some((at(x)?, y)))
                    .filter(|p| p.1.is_finite())
                    .collect();
                chart
                    .draw_series(LineSeries::new(points.clone(), stroke))
                    .map_err(msg)?;
                let size = px(4.0) as i32;
                let at = points.iter().copied();
                match style.marker {
                    Marker::Circle => chart
                        .draw_series(at.map(|p| Circle::new(p, size, stroke)))
                        .map(drop),
                    Marker::Triangle => chart
                        .draw_series(at.map(|p| TriangleMarker::new(p, size + 1, stroke)))
                        .map(drop),
                    Marker::Square => chart
                        .draw_series(at.map(|p| {
                            EmptyElement::at(p)
                                + Rectangle::new([(-size, -size), (size, size)], stroke)
                        }))
                        .map(drop),
                    Marker::Cross => chart
                        .draw_series(at.map(|p| Cross::new(p, size, stroke)))
                        .map(drop),
                }
                .map_err(msg)?;
            }
        }
        let legend_entries: Vec<(String, Swatch)> = entries
            .into_iter()
            .map(|(l, s)| (l, Swatch::Line(s)))
            .collect();
        legend::draw(&legend_area, &legend_entries, px(40.0) as i32, scale)?;
        plots.present().map_err(msg)
    }

    /// The plotted numbers as CSV: panel, series, x, y, interval low, interval high.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("panel,series,x,y,low,high\n");
        for p in &self.panels {
            for s in &p.series {
                for &(x, y) in &s.points {
                    let band = s.band.iter().find(|b| b.0 == x);
                    let _ = writeln!(
                        out,
                        "{},{},{x},{y},{},{}",
                        csv_field(&p.title),
                        csv_field(&s.label),
                        band.map_or(String::new(), |b| b.1.to_string()),
                        band.map_or(String::new(), |b| b.2.to_string())
                    );
                }
            }
        }
        out
    }

    /// Writes `<stem>.png`, `<stem>.svg` and `<stem>.csv`.
    pub fn write(&self, stem: &Path) -> crate::Result<Figure> {
        let labels: Vec<String> = self.legend().into_iter().map(|e| e.0).collect();
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        let size = layout(self.panels.len(), &labels).size;
        write_figure(
            stem,
            size,
            |r| self.draw(r, super::PNG_SCALE),
            |r| self.draw(r, 1.0),
            &self.to_csv(),
        )
    }
}
