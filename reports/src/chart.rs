//! Line charts (with optional bands) and bar charts, each written as PNG, SVG and CSV.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::style::{FONT, PALETTE, register_font};
use crate::{Error, Result};

/// PNG size: 1800 × 1200 px is 6 × 4 inches at 300 dpi, print resolution for a paper figure.
const PNG_SIZE: (u32, u32) = (1800, 1200);
/// SVG size in user units.
const SVG_SIZE: (u32, u32) = (900, 600);

/// One line, with an optional band (e.g. inter-quartile range) around it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub label: String,
    /// (x, y), in x order.
    pub points: Vec<(f64, f64)>,
    /// (x, low, high), drawn as a shaded band.
    pub band: Vec<(f64, f64, f64)>,
}

/// A line chart.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// Plot x on a log10 axis (non-positive x are dropped).
    pub log_x: bool,
    pub series: Vec<Series>,
}

/// Grouped bars over shared categories (e.g. histogram bins).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BarChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// Category labels along x.
    pub categories: Vec<String>,
    /// (label, one value per category).
    pub groups: Vec<(String, Vec<f64>)>,
}

/// Files written for one figure.
#[derive(Debug, Clone)]
pub struct Figure {
    pub png: PathBuf,
    pub svg: PathBuf,
    pub csv: PathBuf,
}

fn files(stem: &Path) -> Figure {
    Figure {
        png: stem.with_extension("png"),
        svg: stem.with_extension("svg"),
        csv: stem.with_extension("csv"),
    }
}

fn draw_err<E: std::fmt::Debug>(path: &Path) -> impl FnOnce(E) -> Error + '_ {
    move |e| Error::Draw {
        path: path.to_owned(),
        message: format!("{e:?}"),
    }
}

/// Draws on a PNG and an SVG backend, each written under a temporary name then renamed.
fn render_both(
    stem: &Path,
    draw: impl Fn(DrawingArea<BitMapBackend, Shift>) -> std::result::Result<(), String> + Copy,
    draw_svg: impl Fn(DrawingArea<SVGBackend, Shift>) -> std::result::Result<(), String>,
) -> Result<Figure> {
    register_font();
    let f = files(stem);
    if let Some(parent) = stem.parent() {
        std::fs::create_dir_all(parent).map_err(Error::io(parent))?;
    }
    let tmp_png = f.png.with_extension("tmp.png");
    {
        let root = BitMapBackend::new(&tmp_png, PNG_SIZE).into_drawing_area();
        draw(root).map_err(draw_err(&f.png))?;
    }
    std::fs::rename(&tmp_png, &f.png).map_err(Error::io(&f.png))?;
    let tmp_svg = f.svg.with_extension("tmp.svg");
    {
        let root = SVGBackend::new(&tmp_svg, SVG_SIZE).into_drawing_area();
        draw_svg(root).map_err(draw_err(&f.svg))?;
    }
    std::fs::rename(&tmp_svg, &f.svg).map_err(Error::io(&f.svg))?;
    Ok(f)
}

