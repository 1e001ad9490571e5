"""The real-judge harness (funreason_refine.testing.llama_server) without llama-cpp-python: a stand-in
server takes its command line, so that what the harness does with the process is tested on every run."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

STAND_IN = """
import http.server, os, sys
port = int(sys.argv[sys.argv.index("--port") + 1])
open(os.environ["PID_FILE"], "w").write(str(os.getpid()))

class Models(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"data": []}')

    def log_message(self, *args):
        pass

http.server.HTTPServer(("127.0.0.1", port), Models).serve_forever()
"""

PARENT = """
import sys, time
from pathlib import Path
from funreason_refine.testing.llama_server import llama_server
with llama_server(sys.argv[1], Path("model.gguf"), Path("server.log"), start_timeout=30) as url:
    print(url, flush=True)
    time.sleep(600)
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state  # a zombie has ended; it waits only to be reaped


@pytest.mark.skipif(sys.platform != "linux", reason="the server dies with its parent through prctl, on Linux")
def test_the_server_ends_when_the_process_that_started_it_is_killed(tmp_path):
    (tmp_path / "stand_in.py").write_text(STAND_IN)
    python = tmp_path / "python"  # what FUNREASON_LLAMA_PYTHON names: here it runs the stand-in with the arguments
    python.write_text(f'#!/bin/sh\nshift 2\nexec "{sys.executable}" "{tmp_path / "stand_in.py"}" "$@"\n')
    python.chmod(0o755)
    env = {**os.environ, "PID_FILE": str(tmp_path / "pid")}
    parent = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(PARENT), str(python)], cwd=tmp_path, env=env, stdout=subprocess.PIPE
    )
    try:
        assert parent.stdout is not None and parent.stdout.readline().startswith(b"http://127.0.0.1:")
        server = int((tmp_path / "pid").read_text())
        assert alive(server)
        parent.send_signal(signal.SIGKILL)  # no finally runs, no context manager exits
        parent.wait()
        deadline = time.monotonic() + 10
        while alive(server) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(server), "the server outlived the process that started it"
    finally:
        parent.kill()
        if (tmp_path / "pid").exists() and alive(pid := int((tmp_path / "pid").read_text())):
            os.kill(pid, signal.SIGKILL)
