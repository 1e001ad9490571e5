"""The zygote of tests/children.py: a Python program that imports LiteLLM and most of `refine` once, then forks a
child for each request. Never imported by a test: tests/children.py runs this file's text as ``python -c TEXT FD``.

FD is this end of a SOCK_SEQPACKET socket pair. A request is one JSON message, an answer one JSON message:

- ``{"op": "start", "code", "argv", "env", "cwd", "session"}``, sent with three file descriptors (the child's
  stdin, stdout and stderr) -> ``{"pid"}``. The child takes the descriptors as 0, 1 and 2, a new session if
  asked, the folder and the whole environment given, then runs ``code`` as ``python -c code *argv`` does: at the
  top level of this program, so that an exception it lets out is printed and exits 1, SystemExit exits, and
  the interpreter finishes as any program's does (atexit functions, files flushed).
- ``{"op": "poll", "pid"}`` -> ``{"returncode"}``: null while the child runs, else as subprocess says it
  (-N: ended by signal N). The zygote reaps its children here only, so a pid it has not reaped is still
  that child's.
- ``{"op": "signal", "pid", "signal"}`` -> ``{"sent"}``: sent to a child not reaped yet, never to a pid that
  may have been reused since.
"""

import json
import os
import socket
import sys


def preload():
    """LiteLLM (most of a judged run's imports: about 6 s of CPU) and the package's modules a run needs, but not
    funreason_refine.cli: importing it makes the plugin manager (which reads FUNREASON_REFINE_NO_PLUGINS) and the
    consoles (which read COLUMNS and the like), so each child imports it itself, in its own environment."""
    import threading

    import funreason_refine.config  # noqa: F401
    import funreason_refine.engine  # noqa: F401
    import funreason_refine.judge.client  # noqa: F401
    import funreason_refine.refiners.judged  # noqa: F401
    from funreason_refine import plugin_manager
    from funreason_refine.judge.library import load_litellm

    load_litellm()
    # A child's environment is given after these imports: nothing they did may have read one it can change.
    assert plugin_manager._pm is None and "funreason_refine.cli" not in sys.modules, "the plugin manager was made"
    assert threading.active_count() == 1, f"importing started threads (a fork copies one): {threading.enumerate()}"


def become(request, fds):
    """In the child: the standard streams, session, folder and environment of the request."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    for fd in set(fds):
        os.close(fd)
    if request["session"]:
        os.setsid()
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    if "multiprocessing.process" in sys.modules:  # drawn at its import: each process has its own
        import multiprocessing

        multiprocessing.current_process().authkey = os.urandom(32)


def serve(sock):
    """Answer requests until the parent closes its end (then exit); in a child, return its code and argv."""
    reaped = {}
    while True:
        data, fds, _, _ = socket.recv_fds(sock, 1 << 20, 3)
        if not data:
            sys.exit(0)
        request = json.loads(data)
        pid = request.get("pid")
        if request["op"] == "start":
            pid = os.fork()
            if pid == 0:
                sock.close()
                become(request, fds)
                return request["code"], request["argv"]
            for fd in fds:
                os.close(fd)
            answer = {"pid": pid}
        elif request["op"] == "poll":
            if pid not in reaped:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    reaped[pid] = os.waitstatus_to_exitcode(status)
            answer = {"returncode": reaped.get(pid)}
        else:
            if pid not in reaped:
                os.kill(pid, request["signal"])
            answer = {"sent": pid not in reaped}
        sock.send(json.dumps(answer).encode())


if __name__ == "__main__":
    preload()
    _sock = socket.socket(fileno=int(sys.argv[1]))
    _sock.send(b'{"ready": true}')
    _code, sys.argv[1:] = serve(_sock)
    del _sock
    sys.argv[0] = "-c"
    exec(compile(_code, "<string>", "exec"))
