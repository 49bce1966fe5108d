//! Paper-ready charts (PNG and SVG, with the numbers as CSV beside each) and a self-contained
//! HTML report. Everything here takes plain structs; no query engine, no model.

pub mod chart;
mod error;
pub mod html;
pub mod style;

pub use error::{Error, Result};
