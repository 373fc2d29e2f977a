"""`sluice completion bash|zsh`: a shell completion script, generated from the command's own parser (so operator
commands appear where the server is installed). Completes subcommands, options, the choices of an option that has
them, and file names elsewhere.

    source <(sluice completion bash)                         # ~/.bashrc
    sluice completion zsh > "${fpath[1]}/_sluice"            # zsh, or: source <(sluice completion zsh)
"""

import argparse
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

SHELLS = ("bash", "zsh")


@dataclass
class Option:
    name: str
    help: str
    takes_value: bool
    choices: list[str]


@dataclass
class Node:
    """One command (``""`` for sluice itself, ``"jobs show"`` ...) with its subcommands and options."""

    path: str
    commands: list[tuple[str, str]] = field(default_factory=list)
    options: list[Option] = field(default_factory=list)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "completion", help="print a shell completion script (bash or zsh)", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("shell", choices=SHELLS)
    parser.set_defaults(run=run_completion)


def run_completion(args: argparse.Namespace) -> int:
    from sluice.cli.__main__ import build_parser

    nodes = list(walk(build_parser()))
    sys.stdout.write(bash_script(nodes) if args.shell == "bash" else zsh_script(nodes))
    return 0


def walk(parser: argparse.ArgumentParser, path: str = "") -> Iterator[Node]:
    """Every command of the parser, depth first."""
    node = Node(path)
    children: list[tuple[str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, child in action.choices.items():
                node.commands.append((name, helps.get(name, "")))
                children.append((name, child))
        elif not action.option_strings and action.choices:  # a positional with choices: offered like commands
            node.commands += [(str(choice), action.help or "") for choice in action.choices]
        elif action.option_strings and action.help != argparse.SUPPRESS:
            choices = [str(choice) for choice in action.choices or ()]
            for name in action.option_strings:
                node.options.append(Option(name, action.help or "", action.nargs != 0, choices))
    yield node
    for name, child in children:
        yield from walk(child, f"{path} {name}".strip())


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _words_cases(nodes: list[Node], line: Callable[[Node], str]) -> str:
    return "\n".join(f"        {_quote(node.path)}) {line(node)} ;;" for node in nodes)


def _values_cases(nodes: list[Node], say: str) -> str:
    """``path|--option`` cases printing the option's choices (nothing: any value), for options that take one."""
    cases = []
    for node in nodes:
        for option in node.options:
            if option.takes_value:
                pattern, choices = _quote(f"{node.path}|{option.name}"), _quote(" ".join(option.choices))
                cases.append(f"        {pattern}) {say} {choices} ;;")
    return "\n".join(cases)


_WALK = """    local cmdpath="" word i skip=0 next
    for ((i = {first}; i < {current}; i++)); do
        word="${{{words}[i]}}"
        if ((skip)); then skip=0; continue; fi
        if [[ $word == -* ]]; then
            _sluice_values "$cmdpath" "$word" >/dev/null && skip=1
            continue
        fi
        next="${{cmdpath:+$cmdpath }}$word"
        if [[ " $(_sluice_commands "$cmdpath") " == *" $word "* ]]; then cmdpath=$next; fi
    done"""


def bash_script(nodes: list[Node]) -> str:
    say = "echo"
    commands = _words_cases(nodes, lambda n: f"{say} {_quote(' '.join(name for name, _ in n.commands))}")
    options = _words_cases(nodes, lambda n: f"{say} {_quote(' '.join(o.name for o in n.options))}")
    walk_words = _WALK.format(first=1, current="COMP_CWORD", words="COMP_WORDS")
    return f"""# bash completion for sluice; in ~/.bashrc: source <(sluice completion bash)
_sluice_commands() {{
    case "$1" in
{commands}
    esac
}}
_sluice_options() {{
    case "$1" in
{options}
    esac
}}
_sluice_values() {{
    case "$1|$2" in
{_values_cases(nodes, say)}
        *) return 1 ;;
    esac
}}
_sluice() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}" choices
{walk_words}
    COMPREPLY=()
    if ((COMP_CWORD > 1)) && [[ $prev == -* ]] && choices=$(_sluice_values "$cmdpath" "$prev"); then
        [[ -n $choices ]] && COMPREPLY=($(compgen -W "$choices" -- "$cur"))
        return 0
    fi
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(_sluice_options "$cmdpath")" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$(_sluice_commands "$cmdpath")" -- "$cur"))
    fi
}}
complete -o default -F _sluice sluice
"""


def _described(pairs: list[tuple[str, str]]) -> str:
    """``name:help`` lines for zsh's _describe (colons in names escaped, help on one line)."""
    escaped = [(name.replace(":", "\\:"), " ".join(text.split())) for name, text in pairs]
    return _quote("\n".join(f"{name}:{text}" for name, text in escaped))


def zsh_script(nodes: list[Node]) -> str:
    say = "print -r --"  # zsh's echo would read backslashes as escapes
    commands = _words_cases(nodes, lambda n: f"{say} {_quote(' '.join(name for name, _ in n.commands))}")
    described_commands = _words_cases(nodes, lambda n: f"{say} {_described(n.commands)}")
    described_options = _words_cases(nodes, lambda n: f"{say} {_described([(o.name, o.help) for o in n.options])}")
    walk_words = _WALK.format(first=2, current="CURRENT", words="words")
    return f"""#compdef sluice
# zsh completion for sluice: sluice completion zsh > "${{fpath[1]}}/_sluice", or source <(sluice completion zsh)
_sluice_commands() {{
    case "$1" in
{commands}
    esac
}}
_sluice_described_commands() {{
    case "$1" in
{described_commands}
    esac
}}
_sluice_described_options() {{
    case "$1" in
{described_options}
    esac
}}
_sluice_values() {{
    case "$1|$2" in
{_values_cases(nodes, say)}
        *) return 1 ;;
    esac
}}
_sluice() {{
    local prev=${{words[CURRENT-1]}} choices
    local -a described
{walk_words}
    if ((CURRENT > 2)) && [[ $prev == -* ]] && choices=$(_sluice_values "$cmdpath" "$prev"); then
        if [[ -n $choices ]]; then compadd -- ${{=choices}}; else _files; fi
        return
    fi
    if [[ ${{words[CURRENT]}} == -* ]]; then
        described=("${{(@f)$(_sluice_described_options "$cmdpath")}}")
        _describe -t options 'option' described
    else
        described=("${{(@f)$(_sluice_described_commands "$cmdpath")}}")
        if [[ -n ${{described[1]}} ]]; then _describe -t commands 'command' described; else _files; fi
    fi
}}
if [[ $funcstack[1] == _sluice ]]; then
    _sluice "$@"
else
    compdef _sluice sluice
fi
"""
