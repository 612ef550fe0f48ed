"""bench/pruning.py: the MAC count of a channel-pruned full-size SegNet and the goal lines (timing itself is
`make bench`'s job, not a test's)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.pruning import GOAL_MAC_RATIO, PruneRow, channel_pruned_macs, goals, table  # noqa: E402


def test_half_the_channels_of_the_full_size_segnet_is_under_the_mac_target():
    from segnet_edge.models import ModelConfig, build_model, count_macs

    # 64x96 and 352x480 are both multiples of 32 (no ceil-mode padding): every MAC count scales by the pixels
    model = build_model(ModelConfig("segnet", (64, 96), 11))
    dense, pruned = count_macs(model), channel_pruned_macs(model, 0.5)
    assert 100e9 < dense * (352 * 480) / (64 * 96) < 110e9  # the 104 GMAC at 352x480
    assert pruned <= GOAL_MAC_RATIO * dense


def _rows(speedup: float, miou: float) -> list[PruneRow]:
    dense = PruneRow("dense", "d.h5", 100, 10, 1000, median_ms=20.0, miou_keras=0.60)
    half = PruneRow("channels 50%", "c.h5", 26, 3, 300, median_ms=20.0 / speedup, speedup=speedup, miou_keras=miou)
    return [dense, half]


def test_goal_lines_say_met_or_missed_with_the_numbers():
    met = goals(_rows(2.4, 0.595))
    assert all(line.count("met") == 1 and "MISSED" not in line for line in met), met
    assert "2.40×" in met[1] and "-0.50 points" in met[2]
    missed = goals(_rows(1.5, 0.55))
    assert "MISSED" in missed[1] and "MISSED" in missed[2] and "MISSED" not in missed[0]
    lines = table(_rows(2.4, 0.595)).splitlines()
    assert len(lines) == 4 and lines[3].startswith("| channels 50% | 0 M | 0.260 |") and "2.40×" in lines[3]
