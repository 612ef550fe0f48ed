"""The command-line core both entry points share: argument types and the exception -> exit code map."""

from __future__ import annotations

import argparse

import pytest

from segnet_edge.device.cli_core import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    OneLineParser,
    non_negative_int,
    number,
    parse_size,
    positive_float,
    positive_int,
    run_guarded,
)
from segnet_edge.device.errors import DataError, ModelFileError, OutputError, UsageError


def test_argument_types_accept_their_range_and_refuse_the_rest():
    assert positive_int(" 3 ") == 3 and non_negative_int("0") == 0 and positive_float("0.5") == 0.5
    assert number("-1.5") == -1.5 and parse_size("96x128") == (96, 128)
    for convert, bad in [(positive_int, "0"), (positive_int, "x"), (non_negative_int, "-1"), (positive_float, "0"),
                         (positive_float, "inf"), (number, "nan"), (number, "ten"), (parse_size, "0x4")]:
        with pytest.raises(argparse.ArgumentTypeError):
            convert(bad)


@pytest.mark.parametrize("exc, code", [(UsageError("u"), EXIT_USAGE), (DataError("d"), EXIT_USAGE),
                                       (ModelFileError("m"), EXIT_USAGE), (OutputError("o"), EXIT_USAGE),
                                       (FileNotFoundError(2, "No such file", "x.h5"), EXIT_USAGE),
                                       (KeyboardInterrupt(), EXIT_INTERRUPTED)])
def test_errors_become_one_line_and_their_exit_code(exc, code, capsys):
    def fail():
        raise exc

    assert run_guarded("prog", fail) == code
    err = capsys.readouterr().err
    assert err.startswith("prog: ") and err.count("\n") == 1
    assert run_guarded("prog", lambda: None) == 0 and run_guarded("prog", lambda: 3) == 3


def test_a_bug_is_not_hidden_as_bad_input():
    with pytest.raises(ZeroDivisionError):
        run_guarded("prog", lambda: 1 / 0)


def test_parser_errors_are_one_line_with_exit_code_2(capsys):
    parser = OneLineParser(prog="prog")
    parser.add_argument("--n", type=positive_int)
    with pytest.raises(SystemExit) as stop:
        parser.parse_args(["--n", "0"])
    assert stop.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--n" in err and "(see --help)" in err
