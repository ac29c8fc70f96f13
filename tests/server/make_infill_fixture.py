#!/usr/bin/env python3
"""Golden answers of llama-server's /infill on a synthetic coder model.

    build/bin/synth-model -s deepseek-coder-1.3b -f Q4_0 --layers 2 -o /tmp/coder.gguf
    llama-server -m /tmp/coder.gguf --port 18090 -c 2048 -np 1 -b 64 -ub 64 -t 2 -fa off
    python3 tests/server/make_infill_fixture.py http://127.0.0.1:18090 > tests/fixtures/server_infill.json

test_infill.py starts kinfer-server with the same flags on the same file and
expects the same prompt length and greedy text.
"""
import json
import sys
import urllib.request

CASES = [
    {"input_prefix": "def add(a, b):\n    ", "input_suffix": "\n    return c\n", "prompt": "c =",
     "input_extra": [{"filename": "util.py", "text": "import os\n"}]},
    {"input_prefix": "x", "input_suffix": "y"},
    # a prefix longer than 3/4 of -b and a suffix longer than what is left:
    # both are cut the way llama-server cuts them
    {"input_prefix": "for i in range(10):\n    print(i)\n" * 12, "input_suffix": "# end\n" * 30,
     "input_extra": [{"text": "no filename here"}, {"filename": "b.py", "text": "B = 2\n"}]},
]


def main():
    base = sys.argv[1]
    out = []
    for case in CASES:
        body = dict(case, n_predict=12, temperature=0)
        req = urllib.request.Request(base + "/infill", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req) as resp:
            answer = json.load(resp)
        out.append({"request": body, "content": answer["content"],
                    "tokens_evaluated": answer["tokens_evaluated"]})
    json.dump({"model": "synth-model -s deepseek-coder-1.3b -f Q4_0 --layers 2",
               "server_flags": ["-c", "2048", "-np", "1", "-b", "64", "-ub", "64"],
               "cases": out}, sys.stdout, indent=1, ensure_ascii=False)
    print()


if __name__ == "__main__":
    main()
