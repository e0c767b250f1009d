"""The command dispatches to its subcommands and says what it offers."""

import subprocess
import sys


def test_help_lists_every_subcommand():
    from celerysalt_pg.cli import COMMANDS

    out = subprocess.run([sys.executable, "-m", "celerysalt_pg", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for name in COMMANDS:
        assert name in out


def test_unknown_subcommand_fails():
    proc = subprocess.run([sys.executable, "-m", "celerysalt_pg", "no-such-command"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr
