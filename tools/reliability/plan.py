"""How much a reliability run does: the short form (`make test`, about a minute) and the full form.

Counts live here, once; the pytest short form reads `Plan.from_env()`, so
`SEGNET_EDGE_RELIABILITY=full make test` runs the full counts under pytest too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Plan:
    name: str
    seed: int = 0
    input_size: tuple[int, int] = (32, 48)
    synth_count: int = 12
    calib_count: int = 8
    train_epochs: int = 3
    # fuzz cases per file
    fuzz_tflite_int8: int = 16
    fuzz_tflite_fp32: int = 8
    fuzz_onnx: int = 8
    fuzz_h5: int = 8
    fuzz_npz: int = 40
    # SIGKILLs per command (0: command not kill-tested in this form)
    kills_train: int = 2
    kills_calibrate: int = 4
    kills_prune: int = 0
    kills_quantize: int = 0
    kills_convert: int = 0
    # slower checks only the full form runs
    cli_skip_run: bool = False
    full_disk_evaluate: bool = False
    file_size_limit: bool = False
    unsafe_commands: tuple[str, ...] = ("evaluate",)

    @classmethod
    def short(cls) -> Plan:
        return cls(name="short")

    @classmethod
    def full(cls) -> Plan:
        return cls(name="full", fuzz_tflite_int8=120, fuzz_tflite_fp32=80, fuzz_onnx=80, fuzz_h5=60, fuzz_npz=200,
                   kills_train=10, kills_calibrate=8, kills_prune=3, kills_quantize=3, kills_convert=3,
                   cli_skip_run=True, full_disk_evaluate=True, file_size_limit=True,
                   unsafe_commands=("evaluate", "prune", "quantize", "convert"))

    @classmethod
    def from_env(cls) -> Plan:
        """SEGNET_EDGE_RELIABILITY=full selects the full counts; SEGNET_EDGE_RELIABILITY_SEED the seed."""
        plan = cls.full() if os.environ.get("SEGNET_EDGE_RELIABILITY", "short") == "full" else cls.short()
        return plan.with_seed(int(os.environ.get("SEGNET_EDGE_RELIABILITY_SEED", "0")))

    def with_seed(self, seed: int) -> Plan:
        return replace(self, seed=seed)

    @property
    def size_text(self) -> str:
        return f"{self.input_size[0]}x{self.input_size[1]}"

    @property
    def train_args(self) -> list[str]:
        """A tiny SegNet (indices and all) that trains in seconds on two cores."""
        return ["--arch", "segnet", "--alpha", "0.0625", "--input-size", self.size_text, "--batch-size", "4",
                "--quiet", "--seed", str(self.seed)]

    @property
    def total_fuzz_cases(self) -> int:
        return self.fuzz_tflite_int8 + self.fuzz_tflite_fp32 + self.fuzz_onnx + self.fuzz_h5 + self.fuzz_npz

    @property
    def total_kills(self) -> int:
        return self.kills_train + self.kills_calibrate + self.kills_prune + self.kills_quantize + self.kills_convert

    def unsafe_cli_runs(self, data, calib, out) -> list[tuple[str, list[str]]]:
        """(command, argv with MODEL for the model file) for each command that reads a Keras file."""
        runs = {
            "evaluate": ["evaluate", "MODEL", "--data", str(data), "--split", "val"],
            "prune": ["prune", "MODEL", "--data", str(data), "--epochs", "1", "--out", str(out / "pruned.h5")],
            "quantize": ["quantize", "MODEL", "--data", str(data), "--qat", "--epochs", "1", "--out",
                         str(out / "qat.h5")],
            "convert": ["convert", "MODEL", "--formats", "tflite-fp32", "--out", str(out / "export")],
        }
        return [(name, runs[name]) for name in self.unsafe_commands]
