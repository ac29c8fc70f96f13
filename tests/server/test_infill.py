"""/infill on a model with FIM tokens: llama-server's answers (tests/fixtures/server_infill.json,
made by make_infill_fixture.py) on a synthetic deepseek-coder made by synth-model."""

import json
import os
import subprocess

import pytest

from conftest import CLI_BIN, ROOT, SANITIZER_ENV, SERVER_BIN, Server, timeout

FIXTURE = json.loads((ROOT / "tests/fixtures/server_infill.json").read_text())
SYNTH_BIN = os.environ.get("KINFER_SYNTH_BIN", str(SERVER_BIN.parent / "synth-model"))


@pytest.fixture(scope="module")
def coder_server(tmp_path_factory):
    if not os.path.isfile(SYNTH_BIN):
        pytest.skip(f"no synth-model at {SYNTH_BIN} (make {SERVER_BIN.parent}/synth-model)")
    model = tmp_path_factory.mktemp("coder") / "coder.gguf"
    args = FIXTURE["model"].split()[1:]  # "synth-model -s deepseek-coder-1.3b -f Q4_0 --layers 2"
    subprocess.run([SYNTH_BIN, *args, "-o", str(model)], check=True, capture_output=True,
                   env=dict(os.environ, **SANITIZER_ENV), timeout=timeout(60))
    srv = Server(*FIXTURE["server_flags"], name="coder_server")
    srv.args[srv.args.index("-m") + 1] = str(model)
    srv.start()
    try:
        yield srv
    finally:
        status = srv.stop()
        model.unlink()
        assert status == 0, f"coder_server exited {status} after SIGTERM:\n{srv.stderr_tail()}"


@pytest.mark.parametrize("case", FIXTURE["cases"], ids=lambda c: f"prefix{len(c['request']['input_prefix'])}")
def test_infill_matches_llama_server(coder_server, case):
    r = coder_server.post("/infill", case["request"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["tokens_evaluated"] == case["tokens_evaluated"]
    assert body["content"] == case["content"]


def test_infill_wrong_types(coder_server):
    r = coder_server.post("/infill", {"input_prefix": 5, "input_suffix": ""})
    assert r.status_code == 400 and "input_prefix" in r.json()["error"]["message"]
    r = coder_server.post("/infill", {"input_prefix": "", "input_suffix": "", "input_extra": "x"})
    assert r.status_code == 400 and "input_extra" in r.json()["error"]["message"]


def _replaced(text):
    """Text with each run of U+FFFD as one (Python and llama-server replace stray bytes differently)."""
    import re
    return re.sub("\ufffd+", "\ufffd", text)


def test_cli_fim_matches_llama_server(coder_server):
    """kinfer-cli --fim-prefix/--fim-suffix builds the same prompt: the same greedy text."""
    case = next(c for c in FIXTURE["cases"] if "input_extra" not in c["request"])
    req = case["request"]
    model = coder_server.args[coder_server.args.index("-m") + 1]
    out = subprocess.run([str(CLI_BIN), "-m", model, "--fim-prefix", req["input_prefix"],
                          "--fim-suffix", req["input_suffix"], "-n", str(req["n_predict"]), "--temp", "0",
                          "-b", "64", "-t", "2"],
                         capture_output=True, env=dict(os.environ, **SANITIZER_ENV), timeout=timeout(120))
    assert out.returncode == 0, out.stderr.decode(errors="replace")[-2000:]
    text = out.stdout.decode("utf-8", errors="replace")
    assert text.endswith("\n")
    assert _replaced(text[:-1]) == _replaced(case["content"])
