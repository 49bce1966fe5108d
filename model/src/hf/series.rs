//! A checkpoint series in Hugging Face format: a folder of revisions (`step0/`, `step1000/`,
//! … or any names that carry the step number), each a model folder.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The step number in a revision's name: its last run of digits (`step143000` → 143000,
/// `revision-2` → 2).
pub fn step_of(name: &str) -> Option<usize> {
    let digits: String = name
        .chars()
        .rev()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.chars().rev().collect::<String>().parse().ok()
}

/// Whether `dir` holds a series: subfolders that are model folders.
pub fn is_series(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.path().is_dir() && super::is_model_folder(&e.path()))
    })
}

/// The revisions of a series, by step. A model folder without a step number in its name, or
/// two with the same step, is an error naming them.
pub fn revisions(dir: &Path) -> Result<Vec<(usize, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(Error::io(dir))?.flatten() {
        let path = entry.path();
        if !path.is_dir() || !super::is_model_folder(&path) {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let step = step_of(&name).ok_or_else(|| {
            Error::import(
                &path,
                "a revision folder needs its step number in its name (step1000/, revision-1000/, 1000/)",
            )
        })?;
        out.push((step, path));
    }
    out.sort();
    if let Some(w) = out.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(Error::import(
            &w[1].1,
            format!("step {} also comes from {}", w[0].0, w[0].1.display()),
        ));
    }
    if out.is_empty() {
        return Err(Error::import(dir, "no revision folders with a config.json"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_come_from_the_last_number_in_the_name() {
        assert_eq!(step_of("step143000"), Some(143_000));
        assert_eq!(step_of("step0"), Some(0));
        assert_eq!(step_of("revision-2"), Some(2));
        assert_eq!(step_of("v1-step512-final"), Some(512));
        assert_eq!(step_of("main"), None);
    }
}
