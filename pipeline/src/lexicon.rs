//! The concept lexicon: lemma → concept (WordNet supersense of its most frequent sense), and
//! the small lemmatiser that maps a word in running text to a lemma.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// Lemma → concept id, and the concept names by id (id 0 is reserved for "no concept").
#[derive(Debug, Clone, Default)]
pub struct Lexicon {
    by_lemma: HashMap<String, u16>,
    /// `concepts[id - 1]` is the name of concept `id`.
    pub concepts: Vec<String>,
}

impl Lexicon {
    /// Reads a TSV (`lemma<TAB>concept[<TAB>senses]`, `#` comments, optionally gzipped).
    pub fn load(path: &Path) -> Result<Self> {
        let raw = std::fs::read(path).with_context(|| {
            format!(
                "cannot read the lexicon {}; set `data.lexicon` to a lemma<TAB>concept TSV",
                path.display()
            )
        })?;
        let text = if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
        {
            let mut s = String::new();
            // Every member of a concatenated gzip file (`cat a.gz b.gz`), as gunzip reads it.
            flate2::read::MultiGzDecoder::new(&raw[..])
                .read_to_string(&mut s)
                .with_context(|| format!("{}: not valid gzip text", path.display()))?;
            s
        } else {
            String::from_utf8(raw).with_context(|| format!("{}: not UTF-8", path.display()))?
        };
        Self::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// Parses the TSV text.
    pub fn parse(text: &str) -> Result<Self> {
        let mut lex = Self::default();
        let mut ids: HashMap<String, u16> = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let mut fields = line.split('\t');
            let (Some(lemma), Some(concept)) = (fields.next(), fields.next()) else {
                bail!(
                    "line {}: expected `lemma<TAB>concept`, found {line:?}",
                    i + 1
                );
            };
            let id = match ids.get(concept) {
                Some(&id) => id,
                None => {
                    // Concept ids are u16 in the tables, 0 meaning "no concept".
                    let Ok(id) = u16::try_from(lex.concepts.len() + 1) else {
                        bail!(
                            "line {}: concept {concept:?} is the 65,536th distinct concept; the tables hold at most 65,535 — merge concepts (e.g. WordNet supersenses)",
                            i + 1
                        );
                    };
                    lex.concepts.push(concept.to_owned());
                    ids.insert(concept.to_owned(), id);
                    id
                }
            };
            lex.by_lemma.insert(lemma.to_lowercase(), id);
        }
        Ok(lex)
    }

    /// Concept id of a word as it appears in text (normalised, then lemmatised).
    pub fn concept_of(&self, word: &str) -> Option<u16> {
        lemma_candidates(word)
            .into_iter()
            .find_map(|c| self.by_lemma.get(&c).copied())
    }

    /// Whether `word`'s concept is the one named `concept`.
    pub fn has_concept(&self, word: &str, concept: &str) -> bool {
        self.concept_of(word)
            .is_some_and(|id| self.name(id) == concept)
    }

    /// Name of a concept id.
    pub fn name(&self, id: u16) -> &str {
        &self.concepts[id as usize - 1]
    }

    /// Lemmas known.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.by_lemma.len()
    }
}

/// The lower-cased letters of a word with surrounding punctuation removed ("" if none).
pub fn normalise_word(word: &str) -> String {
    word.trim_matches(|c: char| !c.is_alphanumeric())
        .to_lowercase()
}

/// The word itself, then inflectional guesses (a tiny version of WordNet's morphy):
/// plural and verb endings stripped.
pub fn lemma_candidates(word: &str) -> Vec<String> {
    let w = normalise_word(word);
    let mut out = vec![w.clone()];
    let rules: &[(&str, &str)] = &[
        ("ies", "y"),
        ("ves", "f"),
        ("ses", "s"),
        ("xes", "x"),
        ("ches", "ch"),
        ("shes", "sh"),
        ("s", ""),
        ("ied", "y"),
        ("ed", ""),
        ("ed", "e"),
        ("ing", ""),
        ("ing", "e"),
        ("er", ""),
        ("est", ""),
    ];
    for (suffix, replacement) in rules {
        if let Some(stem) = w.strip_suffix(suffix)
            && stem.len() >= 2
        {
            out.push(format!("{stem}{replacement}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TSV: &str = "# lemma\tconcept\tsenses\ndog\tnoun.animal\tnoun.animal:42\nrun\tverb.motion\t\nberry\tnoun.plant\t\nbake\tverb.creation\t\n";

    #[test]
    fn words_in_text_find_their_concept() {
        let lex = Lexicon::parse(TSV).unwrap();
        let name = |w: &str| lex.concept_of(w).map(|id| lex.name(id).to_owned());
        assert_eq!(name("Dogs,").as_deref(), Some("noun.animal"));
        assert_eq!(name("running").as_deref(), None); // "runn" is not stripped to "run"
        assert_eq!(name("runs").as_deref(), Some("verb.motion"));
        assert_eq!(name("berries").as_deref(), Some("noun.plant"));
        assert_eq!(name("baked").as_deref(), Some("verb.creation"));
        assert_eq!(name("xyzzy"), None);
        assert_eq!(lex.concepts.len(), 4);
    }

    #[test]
    fn a_malformed_line_is_named() {
        let err = format!(
            "{:#}",
            Lexicon::parse("dog\tnoun.animal\ncat\n").unwrap_err()
        );
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn more_concepts_than_the_tables_hold_is_an_error_naming_the_line() {
        let text: String = (0..65_536).map(|i| format!("w{i}\tc{i}\n")).collect();
        let err = format!("{:#}", Lexicon::parse(&text).unwrap_err());
        assert!(
            err.contains("line 65536") && err.contains("65,535"),
            "{err}"
        );
        // One fewer fits, and the last concept gets the largest id.
        let lex = Lexicon::parse(&text[..text.find("w65535").unwrap()]).unwrap();
        assert_eq!(lex.concepts.len(), 65_535);
        assert_eq!(lex.concept_of("w65534"), Some(65_535));
    }

    #[test]
    fn concatenated_gzip_members_and_an_upper_case_extension_are_read_whole() {
        let gz = |text: &str| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut e, text.as_bytes()).unwrap();
            e.finish().unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lex.TSV.GZ");
        let mut bytes = gz("dog\tnoun.animal\n");
        bytes.extend(gz("bread\tnoun.food\n"));
        std::fs::write(&path, bytes).unwrap();
        let lex = Lexicon::load(&path).unwrap();
        assert_eq!(
            lex.concept_of("bread").map(|id| lex.name(id)),
            Some("noun.food")
        );
        assert_eq!(lex.concepts.len(), 2);
    }

    #[test]
    fn bundled_lexicon_labels_hand_checked_words() {
        let lex = Lexicon::load(&crate::config::bundled("data/lexicon.tsv.gz")).unwrap();
        let name = |w: &str| lex.concept_of(w).map(|id| lex.name(id).to_owned());
        assert_eq!(name("dog").as_deref(), Some("noun.animal"));
        assert_eq!(name("bread").as_deref(), Some("noun.food"));
        assert_eq!(name("ran"), None);
        assert_eq!(name("walked").as_deref(), Some("verb.motion"));
        assert!(lex.len() > 50_000);
    }
}
