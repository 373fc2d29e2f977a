"""`sluice completion bash|zsh`: the scripts, run by the real shells on command lines a user would type."""

import shutil
import subprocess
from pathlib import Path

import pytest

from sluice.cli.__main__ import main

LINES = {
    "sluice ''": "submit jobs results dlq status events completion",
    "sluice jo": "jobs",
    "sluice jobs ''": "list show cancel rerun",
    "sluice jobs list --sta": "--status",
    "sluice jobs list --status r": "running",
    "sluice submit web.page items.csv --format ''": "csv jsonl lines",
    "sluice --url http://x jobs show JOB --wa": "--watch",
    "sluice completion ''": "bash zsh",
}


def _script(shell: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    assert main(["completion", shell]) == 0
    path = tmp_path / f"sluice.{shell}"
    path.write_text(capsys.readouterr().out)
    return path


def test_the_bash_script_completes_commands_options_and_choices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = _script("bash", tmp_path, capsys)
    probes = "\n".join(
        f'COMP_WORDS=({line}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); _sluice; echo "${{COMPREPLY[*]}}"'
        for line in LINES
    )
    completed = subprocess.run(
        ["bash", "--norc", "-c", f"source {script}\n{probes}"], capture_output=True, text=True, timeout=60
    )

    assert completed.returncode == 0, completed.stderr
    answers = completed.stdout.splitlines()
    for (line, expected), answer in zip(LINES.items(), answers, strict=True):
        assert answer.startswith(expected), (line, answer)
    assert "complete -o default -F _sluice sluice" in script.read_text()


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_the_zsh_script_offers_the_same_words_with_their_help(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = _script("zsh", tmp_path, capsys)
    # zsh's completion system needs a terminal: the functions of it the script calls are stood in for by ones that
    # print what they were given (matching what was typed is left to zsh).
    stand_ins = """
compdef() { : }
_describe() { local -a offered; offered=("${(@P)4}"); print -r -- "${(j: :)${(@)offered%%:*}}" }
compadd() { shift; print -r -- "$*" }
_files() { print -r -- files }
"""
    probes = "\n".join(f"words=({line}); CURRENT=${{#words}}; _sluice" for line in LINES)
    completed = subprocess.run(
        ["zsh", "-f", "-c", f"{stand_ins}\nsource {script}\n{probes}"], capture_output=True, text=True, timeout=60
    )

    assert completed.returncode == 0, completed.stderr
    for (line, expected), answer in zip(LINES.items(), completed.stdout.splitlines(), strict=True):
        assert set(expected.split()) <= set(answer.split()), (line, answer)  # zsh itself keeps those that match
    assert "_sluice_described_commands" in script.read_text() and "list:the tenant" in script.read_text()
