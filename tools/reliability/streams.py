"""Live sources that misbehave, served on 127.0.0.1 only, and the secrets in their URLs.

An MJPEG-over-HTTP camera (the kind cheap IP cameras serve) that
- stalls: sends N frames, then keeps the connection open and sends nothing, and
  answers later connections with silence (a camera whose encoder hung);
- stalls once: the first connection as above, later ones stream again (a network hiccup that left
  one connection hanging);
- dies: sends N frames, closes, and refuses later connections (unplugged);
- never answers: accepts the TCP connection and sends nothing at all.
The board must time out (--timeout), retry with backoff (--retries, --retry-delay),
and end cleanly with its report written; a source that never answers ends with one
line. The URL carries user:password, which must not appear in anything the run
prints or writes.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from tools.reliability.inputs import one_line_error, run_camera
from tools.reliability.tally import Tally

SECRET = "s3cr3t-Pa55"
FRAMES = 12


def _frames(count: int) -> Iterator[bytes]:
    import cv2

    for i in range(count):
        frame = np.full((48, 64, 3), (i * 20) % 255, np.uint8)
        frame[10:30, (i * 4) % 40:(i * 4) % 40 + 20] = (40, 40, 200)
        yield cv2.imencode(".jpg", frame)[1].tobytes()


def _handler(behaviour: str, stop: threading.Event) -> type[http.server.BaseHTTPRequestHandler]:
    served = threading.Event()

    class Camera(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            first = not served.is_set()
            served.set()
            if not first and behaviour != "stall-once":
                if behaviour == "stall":
                    stop.wait(60)  # accept, then silence
                else:
                    self.send_error(503, "camera gone")
                return
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            for jpeg in _frames(FRAMES if first else 10 * FRAMES):
                if stop.is_set():
                    return
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg))
                self.wfile.write(jpeg + b"\r\n")
                self.wfile.flush()
                time.sleep(0.02)
            if first and behaviour in ("stall", "stall-once"):
                stop.wait(60)  # the connection stays open with nothing on it

        def log_message(self, *args) -> None:
            pass

    return Camera


@contextmanager
def camera(behaviour: str) -> Iterator[str]:
    """An MJPEG camera on 127.0.0.1 behaving as named; yields its URL, credentials included."""
    stop = threading.Event()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(behaviour, stop))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://viewer:{SECRET}@127.0.0.1:{server.server_address[1]}/stream.mjpg"
    finally:
        stop.set()
        server.shutdown()
        server.server_close()


@contextmanager
def silent_socket() -> Iterator[str]:
    """A TCP port on 127.0.0.1 that accepts connections and never sends a byte."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://admin:{SECRET}@127.0.0.1:{listener.getsockname()[1]}/live.mjpg"
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in accepted:
            conn.close()
        listener.close()


def _leaks(texts: list[str], folder: Path, tally: Tally, context: str) -> None:
    files = [p for p in folder.rglob("*") if p.is_file() and p.suffix != ".png"] if folder.is_dir() else []
    for text in texts + [p.read_text(errors="replace") for p in files]:
        if SECRET in text:
            tally.fail("leaks", f"{context}: the password appears in the output")
            return


def live_sources(model: Path, workdir: Path, timeout_s: float = 1.0) -> Tally:
    """Stalling, dying and silent cameras through run_camera; reports written, no password anywhere."""
    import json

    tally = Tally()
    for behaviour in ("stall", "die"):
        out = workdir / f"stream-{behaviour}"
        tally.tried[f"live source {'stalls' if behaviour == 'stall' else 'dies'} after {FRAMES} frames"] += 1
        with camera(behaviour) as url:
            started = time.monotonic()
            result = run_camera("-m", model, "--source", url, "--warmup", "0", "--timeout", str(timeout_s),
                                "--retries", "2", "--retry-delay", "0.1", "--no-plot", "--out", out, timeout_s=120)
            seconds = time.monotonic() - started
        context = f"run_camera on a camera that {behaviour}s"
        _leaks([result.stdout, result.stderr], out, tally, context)
        if result.returncode != 0 or "Traceback" in result.stderr:
            tally.fail("unexpected", f"{context}: exit {result.returncode}: {result.stderr.strip()[-300:]}")
            continue
        report = json.loads((out / "profile.json").read_text())["models"][0]
        if "lost (2 reconnect attempts failed)" not in report["ended_by"] or report["frames"] < 1:
            tally.fail("unexpected", f"{context}: ended by {report['ended_by']!r} after {report['frames']} frames")
        if "***@127.0.0.1" not in report["source"]:
            tally.fail("leaks", f"{context}: the report's source is not redacted: {report['source']}")
        if seconds > 60:
            tally.fail("hangs", f"{context}: took {seconds:.0f} s with --timeout {timeout_s}")
    tally.tried["live source never answers"] += 1
    with silent_socket() as url:
        started = time.monotonic()
        result = run_camera("-m", model, "--source", url, "--timeout", str(timeout_s), "--out",
                            workdir / "stream-silent", timeout_s=120)
        seconds = time.monotonic() - started
    _leaks([result.stdout, result.stderr], workdir / "stream-silent", tally, "run_camera on a silent socket")
    one_line_error(result, tally, "run_camera on a silent socket", "http://***@127.0.0.1")
    if seconds > 30:
        tally.fail("hangs", f"run_camera on a silent socket took {seconds:.0f} s with --timeout {timeout_s}")
    return tally
