"""ess.command, the boundary of every `ess` command: one option name for the sites config (the
old one a hidden alias), exit codes by error class, one line per error."""

from __future__ import annotations

import argparse

import pytest
from ess import command
from ess.cli import build_parser
from ess.db import pg
from ess.db.connect import DatabaseUnavailable
from ess.regmap import MapError
from ess.sites import ConfigError

# every command that reads the sites config, with its required arguments
SITES_COMMANDS = {"status": [], "export": [], "collect": [],
                  "redecode": ["--source", "d", "--since", "2024-01-01", "--until", "2024-01-02"]}


def _sub(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


@pytest.mark.parametrize("name", SITES_COMMANDS)
def test_config_names_the_sites_config_and_sites_is_a_hidden_alias(name):
    sub, required = _sub(name), SITES_COMMANDS[name]
    assert sub.parse_args([*required, "--config", "a.yaml"]).config == "a.yaml"
    assert sub.parse_args([*required, "--sites", "b.yaml"]).config == "b.yaml"
    shown = sub.format_help()
    assert "--config SITES_YAML" in shown and "--sites" not in shown


def test_the_environment_stands_in_for_config(monkeypatch):
    args = argparse.Namespace(config=None)
    monkeypatch.setenv("ESS_SITES_CONFIG", "/etc/ess/sites.yaml")
    assert command.config_path(args) == "/etc/ess/sites.yaml"
    assert command.config_path(argparse.Namespace(config="x.yaml")) == "x.yaml"
    monkeypatch.delenv("ESS_SITES_CONFIG")
    assert command.config_path(args) is None


def _server_error(state: str, message: str) -> pg.DatabaseError:
    return pg.DatabaseError({"S": "ERROR", "C": state, "M": message})


@pytest.mark.parametrize("exc, code, line", [
    (MapError("m.yaml", ["blocks: missing"]), 2, "m.yaml: blocks: missing"),
    (MapError("m.yaml", ["a", "b"]), 2, "m.yaml: 2 problem(s): a; b"),
    (ConfigError("s.yaml", ["sites: []"]), 2, "s.yaml: invalid configuration: sites: []"),
    (command.UsageError("no database"), 2, "no database"),
    (DatabaseUnavailable("database unavailable: x"), 3, "database unavailable: x"),
    (_server_error("42P01", 'relation "frames" does not exist'), 2,
     'database: relation "frames" does not exist (SQLSTATE 42P01)'),
    (_server_error("57P03", "the database system is starting up"), 3,
     "database: the database system is starting up (SQLSTATE 57P03)"),
    (FileNotFoundError(2, "No such file or directory", "x.csv"), 2,
     "x.csv: No such file or directory"),
    (KeyboardInterrupt(), 130, "interrupted"),
])
def test_an_error_becomes_its_exit_code_and_one_line(exc, code, line, capsys):
    def fail(_args):
        raise exc

    assert command.run("ess x", fail, argparse.Namespace()) == code
    assert capsys.readouterr().err == f"ess x: {line}\n"


def test_a_bug_keeps_its_traceback():
    def bug(_args):
        raise ZeroDivisionError("a bug")

    with pytest.raises(ZeroDivisionError):
        command.run("ess x", bug, argparse.Namespace())


def test_findings_and_success_are_the_commands_own():
    assert command.run("ess x", lambda _a: command.FINDINGS, argparse.Namespace()) == 1
    assert command.run("ess x", lambda _a: None, argparse.Namespace()) == 0
