#!/usr/bin/env python3
"""Seed inputs of fuzz_server: a route byte (% 6: 0 chat, 1 completions, 2 native,
3 infill, 4 Ollama generate, 5 Ollama chat; / 6 picks the finish reason) and a request body."""
import json
import sys
from pathlib import Path

SEEDS = [
    (0, {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
         "max_tokens": 8, "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}),
    (0, {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}],
         "logprobs": True, "top_logprobs": 3, "stop": ["\n", "</s>"], "logit_bias": {"42": -100}}),
    (1, {"prompt": "The capital of France is", "max_tokens": 4, "logprobs": 2, "seed": 7, "top_k": 5}),
    (1, {"prompt": [1, 2, 3, 4], "stop": "x", "logit_bias": [[5, False]], "frequency_penalty": 0.5}),
    (2, {"prompt": "<|im_start|>user\nhello<|im_end|>", "n_predict": 3, "cache_prompt": False, "n_probs": 2}),
    (3, {"input_prefix": "def f(x):\n", "input_suffix": "\n    return y", "prompt": "y =",
         "input_extra": [{"filename": "a.py", "text": "import os"}]}),
    (6 + 1, {"prompt": "\u00e9\u4e2d\U0001F600", "max_tokens": 1}),
    (4, {"model": "m", "prompt": "Why?", "system": "Be brief.", "options": {"temperature": 0, "num_predict": 4,
         "stop": ["\n"], "num_ctx": 64, "seed": 3}, "keep_alive": "1h30m", "stream": False}),
    (4, {"prompt": "Q", "template": "{{- if .System }}{{ .System }}{{ else }}none{{ end -}} {{ .Prompt }}",
         "context": [1, 2, 3], "keep_alive": -1}),
    (6 + 4, {"prompt": "def f(", "suffix": "return x", "raw": True, "keep_alive": 0}),
    (4, {"model": "m", "keep_alive": "0"}),
    (5, {"messages": [{"role": "user", "content": "Hi"}], "format": "json", "options": {"top_k": 3}}),
    (6 * 2 + 5, {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}], "stream": True}),
]


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for i, (route, body) in enumerate(SEEDS):
        (out / f"seed{i}").write_bytes(bytes([route]) + json.dumps(body).encode())
    (out / "bad_utf8").write_bytes(b"\x01" + b'{"prompt": "\xff\xfe\xc3", "max_tokens": 1}')


if __name__ == "__main__":
    main()
