"""Cameras on 127.0.0.1 that stall, die or never answer; the password in their URL never shows."""

from __future__ import annotations

from rel_util import record

from tools.reliability.streams import live_sources


def test_stalling_dying_and_silent_cameras_end_cleanly_without_leaking_the_password(artifacts, tmp_path):
    tally = live_sources(artifacts / "model_int8.tflite", tmp_path)
    assert sum(tally.tried.values()) == 3
    record(tally, "live sources")


def test_usage_errors_that_echo_a_url_hide_its_password(tmp_path):
    """argparse repeats a bad value verbatim; both entry points redact what it prints."""
    from tools.reliability.inputs import run_camera
    from tools.reliability.kills import run_cli
    from tools.reliability.streams import SECRET

    url = f"rtsp://admin:{SECRET}@127.0.0.1:9/live"
    for result in (run_camera("-m", tmp_path / "m.tflite", "--backend", url),
                   run_cli(["profile", tmp_path / "m.tflite", "--backend", url])):
        assert result.returncode == 2 and SECRET not in result.stderr + result.stdout
        assert "rtsp://***@127.0.0.1:9/live" in result.stderr
