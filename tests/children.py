"""``python -c CODE ARGS`` children that do not import LiteLLM each: forked from a process that imported it once.

LiteLLM takes about 6 s of CPU to import (funreason_refine.judge.library). A test that starts a judged `refine run`
in a child process, to kill it or to wait for it, paid that for every child. :func:`popen` and :func:`run` fork
such children from a zygote instead (tests/zygote.py): one process per test process, started when first needed,
that imported LiteLLM and the modules a run needs. funreason_refine.cli each child imports itself: importing it
makes the plugin manager and the consoles, which read the environment.

A child is a process of its own all the same: its own pid (a SIGKILL ends it alone, mid-write), and the stdin,
stdout, stderr, session, folder and environment that subprocess would give it, all in place before its code runs;
it ends as a Python program ends (atexit functions run, files are flushed). Where it is not as a new interpreter:

- what its modules read when they were imported, they read in the zygote. The zygote starts with this process's
  environment less :data:`RUN_TIME_ONLY`, and a new one replaces it once that has changed elsewhere; a child given
  an environment that differs from this process's elsewhere is an ordinary subprocess;
- string hashes are seeded once, in the zygote, so its children share a seed (the order of sets of strings) where
  interpreters each draw one. A test that compares the bytes of two runs makes one of them elsewhere: in an
  ordinary subprocess, or in the test's own process.

They take the arguments of :class:`subprocess.Popen` and :func:`subprocess.run` that the tests use; a command that
is not ``[sys.executable, "-c", CODE, ...]`` goes to subprocess as it is.
"""

from __future__ import annotations

import atexit
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ZYGOTE = Path(__file__).with_name("zygote.py")

RUN_TIME_ONLY = frozenset({"OPENAI_API_KEY", "FUNREASON_REFINE_NO_PLUGINS", "PYTEST_CURRENT_TEST"})
"""Variables no module reads while the zygote imports, so that children may differ in them (the plugin manager
reads FUNREASON_REFINE_NO_PLUGINS when it is made: the zygote checks that it is not made yet)."""

POLL_SECONDS = 0.005  # wait() looks this often; the tests' own loops poll every 5 to 20 ms


def popen(args, *, env=None, stdout=None, stderr=None, text=False, start_new_session=False):
    """As ``subprocess.Popen(args, ...)``: a :class:`Child` from a zygote where it can be one."""
    zygote = _zygote_for(args, dict(os.environ if env is None else env))
    if zygote is None:
        return subprocess.Popen(
            args, env=env, stdout=stdout, stderr=stderr, text=text, start_new_session=start_new_session
        )
    fds, files, owned = _descriptors(stdout, stderr)
    try:
        pid = zygote.start(args, dict(os.environ if env is None else env), start_new_session, fds)
    finally:
        for fd in owned:
            os.close(fd)
    return Child(zygote, args, pid, files, text)


def run(args, *, env=None, check=False, capture_output=False, text=False, stdout=None, stderr=None):
    """As ``subprocess.run(args, ...)``, the child from :func:`popen`."""
    if capture_output:
        stdout = stderr = subprocess.PIPE
    with popen(args, env=env, stdout=stdout, stderr=stderr, text=text) as child:
        out, err = child.communicate()
    done = subprocess.CompletedProcess(args, child.returncode, out, err)
    if check:
        done.check_returncode()
    return done


