#!/usr/bin/env bash
# Optional extras for a fresh Debian machine. The pipeline and its tests need only a Rust
# toolchain (1.95+): the corpus, lexicon and chart font ship in the repository.
#   - chromium: opens the HTML report headless in the browser test (skipped without it)
#   - wordnet-base, jargon-text: only to re-derive data/ with data/scripts/derive.py
set -euo pipefail
if ! command -v cargo >/dev/null; then
    echo "Rust is missing: install it with rustup (https://rustup.rs), version 1.95 or newer" >&2
    exit 1
fi
if command -v apt-get >/dev/null; then
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    $sudo_cmd apt-get install -y -qq chromium wordnet-base jargon-text
fi
echo "ready: run 'cargo pipeline run all'"
