"""``bench list [methods|suites|metrics|extractors|commands|plugins] [--json]``."""

from __future__ import annotations

import argparse
import json

from bench import plugins, profiles
from bench.commands.base import function_command

CHOICES = ("methods", "suites", "metrics", "extractors", "commands", "plugins", "profiles")
#: What ``bench list`` shows without an argument.
DEFAULT = ("methods", "suites", "metrics")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", nargs="?", choices=CHOICES,
                   help="what to list (default: methods, suites and metrics; extractors: the feature networks "
                        "that metrics use)")
    p.add_argument("--json", action="store_true", help="print a JSON object instead of a table")


def listing(what: str | None = None) -> dict[str, list[dict]]:
    """The registered things as plain data, keyed by kind."""
    reg = plugins.current()
    kinds = [what] if what else list(DEFAULT)
    out: dict[str, list[dict]] = {}
    for kind in kinds:
        if kind == "plugins":
            out["plugins"] = reg.plugin_names()
        elif kind == "profiles":
            out["profiles"] = profiles.listing()
        else:
            out[kind] = [e.as_dict() for e in getattr(reg, kind).entries()]
    return out


def run(args: argparse.Namespace) -> int:
    data = listing(args.what)
    if args.json:
        print(json.dumps(data, indent=2, default=str))
        return 0
    for kind, rows in data.items():
        print(f"{kind}:")
        for row in rows:
            desc = row.get("description") or ", ".join(row.get("hooks", []))
            print(f"  {row['name']:<16} {desc}  [{row.get('plugin', row.get('distribution') or 'builtin')}]")
    return 0


ListCommand = function_command(
    "list registered methods, suites, metrics, feature extractors, commands or plug-ins",
    add_arguments, run,
)
