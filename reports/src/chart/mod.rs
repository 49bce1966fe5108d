//! Figures a paper can print: line charts (small multiples, intervals as bands or error bars)
//! and bar charts, each written as PNG, SVG and the plotted numbers as CSV. Legends sit
//! outside the data, ticks are round numbers with thousands separators (see [`ticks`]), and
//! every series may carry its model's [`Style`], so a model has one colour in every figure.

mod bar;
mod legend;
mod line;
pub mod ticks;

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::style::register_font;
pub use crate::style::{Colours, Marker, Style};
use crate::{Error, Result};
pub use ticks::Axis;

/// One line, with an optional interval (e.g. inter-quartile range or a bootstrap interval)
/// around it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub label: String,
    /// (x, y), in x order.
    pub points: Vec<(f64, f64)>,
    /// (x, low, high).
    pub band: Vec<(f64, f64, f64)>,
    /// Colour and marker; `None`: the chart's next default.
    pub style: Option<Style>,
}

/// How a series' interval is drawn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Intervals {
    /// A shaded band along the line.
    #[default]
    Band,
    /// An error bar at each point, series side by side (for a few categories such as layers).
    ErrorBars,
}

/// One panel of a line chart: small multiples share both axes' ranges.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Panel {
    /// Panel heading ("token entropy", "topk"); empty for a single-panel chart.
    pub title: String,
    pub series: Vec<Series>,
}

/// A line chart of one or more panels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_axis: Axis,
    /// `Linear`, or `Integer` for counts.
    pub y_axis: Axis,
    pub intervals: Intervals,
    /// A horizontal reference line, e.g. 0 for differences.
    pub reference_y: Option<f64>,
    pub panels: Vec<Panel>,
}

/// One group of bars: a value per category.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BarGroup {
    pub label: String,
    pub values: Vec<f64>,
    pub style: Option<Style>,
}

/// Grouped bars over shared categories (e.g. histogram bins).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BarChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// Category labels along x.
    pub categories: Vec<String>,
    pub groups: Vec<BarGroup>,
}

/// Files written for one figure.
#[derive(Debug, Clone)]
pub struct Figure {
    pub png: PathBuf,
    pub svg: PathBuf,
    pub csv: PathBuf,
}

/// The PNG has twice the SVG's size: a 900-unit-wide figure is 1,800 px, 6 inches at 300 dpi.
const PNG_SCALE: f64 = 2.0;

/// Draws on a PNG and an SVG backend and writes the CSV, each under a temporary name then
/// renamed. `size` is the SVG's size in user units.
fn write_figure(
    stem: &Path,
    size: (u32, u32),
    draw_png: impl Fn(DrawingArea<BitMapBackend, Shift>) -> std::result::Result<(), String>,
    draw_svg: impl Fn(DrawingArea<SVGBackend, Shift>) -> std::result::Result<(), String>,
    csv: &str,
) -> Result<Figure> {
    register_font();
    let f = Figure {
        png: stem.with_extension("png"),
        svg: stem.with_extension("svg"),
        csv: stem.with_extension("csv"),
    };
    if let Some(parent) = stem.parent() {
        std::fs::create_dir_all(parent).map_err(Error::io(parent))?;
    }
    let draw_err = |path: &Path| {
        let path = path.to_owned();
        move |message| Error::Draw { path, message }
    };
    let tmp_png = f.png.with_extension("tmp.png");
    let png_size = (
        (size.0 as f64 * PNG_SCALE) as u32,
        (size.1 as f64 * PNG_SCALE) as u32,
    );
    draw_png(BitMapBackend::new(&tmp_png, png_size).into_drawing_area())
        .map_err(draw_err(&f.png))?;
    std::fs::rename(&tmp_png, &f.png).map_err(Error::io(&f.png))?;
    let tmp_svg = f.svg.with_extension("tmp.svg");
    draw_svg(SVGBackend::new(&tmp_svg, size).into_drawing_area()).map_err(draw_err(&f.svg))?;
    std::fs::rename(&tmp_svg, &f.svg).map_err(Error::io(&f.svg))?;
    let tmp_csv = f.csv.with_extension("csv.tmp");
    std::fs::write(&tmp_csv, csv).map_err(Error::io(&tmp_csv))?;
    std::fs::rename(&tmp_csv, &f.csv).map_err(Error::io(&f.csv))?;
    Ok(f)
}

/// An axis whose grid lines are exactly the given [`ticks::Ticks`] (plotters would pick its
/// own otherwise); values map linearly between `lo` and `hi`.
struct KeyedAxis {
    linear: plotters::coord::types::RangedCoordf64,
    ticks: ticks::Ticks,
}

impl KeyedAxis {
    fn new((lo, hi): (f64, f64), ticks: ticks::Ticks) -> Self {
        Self {
            linear: (lo..hi).into(),
            ticks,
        }
    }
}

impl plotters::coord::ranged1d::Ranged for KeyedAxis {
    type FormatOption = plotters::coord::ranged1d::DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.linear.map(value, limit)
    }

    fn key_points<Hint: plotters::coord::ranged1d::KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.ticks.minor.clone()
        } else {
            self.ticks.major.iter().map(|m| m.0).collect()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.linear.range()
    }
}

/// Height of the figure's title row, in SVG units.
const TITLE_HEIGHT: u32 = 44;

/// (plot area, legend area).
type Areas<DB> = (DrawingArea<DB, Shift>, DrawingArea<DB, Shift>);

