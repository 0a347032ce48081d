#!/usr/bin/env python3
"""Checks that every llm-router command the README shows still parses.

Finds `llm-router …` and `cargo run --release -- …` commands in the README's code blocks and
inline code, then for each: the subcommand path must exist (its `--help` succeeds) and every
`--flag` it uses must appear in that subcommand's help. Run by scripts/test.sh; exits 1
naming each command that no longer matches the CLI.

usage: readme-commands.py LLM_ROUTER_BIN [README.md]
"""
import re
import shlex
import subprocess
import sys

PREFIXES = ("llm-router ", "cargo run --release -- ", "cargo run -- ")


def commands(text):
    """Yields (line number, argument list) for each command found."""
    in_block = False
    pending, start = "", 0
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            in_block = not in_block
            continue
        candidates = []
        if in_block:
            body = pending + line.split(" #")[0].rstrip()
            if body.endswith("\\"):
                pending, start = body[:-1] + " ", start or n
                continue
            pending = ""
            candidates.append((start or n, body.strip()))
            start = 0
        else:
            candidates += [(n, c) for c in re.findall(r"`([^`]+)`", line)]
        for at, cmd in candidates:
            for prefix in PREFIXES:
                if cmd.startswith(prefix):
                    yield at, cmd[len(prefix):]


def words(cmd):
    # Placeholders like [--flag N] and … are notation, not arguments.
    cmd = cmd.replace("[", " ").replace("]", " ").replace("…", " ")
    cmd = re.sub(r"\s(\||>|>>|&&)\s.*$", "", cmd)
    try:
        return shlex.split(cmd)
    except ValueError:
        return cmd.split()


HELP = {}


def help_of(binary, path):
    key = tuple(path)
    if key not in HELP:
        run = subprocess.run([binary, *path, "--help"], capture_output=True, text=True)
        HELP[key] = run.stdout if run.returncode == 0 else None
    return HELP[key]


def subcommands(help_text):
    names, in_list = set(), False
    for line in help_text.splitlines():
        if line.strip() == "Commands:":
            in_list = True
            continue
        if in_list:
            if not line.startswith("  "):
                in_list = False
                continue
            names.add(line.split()[0])
    return names


def check(binary, args):
    path = []
    while args and not args[0].startswith("-"):
        current = help_of(binary, path)
        if current is None:
            return f"`{' '.join(path)}` has no help"
        subs = subcommands(current)
        if not subs:
            break
        word = args.pop(0)
        # `submit/status/results` names several subcommands at once.
        names = word.split("/")
        missing = [w for w in names if w not in subs]
        if missing:
            return f"no subcommand {' '.join(path + missing)}"
        if len(names) > 1:
            return None
        path.append(word)
    text = help_of(binary, path)
    if text is None:
        return f"`{' '.join(path)} --help` fails"
    for flag in (a.split("=")[0] for a in args if a.startswith("--")):
        if not re.search(re.escape(flag) + r"[\s,=<\[]", text + " "):
            return f"`{' '.join(path)}` has no flag {flag}"
    return None


def main():
    binary = sys.argv[1]
    readme = sys.argv[2] if len(sys.argv) > 2 else "README.md"
    text = open(readme, encoding="utf-8").read()
    failures, checked = [], 0
    for line, cmd in commands(text):
        checked += 1
        problem = check(binary, words(cmd))
        if problem:
            failures.append(f"{readme}:{line}: {cmd.strip()}\n    {problem}")
    if failures:
        print("README commands that no longer match the CLI:", *failures, sep="\n")
        sys.exit(1)
    print(f"readme-commands: {checked} commands match the CLI")


if __name__ == "__main__":
    main()