class Child:
    """A child forked by the zygote: the part of :class:`subprocess.Popen` the tests use. Its stdout or stderr,
    where subprocess.PIPE was asked, is a temporary file, read (as a pipe is) once the child has ended."""

    def __init__(self, zygote, args, pid, files, text):
        self._zygote, self.args, self.pid, self.returncode = zygote, args, pid, None
        self.stdout, self.stderr = (_Output(self, files[n], text) if n in files else None for n in ("stdout", "stderr"))

    def poll(self):
        if self.returncode is None:
            self.returncode = self._zygote.poll(self.pid)
        return self.returncode

    def wait(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(POLL_SECONDS)
        return self.returncode

    def communicate(self, timeout=None):
        self.wait(timeout)
        return tuple(stream.read() if stream else None for stream in (self.stdout, self.stderr))

    def send_signal(self, sig):
        if self.poll() is None:  # as subprocess: nothing is sent to a child that has ended
            self._zygote.ask(op="signal", pid=self.pid, signal=int(sig))

    def kill(self):
        self.send_signal(signal.SIGKILL)

    def terminate(self):
        self.send_signal(signal.SIGTERM)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.wait()


class _Output:
    """A child's output to a temporary file, read as a pipe is: to its end, once the child has ended."""

    def __init__(self, child, file, text):
        self._child, self._file, self._text = child, file, text

    def read(self):
        self._child.wait()
        self._file.seek(0)
        data = self._file.read()
        return io.TextIOWrapper(io.BytesIO(data)).read() if self._text else data  # subprocess's decoding


def _descriptors(stdout, stderr):
    """The child's stdin, stdout and stderr as descriptors of this process (a temporary file where subprocess.PIPE
    is asked): the descriptors, those temporary files by name, and the descriptors to close once sent."""
    fds, files, owned = [0], {}, []
    for name, fd, given in (("stdout", 1, stdout), ("stderr", 2, stderr)):
        if given == subprocess.PIPE:
            files[name] = tempfile.TemporaryFile()
            fd = files[name].fileno()
        elif given == subprocess.DEVNULL:
            fd = os.open(os.devnull, os.O_WRONLY)
            owned.append(fd)
        elif given is not None:  # None: this process's own, as subprocess lets a child inherit them
            fd = given if isinstance(given, int) else given.fileno()
        fds.append(fd)
    return fds, files, owned


def _comparable(env):
    """An environment as the zygote's imports would have read it."""
    seen = {k: v for k, v in env.items() if k not in RUN_TIME_ONLY}
    seen.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # load_litellm sets it so before it imports LiteLLM
    return seen


def _zygote_for(args, env):
    """The zygote whose imports saw ``env`` (but for RUN_TIME_ONLY); None for an ordinary subprocess, where the command
    is not ``python -c`` or ``env`` is not this process's environment. Where this process's environment has changed
    since the zygote started (ray.init sets variables, and so does LiteLLM's first token count), a new zygote
    takes its place; the old one ends once its children have."""
    if len(args) < 3 or args[0] != sys.executable or args[1] != "-c":
        return None
    wanted = _comparable(env)
    with _LOCK:
        if _ZYGOTES and _comparable(_ZYGOTES[-1].env) == wanted:
            return _ZYGOTES[-1]
        if wanted != _comparable(os.environ):
            return None
        if _ZYGOTES:
            _ZYGOTES[-1].retire()
        _ZYGOTES.append(_Zygote())
        return _ZYGOTES[-1]


class _Zygote:
    def __init__(self):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.env = {k: v for k, v in os.environ.items() if k not in RUN_TIME_ONLY}
        self.process = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE.read_text(encoding="utf-8"), str(theirs.fileno())],
            env=self.env,
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        theirs.close()
        self.sock, self.lock = ours, threading.Lock()
        self.children: set[int] = set()  # started, not yet seen to end
        self.retired = False
        self.sock.settimeout(300)  # its imports, on a loaded machine
        assert self._answer() == {"ready": True}
        self.sock.settimeout(60)

    def start(self, args, env, session, fds):
        request = {"op": "start", "code": args[2], "argv": [str(a) for a in args[3:]], "env": env}
        request |= {"cwd": os.getcwd(), "session": session}
        with self.lock:
            socket.send_fds(self.sock, [json.dumps(request).encode()], fds)
            pid = self._answer()["pid"]
            self.children.add(pid)
            return pid

    def poll(self, pid):
        returncode = self.ask(op="poll", pid=pid)["returncode"]
        if returncode is not None:
            self.children.discard(pid)
            if self.retired and not self.children:
                self.close()
        return returncode

    def retire(self):
        self.retired = True
        if not self.children:
            self.close()

    def ask(self, **request):
        with self.lock:
            self.sock.send(json.dumps(request).encode())
            return self._answer()

    def _answer(self):
        data = self.sock.recv(1 << 16)
        if not data:
            raise RuntimeError(f"the zygote of tests/children.py ended: exit status {self.process.wait()}")
        return json.loads(data)

    def close(self):
        if self.sock.fileno() == -1:
            return
        self.sock.close()  # the zygote exits when it reads the end
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


_ZYGOTES: list[_Zygote] = []  # the one children start from last
_LOCK = threading.Lock()
atexit.register(lambda: [zygote.close() for zygote in _ZYGOTES])
