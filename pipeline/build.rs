//! Records the versions of the dependencies that shape results (from Cargo.lock) so every
//! run's manifest can name them.
fn main() {
    const WANTED: &[&str] = &[
        "burn",
        "datafusion",
        "arrow",
        "parquet",
        "tokenizers",
        "plotters",
    ];
    let lock = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let text = std::fs::read_to_string(&lock).unwrap_or_default();
    let mut found = Vec::new();
    let mut name = None;
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"').to_owned());
        } else if let (Some(v), Some(n)) = (line.strip_prefix("version = "), name.take())
            && WANTED.contains(&n.as_str())
        {
            found.push(format!("{n}={}", v.trim_matches('"')));
        }
    }
    println!("cargo:rustc-env=PIPELINE_DEP_VERSIONS={}", found.join(","));
}
