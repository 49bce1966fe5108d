#!/usr/bin/env python3
"""Derive the bundled default data from Debian packages (no network).

    apt-get install wordnet-base jargon-text
    python3 data/scripts/derive.py

Writes, reproducibly (fixed seed, sorted inputs):
  data/corpus.txt.gz   documents separated by blank lines:
                       WordNet 3.0 glosses (definition + examples, one synset
                       a document, in a seeded shuffle) and the Jargon File's
                       paragraphs.
  data/lexicon.tsv.gz  lemma <TAB> concept <TAB> senses
                       concept = WordNet lexicographer file (supersense) of the
                       lemma's most frequent sense (SemCor tag counts from
                       cntlist.rev; WordNet's own sense order breaks ties);
                       senses  = every supersense of the lemma with its summed
                       tag count, e.g. "noun.animal:42;verb.motion:2".
"""
import gzip, os, random, re, sys, textwrap
from collections import defaultdict

WN = "/usr/share/wordnet"
JARGON = "/usr/share/doc/jargon-text/jargon.txt.gz"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SEED = 20250626  # the paper's arXiv month; any fixed value works
MAX_GLOSSES = 40000  # keeps the corpus at a few MB

# WordNet's 45 lexicographer files, by number (lexnames(5WN)).
LEXNAMES = """adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact
noun.attribute noun.body noun.cognition noun.communication noun.event noun.feeling
noun.food noun.group noun.location noun.motive noun.object noun.person noun.phenomenon
noun.plant noun.possession noun.process noun.quantity noun.relation noun.shape
noun.state noun.substance noun.time verb.body verb.change verb.cognition
verb.communication verb.competition verb.consumption verb.contact verb.creation
verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative
verb.weather adj.ppl""".split()
POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}


def read_data(pos):
    """offset -> (lexfile number, gloss) for one part of speech."""
    out = {}
    with open(f"{WN}/data.{POS_FILES[pos]}", encoding="latin-1") as f:
        for line in f:
            if line.startswith("  "):
                continue  # licence header
            head, _, gloss = line.partition(" | ")
            fields = head.split()
            out[fields[0]] = (int(fields[1]), gloss.strip())
    return out


def gloss_document(gloss):
    # "definition; "example one"; "example two"" -> prose sentences
    parts = [p.strip().strip('"').strip() for p in gloss.split(";")]
    parts = [p for p in parts if p]
    sentences = [p[0].upper() + p[1:] + ("" if p.endswith((".", "!", "?")) else ".") for p in parts]
    return " ".join(sentences)


def main():
    data = {pos: read_data(pos) for pos in POS_FILES}
    counts = {}
    with open(f"{WN}/cntlist.rev") as f:
        for line in f:
            key, _num, cnt = line.split()
            counts[key] = int(cnt)

    # Lexicon: lemma -> {lexfile: count}, with the order WordNet lists senses in.
    senses = defaultdict(lambda: defaultdict(int))
    first_seen = defaultdict(dict)
    for pos, name in POS_FILES.items():
        with open(f"{WN}/index.{name}", encoding="latin-1") as f:
            for line in f:
                if line.startswith("  "):
                    continue
                fields = line.split()
                lemma = fields[0]
                if "_" in lemma or not re.fullmatch(r"[a-z][a-z'-]*", lemma):
                    continue  # single lower-case words only
                synset_cnt = int(fields[2])
                offsets = fields[-synset_cnt:]
                for rank, off in enumerate(offsets):
                    lexnum, _ = data[pos][off]
                    lexname = LEXNAMES[lexnum]
                    senses[lemma][lexname] += 0  # counts added below
                    first_seen[lemma].setdefault(lexname, (rank, "nvar".index(pos)))
    # Tag counts per (lemma, lexfile) from sense keys lemma%ss:lexfile:...
    for key, cnt in counts.items():
        lemma, _, rest = key.partition("%")
        lexnum = int(rest.split(":")[1])
        lexname = LEXNAMES[lexnum]
        if lexname in first_seen.get(lemma, {}):
            senses[lemma][lexname] += cnt

    with gzip.GzipFile(os.path.join(OUT, "lexicon.tsv.gz"), "wb", mtime=0) as out:
        out.write(b"# lemma\tconcept\tsenses (WordNet 3.0 supersense:SemCor tag count)\n")
        for lemma in sorted(senses):
            by = senses[lemma]
            order = sorted(by, key=lambda lx: (-by[lx], first_seen[lemma][lx]))
            line = f"{lemma}\t{order[0]}\t" + ";".join(f"{lx}:{by[lx]}" for lx in order) + "\n"
            out.write(line.encode())

    # Corpus: glosses (seeded sample) and Jargon File paragraphs.
    docs = []
    for pos in sorted(data):
        for off in sorted(data[pos]):
            doc = gloss_document(data[pos][off][1])
            if len(doc.split()) >= 6:
                docs.append(doc)
    rng = random.Random(SEED)
    rng.shuffle(docs)
    docs = docs[:MAX_GLOSSES]

    with gzip.open(JARGON, "rt", encoding="utf-8") as f:
        text = f.read()
    for para in re.split(r"\n\s*\n", text):
        words = para.split()
        if len(words) < 25 or any(ord(c) > 127 for c in para):
            continue  # headings, tables, box drawing
        docs.append(" ".join(words))

    with gzip.GzipFile(os.path.join(OUT, "corpus.txt.gz"), "wb", mtime=0) as out:
        out.write("\n\n".join(docs).encode() + b"\n")
    print(f"lexicon: {len(senses)} lemmas; corpus: {len(docs)} documents, "
          f"{sum(len(d) for d in docs) / 1e6:.1f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()