fn write_csv(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("csv.tmp");
    std::fs::write(&tmp, text).map_err(Error::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(Error::io(path))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

impl LineChart {
    fn x(&self, x: f64) -> Option<f64> {
        if self.log_x {
            (x > 0.0).then(|| x.log10())
        } else {
            Some(x)
        }
    }

    fn ranges(&self) -> ((f64, f64), (f64, f64)) {
        let xs = self
            .series
            .iter()
            .flat_map(|s| {
                s.points
                    .iter()
                    .map(|p| p.0)
                    .chain(s.band.iter().map(|b| b.0))
            })
            .filter_map(|x| self.x(x));
        let ys = self.series.iter().flat_map(|s| {
            s.points
                .iter()
                .map(|p| p.1)
                .chain(s.band.iter().flat_map(|b| [b.1, b.2]))
        });
        let span = |it: &mut dyn Iterator<Item = f64>| {
            let (lo, hi) = it
                .filter(|v| v.is_finite())
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                    (a.min(v), b.max(v))
                });
            if !lo.is_finite() {
                (0.0, 1.0)
            } else if hi - lo < 1e-12 {
                (lo - 0.5, hi + 0.5)
            } else {
                let pad = 0.05 * (hi - lo);
                (lo - pad, hi + pad)
            }
        };
        (span(&mut xs.into_iter()), span(&mut ys.into_iter()))
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: DrawingArea<DB, Shift>,
        scale: f64,
    ) -> std::result::Result<(), String> {
        let px = |v: f64| (v * scale) as u32;
        root.fill(&WHITE).map_err(|e| format!("{e:?}"))?;
        let ((x0, x1), (y0, y1)) = self.ranges();
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, (FONT, px(22.0)))
            .margin(px(14.0))
            .x_label_area_size(px(48.0))
            .y_label_area_size(px(64.0))
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| format!("{e:?}"))?;
        let x_label = if self.log_x {
            format!("{} (log10)", self.x_label)
        } else {
            self.x_label.clone()
        };
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(&self.y_label)
            .label_style((FONT, px(14.0)))
            .axis_desc_style((FONT, px(16.0)))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(|e| format!("{e:?}"))?;
        for (i, s) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            if !s.band.is_empty() {
                let upper: Vec<(f64, f64)> = s
                    .band
                    .iter()
                    .filter_map(|b| self.x(b.0).map(|x| (x, b.2)))
                    .collect();
                let lower: Vec<(f64, f64)> = s
                    .band
                    .iter()
                    .rev()
                    .filter_map(|b| self.x(b.0).map(|x| (x, b.1)))
                    .collect();
                let poly: Vec<(f64, f64)> = upper.into_iter().chain(lower).collect();
                chart
                    .draw_series(std::iter::once(Polygon::new(
                        poly,
                        color.mix(0.18).filled(),
                    )))
                    .map_err(|e| format!("{e:?}"))?;
            }
            let pts: Vec<(f64, f64)> = s
                .points
                .iter()
                .filter_map(|p| self.x(p.0).map(|x| (x, p.1)))
                .filter(|p| p.1.is_finite())
                .collect();
            let style = ShapeStyle {
                color: color.to_rgba(),
                filled: true,
                stroke_width: px(2.5),
            };
            chart
                .draw_series(LineSeries::new(pts.clone(), style))
                .map_err(|e| format!("{e:?}"))?
                .label(&s.label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
            // Markers differ by series, so lines stay apart in greyscale.
            let size = px(4.0) as i32;
            match i % 3 {
                0 => chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, size, style)))
                    .map(|_| ()),
                1 => chart
                    .draw_series(pts.iter().map(|&p| TriangleMarker::new(p, size + 1, style)))
                    .map(|_| ()),
                _ => chart
                    .draw_series(pts.iter().map(|&p| Cross::new(p, size, style)))
                    .map(|_| ()),
            }
            .map_err(|e| format!("{e:?}"))?;
        }
        chart
            .configure_series_labels()
            .label_font((FONT, px(14.0)))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| format!("{e:?}"))?;
        root.present().map_err(|e| format!("{e:?}"))
    }

    /// The plotted numbers as CSV: series, x, y, band low, band high.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("series,x,y,low,high\n");
        for s in &self.series {
            for &(x, y) in &s.points {
                let band = s.band.iter().find(|b| b.0 == x);
                let _ = writeln!(
                    out,
                    "{},{x},{y},{},{}",
                    csv_field(&s.label),
                    band.map_or(String::new(), |b| b.1.to_string()),
                    band.map_or(String::new(), |b| b.2.to_string())
                );
            }
        }
        out
    }

    /// Writes `<stem>.png`, `<stem>.svg` and `<stem>.csv`.
    pub fn write(&self, stem: &Path) -> Result<Figure> {
        let f = render_both(stem, |r| self.draw(r, 2.0), |r| self.draw(r, 1.0))?;
        write_csv(&f.csv, &self.to_csv())?;
        Ok(f)
    }
}

