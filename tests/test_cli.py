"""The ``hpcfed`` command dispatches to its subcommands and names a mistyped one."""
from __future__ import annotations

from hpcfed.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in COMMANDS)


def test_a_mistyped_command_is_one_line_with_a_guess(capsys):
    assert main(["summarise", "run.h5"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "unknown command 'summarise' (did you mean 'summarize'?); accepted: run," in err
