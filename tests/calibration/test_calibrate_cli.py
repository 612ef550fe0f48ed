"""`segnet-edge calibrate` as a user runs it."""

from __future__ import annotations

from tests.conftest import assert_usage_error, run_cli


def test_dataset_then_reuse_then_force(tmp_path, camvid_sample):
    out = tmp_path / "calib.npz"
    args = ["calibrate", "--source", camvid_sample, "--size", "36x48", "--count", "8", "--holdout", "4", "--out", out]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(f"wrote {out}: 8 calibration + 4 held-out frames with labels at 36x48 from dataset")
    second = run_cli(*args)
    assert second.returncode == 0 and second.stdout.startswith(f"reused {out}")
    assert run_cli(*args, "--force").stdout.startswith(f"wrote {out}")


def test_video_and_folder_sources(tmp_path, camvid_video, camvid_sample):
    video = run_cli("calibrate", "--source", camvid_video, "--size", "36x48", "--count", "12", "--out",
                    tmp_path / "v.npz")
    assert video.returncode == 0, video.stderr
    assert "12 calibration + 4 held-out frames at 36x48 from video" in video.stdout
    folder = run_cli("calibrate", "--source", camvid_sample / "val", "--size", "36x48", "--count", "4",
                     "--holdout", "0", "--out", tmp_path / "f.npz")
    assert folder.returncode == 0 and "from folder" in folder.stdout


def test_on_bad_sample_skip_lists_what_it_passed_over(tmp_path, camvid_copy):
    broken = sorted((camvid_copy / "train").iterdir())[0]
    broken.write_bytes(b"")
    args = ["calibrate", "--source", camvid_copy, "--size", "36x48", "--count", "8", "--holdout", "2"]
    assert_usage_error(run_cli(*args, "--out", tmp_path / "a.npz"), f"{broken.name}: unreadable image")
    assert not (tmp_path / "a.npz").exists()
    done = run_cli(*args, "--on-bad-sample", "skip", "--out", tmp_path / "b.npz")
    assert done.returncode == 0, done.stderr
    assert f"skipped 1 unreadable sample(s): {broken}: unreadable image" in done.stdout


def test_bad_input(tmp_path, camvid_sample):
    assert_usage_error(run_cli("calibrate", "--source", camvid_sample, "--size", "36x48", "--out", tmp_path / "c.npz"),
                       "only 12 images, fewer than the 200 asked for")
    assert not (tmp_path / "c.npz").exists()
    assert_usage_error(run_cli("calibrate", "--source", camvid_sample, "--size", "36", "--out", tmp_path / "c.npz"),
                       "HEIGHTxWIDTH")
    assert_usage_error(run_cli("calibrate", "--source", tmp_path / "nothing", "--size", "36x48"),
                       "no such file or folder")
    assert_usage_error(run_cli("calibrate", "--source", camvid_sample, "--size", "36x48", "--out", tmp_path),
                       "is a folder")


def test_the_size_comes_from_a_model_or_else_the_source(tmp_path, camvid_sample, camvid_video):
    from segnet_edge.device.metadata import ModelMetadata, default_palette
    from segnet_edge.model_io import save_model
    from segnet_edge.models import ModelConfig, build_model

    model = save_model(build_model(ModelConfig("segnet-basic", (40, 56), 3, alpha=0.125)), tmp_path / "m.h5",
                       ModelMetadata(("a", "b", "c"), default_palette(3), (40, 56), arch="segnet-basic"))
    args = ["calibrate", "--source", camvid_sample, "--count", "4", "--holdout", "0"]
    sized = run_cli(*args, "--model", model, "--out", tmp_path / "m.npz")
    assert sized.returncode == 0, sized.stderr
    assert "at 40x56 from dataset" in sized.stdout and f"the input size of {model}" in sized.stderr
    native = run_cli(*args, "--out", tmp_path / "n.npz")  # CamVid's own 360x480
    assert native.returncode == 0 and "at 360x480 from dataset" in native.stdout and "own frames" in native.stderr
    video = run_cli("calibrate", "--source", camvid_video, "--count", "4", "--holdout", "0", "--out", tmp_path / "v.npz")
    assert video.returncode == 0 and "at 360x480 from video" in video.stdout, video.stderr
    assert_usage_error(run_cli(*args, "--model", tmp_path / "missing.h5", "--out", tmp_path / "x.npz"),
                       "no such model file")
    assert_usage_error(run_cli(*args, "--model", model, "--size", "36x48", "--out", tmp_path / "x.npz"),
                       "not allowed with argument")
    assert not (tmp_path / "x.npz").exists()
