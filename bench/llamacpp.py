"""llama.cpp, the reference, built from the llama-cpp-python source package
on PyPI (it vendors llama.cpp) into a cache outside the repository, once per
(version, backend).  Nothing of it is committed.  bench/compare uses
llama-bench, bench/server-bench llama-server.
"""
import os
import subprocess
import sys
import tarfile
from pathlib import Path

LLAMA_CPP_PYTHON = "0.3.36"  # the llama.cpp it vendors is the reference
DEFAULT_CACHE = os.environ.get("KINFER_CACHE", str(Path.home() / ".cache" / "kinfer"))


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def build(target: str, cache: Path = Path(DEFAULT_CACHE), cuda: bool = False) -> Path:
    """The path of llama.cpp's program `target` (llama-bench, llama-server), built if needed."""
    out = cache / f"build-{'cuda' if cuda else 'cpu'}"
    exe = out / "bin" / target
    if exe.exists():
        return exe
    cache.mkdir(parents=True, exist_ok=True)
    src = cache / f"llama_cpp_python-{LLAMA_CPP_PYTHON}"
    if not src.exists():
        log(f"llamacpp: fetching llama-cpp-python {LLAMA_CPP_PYTHON} source from PyPI")
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--no-binary", ":all:", f"llama-cpp-python=={LLAMA_CPP_PYTHON}",
                        "-d", str(cache)], check=True)
        with tarfile.open(cache / f"llama_cpp_python-{LLAMA_CPP_PYTHON}.tar.gz") as tf:
            tf.extractall(cache)
    llama = src / "vendor" / "llama.cpp"
    log(f"llamacpp: building {target} ({'CUDA' if cuda else 'CPU'}) in {out}")
    subprocess.run(["cmake", "-S", str(llama), "-B", str(out), "-DCMAKE_BUILD_TYPE=Release",
                    "-DGGML_NATIVE=ON", "-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_CURL=OFF",
                    "-DLLAMA_OPENSSL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_SERVER=ON",
                    f"-DGGML_CUDA={'ON' if cuda else 'OFF'}"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", str(out), "-j", str(os.cpu_count() or 2),
                    "--target", target], check=True, stdout=subprocess.DEVNULL)
    return exe
