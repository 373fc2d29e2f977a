"""Every `sluice` subcommand answers --help and the user-facing ones offer --json."""

import pytest

from sluice.cli.__main__ import COMMANDS, build_parser

OPERATOR_COMMANDS = ("dev", "serve", "demo", "tenants", "topics", "replay", "rebuild", "groups")
"""Shipped with the server, found through the sluice.commands entry points."""

SCRIPTED = [
    ["submit"], ["jobs", "list"], ["jobs", "show"], ["jobs", "cancel"], ["jobs", "rerun"], ["results"],
    ["topics"], ["replay"], ["rebuild"], ["groups", "rewind"],
]  # fmt: skip


@pytest.mark.parametrize("command", [[name] for name in COMMANDS + OPERATOR_COMMANDS] + SCRIPTED, ids=" ".join)
def test_help_prints_usage_and_exits_0(command, capsys):
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([*command, "--help"])
    assert exited.value.code == 0
    assert "usage: sluice " + " ".join(command) in capsys.readouterr().out


@pytest.mark.parametrize("command", SCRIPTED, ids=" ".join)
def test_user_commands_offer_json_output(command, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([*command, "--help"])
    assert "--json" in capsys.readouterr().out


def test_an_unreachable_intake_is_one_line_on_stderr_and_exit_3(capsys):
    from sluice.cli.__main__ import main

    assert main(["jobs", "list", "--url", "http://127.0.0.1:9"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("sluice: cannot reach intake at http://127.0.0.1:9")
    assert "Traceback" not in err
