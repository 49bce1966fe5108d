//! Grouped bar charts, legend beside them.

use std::fmt::Write as _;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::legend::{self, Swatch};
use super::ticks::{Axis, Ticks};
use super::{BarChart, Figure, KeyedAxis, Style, csv_field, msg, write_figure};
use crate::style::FONT;

/// Size of the plot without the legend, in SVG units.
const PLOT: (u32, u32) = (700, 520);
/// At most this many category labels; the others keep their bars and lose their label.
const MAX_LABELS: usize = 16;

impl BarChart {
    fn legend(&self) -> Vec<(String, Swatch)> {
        self.groups
            .iter()
            .enumerate()
            .map(|(j, g)| {
                let style = g.style.unwrap_or_else(|| Style::nth(j));
                (
                    g.label.clone(),
                    Swatch::Bar(style, j % 2 == 0 || g.style.is_some()),
                )
            })
            .collect()
    }

    fn legend_width(&self) -> u32 {
        let labels: Vec<&str> = self.groups.iter().map(|g| g.label.as_str()).collect();
        legend::width(&labels)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: DrawingArea<DB, Shift>,
        scale: f64,
    ) -> std::result::Result<(), String> {
        let px = |v: f64| (v * scale).round() as u32;
        let (plot, legend_area) = super::frame(root, &self.title, self.legend_width(), scale)?;
        let n = self.categories.len().max(1);
        let g = self.groups.len().max(1);
        let y_max = self
            .groups
            .iter()
            .flat_map(|g| g.values.iter().copied())
            .fold(0.0f64, f64::max)
            .max(1e-9)
            * 1.08;
        // Bars count things: whole-number ticks.
        let y_ticks = Axis::Integer.ticks(0.0, y_max);
        let every = n.div_ceil(MAX_LABELS);
        let x_ticks = Ticks {
            major: (0..n)
                .step_by(every)
                .map(|i| (i as f64 + 0.5, String::new()))
                .collect(),
            minor: vec![],
        };
        let mut chart = ChartBuilder::on(&plot)
            .margin(px(14.0))
            .x_label_area_size(px(56.0))
            .y_label_area_size(px(72.0))
            .build_cartesian_2d(
                KeyedAxis::new((0.0, n as f64), x_ticks),
                KeyedAxis::new((0.0, y_max), y_ticks.clone()),
            )
            .map_err(msg)?;
        let cats = &self.categories;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .x_label_formatter(&|x| cats.get(x.floor() as usize).cloned().unwrap_or_default())
            .y_label_formatter(&|v| y_ticks.label_at(*v))
            .label_style((FONT, 13.0 * scale))
            .axis_desc_style((FONT, 16.0 * scale))
            .bold_line_style(RGBColor(225, 225, 225))
            .draw()
            .map_err(msg)?;
        let width = 0.8 / g as f64;
        let entries = self.legend();
        for (j, (group, (_, swatch))) in self.groups.iter().zip(&entries).enumerate() {
            let Swatch::Bar(style, filled) = *swatch else {
                continue;
            };
            // Hollow and solid bars alternate when no style is given, so groups differ in
            // greyscale too.
            let shape = ShapeStyle {
                color: style.colour.to_rgba(),
                filled,
                stroke_width: px(2.0),
            };
            chart
                .draw_series(group.values.iter().enumerate().map(|(i, &v)| {
                    let x = i as f64 + 0.1 + j as f64 * width;
                    Rectangle::new([(x, 0.0), (x + width, v)], shape)
                }))
                .map_err(msg)?;
        }
        legend::draw(&legend_area, &entries, px(40.0) as i32, scale)?;
        plot.present().map_err(msg)
    }

    /// The plotted numbers as CSV: group, category, value.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("group,category,value\n");
        for g in &self.groups {
            for (c, v) in self.categories.iter().zip(&g.values) {
                let _ = writeln!(out, "{},{},{v}", csv_field(&g.label), csv_field(c));
            }
        }
        out
    }

    /// Writes `<stem>.png`, `<stem>.svg` and `<stem>.csv`.
    pub fn write(&self, stem: &Path) -> crate::Result<Figure> {
        let size = (PLOT.0 + self.legend_width(), PLOT.1 + super::TITLE_HEIGHT);
        write_figure(
            stem,
            size,
            |r| self.draw(r, super::PNG_SCALE),
            |r| self.draw(r, 1.0),
            &self.to_csv(),
        )
    }
}