impl BarChart {
    fn draw<DB: DrawingBackend>(
        &self,
        root: DrawingArea<DB, Shift>,
        scale: f64,
    ) -> std::result::Result<(), String> {
        let px = |v: f64| (v * scale) as u32;
        root.fill(&WHITE).map_err(|e| format!("{e:?}"))?;
        let n = self.categories.len().max(1);
        let g = self.groups.len().max(1);
        let y_max = self
            .groups
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .fold(0.0f64, f64::max)
            .max(1e-9)
            * 1.1;
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, (FONT, px(22.0)))
            .margin(px(14.0))
            .x_label_area_size(px(56.0))
            .y_label_area_size(px(64.0))
            .build_cartesian_2d(0.0..n as f64, 0.0..y_max)
            .map_err(|e| format!("{e:?}"))?;
        let cats = self.categories.clone();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .x_labels(n.min(12))
            .x_label_formatter(&|x| cats.get(x.floor() as usize).cloned().unwrap_or_default())
            .label_style((FONT, px(13.0)))
            .axis_desc_style((FONT, px(16.0)))
            .draw()
            .map_err(|e| format!("{e:?}"))?;
        let width = 0.8 / g as f64;
        for (j, (label, values)) in self.groups.iter().enumerate() {
            let color = PALETTE[j % PALETTE.len()];
            // Alternate solid and hollow bars, so groups differ in greyscale too.
            let style = if j % 2 == 0 {
                color.filled()
            } else {
                ShapeStyle {
                    color: color.to_rgba(),
                    filled: false,
                    stroke_width: px(2.0),
                }
            };
            chart
                .draw_series(values.iter().enumerate().map(|(i, &v)| {
                    let x = i as f64 + 0.1 + j as f64 * width;
                    Rectangle::new([(x, 0.0), (x + width, v)], style)
                }))
                .map_err(|e| format!("{e:?}"))?
                .label(label)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], style));
        }
        chart
            .configure_series_labels()
            .label_font((FONT, px(14.0)))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| format!("{e:?}"))?;
        root.present().map_err(|e| format!("{e:?}"))
    }

    /// The plotted numbers as CSV: group, category, value.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("group,category,value\n");
        for (label, values) in &self.groups {
            for (c, v) in self.categories.iter().zip(values) {
                let _ = writeln!(out, "{},{},{v}", csv_field(label), csv_field(c));
            }
        }
        out
    }

    /// Writes `<stem>.png`, `<stem>.svg` and `<stem>.csv`.
    pub fn write(&self, stem: &Path) -> Result<Figure> {
        let f = render_both(stem, |r| self.draw(r, 2.0), |r| self.draw(r, 1.0))?;
        write_csv(&f.csv, &self.to_csv())?;
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_chart_writes_png_svg_and_the_plotted_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let chart = LineChart {
            title: "Validation loss".into(),
            x_label: "tokens".into(),
            y_label: "loss (nats)".into(),
            log_x: false,
            series: vec![Series {
                label: "topk".into(),
                points: vec![(0.0, 7.0), (100.0, 4.5)],
                band: vec![(0.0, 6.5, 7.5), (100.0, 4.0, 5.0)],
            }],
        };
        let f = chart.write(&dir.path().join("loss")).unwrap();
        assert!(std::fs::metadata(&f.png).unwrap().len() > 1000);
        let svg = std::fs::read_to_string(&f.svg).unwrap();
        assert!(svg.contains("Validation loss") && svg.contains("topk"));
        assert_eq!(
            std::fs::read_to_string(&f.csv).unwrap(),
            "series,x,y,low,high\ntopk,0,7,6.5,7.5\ntopk,100,4.5,4,5\n"
        );
    }

    #[test]
    fn bar_chart_csv_matches_its_data() {
        let chart = BarChart {
            categories: vec!["a".into(), "b".into()],
            groups: vec![("g, 1".into(), vec![1.0, 2.5])],
            ..Default::default()
        };
        assert_eq!(
            chart.to_csv(),
            "group,category,value\n\"g, 1\",a,1\n\"g, 1\",b,2.5\n"
        );
    }
}