/// Fills the figure white, writes `title` centred in a row at the top and splits the rest
/// into the plot area and, on the right, a legend column `legend_width` SVG units wide.
fn frame<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    legend_width: u32,
    scale: f64,
) -> std::result::Result<Areas<DB>, String> {
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    root.fill(&WHITE).map_err(msg)?;
    let (top, rest) = root.split_vertically((TITLE_HEIGHT as f64 * scale) as u32);
    let (w, h) = top.dim_in_pixel();
    let font = (crate::style::FONT, 22.0 * scale)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Center));
    top.draw(&Text::new(
        title.to_owned(),
        (w as i32 / 2, h as i32 / 2),
        font,
    ))
    .map_err(msg)?;
    let (width, _) = rest.dim_in_pixel();
    Ok(rest.split_horizontally(width - (legend_width as f64 * scale).round() as u32))
}

/// plotters' errors as text (their types differ per backend).
fn msg<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text of every `<text>` element of an SVG: what a reader sees written.
    fn svg_texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                Some(
                    t.split_once('>')?
                        .1
                        .split_once("</text>")?
                        .0
                        .trim()
                        .to_owned(),
                )
            })
            .collect()
    }

    fn line(x_axis: Axis, points: Vec<(f64, f64)>) -> LineChart {
        LineChart {
            title: "Validation loss".into(),
            x_label: "tokens".into(),
            y_label: "loss (nats)".into(),
            x_axis,
            panels: vec![Panel {
                title: String::new(),
                series: vec![Series {
                    label: "topk".into(),
                    points,
                    ..Default::default()
                }],
            }],
            ..Default::default()
        }
    }

    #[test]
    fn line_chart_writes_png_svg_and_the_plotted_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let mut chart = line(Axis::Linear, vec![(0.0, 7.0), (100.0, 4.5)]);
        chart.panels[0].series[0].band = vec![(0.0, 6.5, 7.5), (100.0, 4.0, 5.0)];
        let f = chart.write(&dir.path().join("loss")).unwrap();
        assert!(std::fs::metadata(&f.png).unwrap().len() > 1000);
        let texts = svg_texts(&std::fs::read_to_string(&f.svg).unwrap());
        assert!(texts.iter().any(|t| t == "Validation loss"));
        assert!(texts.iter().any(|t| t == "topk"));
        assert_eq!(
            std::fs::read_to_string(&f.csv).unwrap(),
            "panel,series,x,y,low,high\n,topk,0,7,6.5,7.5\n,topk,100,4.5,4,5\n"
        );
    }

    #[test]
    fn the_drawn_tick_labels_are_the_intended_ones() {
        let dir = tempfile::tempdir().unwrap();
        let texts = |chart: &LineChart, name: &str| {
            let f = chart.write(&dir.path().join(name)).unwrap();
            svg_texts(&std::fs::read_to_string(f.svg).unwrap())
        };
        // Layers: whole numbers only.
        let layers = texts(
            &line(
                Axis::Integer,
                vec![(0.0, 0.8), (1.0, 0.82), (2.0, 0.79), (3.0, 0.84)],
            ),
            "layers",
        );
        for l in ["0", "1", "2", "3"] {
            assert!(layers.iter().any(|t| t == l), "{l} in {layers:?}");
        }
        assert!(
            !layers
                .iter()
                .any(|t| t == "0.5" || t == "1.5" || t == "2.5")
        );
        // Steps on a log axis: labelled in steps, step 0 included.
        let steps = texts(
            &line(
                Axis::Steps,
                vec![(0.0, 7.0), (10.0, 6.0), (100.0, 5.0), (600.0, 4.8)],
            ),
            "steps",
        );
        for l in ["0", "1", "10", "100", "500"] {
            assert!(steps.iter().any(|t| t == l), "{l} in {steps:?}");
        }
        assert!(!steps.iter().any(|t| t.contains("log10") || t == "2.5"));
        // Counts: thousands separators, no decimals.
        let counts = texts(&line(Axis::Linear, vec![(0.0, 0.0), (1.0, 120_000.0)]), "n");
        assert!(counts.iter().any(|t| t == "100,000"), "{counts:?}");
        assert!(!counts.iter().any(|t| t.contains("100000")));
    }

    #[test]
    fn small_multiples_share_one_legend_entry_per_label() {
        let series = |label: &str, style| Series {
            label: label.into(),
            points: vec![(0.0, 1.0), (1.0, 2.0)],
            style,
            ..Default::default()
        };
        let red = Style {
            colour: plotters::style::RGBColor(200, 0, 0),
            marker: Marker::Square,
        };
        let chart = LineChart {
            panels: vec![
                Panel {
                    title: "token".into(),
                    series: vec![series("a", None), series("b", Some(red))],
                },
                Panel {
                    title: "semantic".into(),
                    series: vec![series("b", Some(red)), series("a", None)],
                },
            ],
            ..Default::default()
        };
        let legend = chart.legend();
        assert_eq!(legend.len(), 2);
        assert_eq!(legend[0], ("a".to_owned(), Style::nth(0)));
        assert_eq!(legend[1], ("b".to_owned(), red));
        assert!(chart.to_csv().contains("semantic,b,1,2,,\n"));
    }

    #[test]
    fn bar_chart_csv_matches_its_data() {
        let chart = BarChart {
            categories: vec!["a".into(), "b".into()],
            groups: vec![BarGroup {
                label: "g, 1".into(),
                values: vec![1.0, 2.5],
                style: None,
            }],
            ..Default::default()
        };
        assert_eq!(
            chart.to_csv(),
            "group,category,value\n\"g, 1\",a,1\n\"g, 1\",b,2.5\n"
        );
    }
}
