#!/usr/bin/env python3
"""Prints every command of a tpmlic program with the options its --help
shows, one line each: the command words (empty for the program itself), '|',
'group' when the command has sub-commands (else nothing), '|', the options. Commands are found in the help texts themselves (indented
lines naming a command, one or two levels deep), so a command or an option
added to a program shows up here without this file changing. Used by the
man page and bash completion tests.

    help_options.py PROGRAM            all commands
    help_options.py --settings tpmlicd the settings of tpmlicd --help
"""
import re
import subprocess
import sys

OPT = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-h)(?![\w-])")
WORD = re.compile(r"^[a-z][a-z-]*$")


def help_text(prog, words):
    r = subprocess.run([prog, *words, "--help"], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        sys.exit(f"{prog} {' '.join(words)} --help exited with {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def command_lines(text):
    """The command words that indented lines of a help text start with.
    'license list|show CODE|suspend CODE' and 'suspend CODE | resume CODE'
    name several."""
    found = []
    for line in text.splitlines():
        if not re.match(r"^  [a-z]", line):
            continue
        toks = line.split()
        lead = []
        for t in toks:
            if "|" in t or not WORD.match(t):
                break
            lead.append(t)
        rest = toks[len(lead):]
        if rest and "|" in rest[0]:
            # 'license list|show CODE|suspend CODE': alternatives at that place
            for t in rest:
                found += [lead + [a] for a in t.split("|") if WORD.match(a)]
            continue
        if lead:
            found.append(lead)
        for i, t in enumerate(toks[:-1]):
            # 'suspend CODE | resume CODE'
            if t == "|" and WORD.match(toks[i + 1]) and lead:
                found.append(lead[:-1] + [toks[i + 1]])
    return found


def commands(prog):
    top = help_text(prog, [])
    out = {(): top}
    for words in command_lines(top):
        for depth in range(1, len(words) + 1):
            key = tuple(words[:depth])
            if key in out or key[-1] == "help":
                continue
            try:
                text = help_text(prog, list(key))
            except SystemExit:
                if depth == 1:
                    raise
                continue
            # 'offline-mode on': an argument, not a command (the same help,
            # whose usage line says 'offline-mode on|off'); 'offline sign'
            # with the same help as 'offline' is a command ('offline sign --db')
            usage = text.splitlines()[0] if text else ""
            named = re.search(re.escape(" ".join(key)) + r"(\s|$)", usage)
            if depth > 1 and text == out.get(key[:-1]) and not named:
                continue
            out[key] = text
            if depth == 1:
                for sub in command_lines(out[key]):
                    if sub[0] == key[0]:
                        sub = sub[1:]
                    if sub:
                        k2 = key + (sub[0],)
                        if k2 not in out:
                            try:
                                out[k2] = help_text(prog, list(k2))
                            except SystemExit:
                                pass
    return out


def settings(prog):
    """The options in the settings block of tpmlicd --help: those after the
    paragraph that says every setting is also in the config file, up to the
    first blank line, without --config."""
    text = help_text(prog, [])
    names, inblock = [], False
    for line in text.splitlines():
        m = re.match(r"^  (--[a-z][a-z0-9-]*)", line)
        if m:
            inblock = True
            if m.group(1) != "--config":
                names.append(m.group(1)[2:].replace("-", "_"))
        elif inblock and not line.strip():
            break
    return names


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--settings":
        print("\n".join(settings(sys.argv[2])))
        return
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    cmds = commands(sys.argv[1])
    for key, text in sorted(cmds.items()):
        opts = sorted(set(OPT.findall(text)))
        group = any(len(k) > len(key) and k[: len(key)] == key for k in cmds)
        print(" ".join(key) + "|" + ("group" if group else "") + "|" + " ".join(opts))


if __name__ == "__main__":
    main()
