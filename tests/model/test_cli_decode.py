"""`ess decode`: the debugging command and the contract acceptance checks use (run in-process
through the `ess` entry point's main, stdin and stdout captured)."""

import io
import json
import re

import pytest
from ess.cli import main as ess_main
from ess.decode import decoder_for
from ess.regmap import load_map

M = load_map("default")


def frame(seed=0):
    return {b.name: [(i * 31 + seed) % 65536 for i in range(b.count)] for b in M.blocks}


def run(stdin: str, *args, monkeypatch, capsys) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = ess_main(["decode", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_valid_frames_match_the_decoder(monkeypatch, capsys):
    frames = [frame(1), frame(2)]
    code, out, err = run("".join(json.dumps(f) + "\n" for f in frames), "--bank-id", "4",
                         monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    expected = [r for f in frames for r in decoder_for(M).decode(f, bank_id=4)]
    assert rows == expected
    assert [r["table"] for r in rows[:11]] == ["bank"] + ["rack"] * 8 + ["pcs", "etc"]
    assert rows[3]["rack_id"] == 3 and "rack_id" not in rows[0]


def test_malformed_lines_are_refused_by_line(monkeypatch, capsys):
    good = json.dumps(frame())
    short = frame()
    short["PCS"] = short["PCS"][:-1]
    big = frame()
    big["ETC"][0] = 70000
    missing = frame()
    del missing["BMS2"]
    lines = [good, "not json", json.dumps(short), json.dumps(big), json.dumps(missing), "[1]"]
    code, out, err = run("\n".join(lines) + "\n", monkeypatch=monkeypatch, capsys=capsys)
    assert code != 0
    assert len(out.splitlines()) == 11          # only the good frame printed
    assert "line 2: not JSON" in err
    assert "line 3: block PCS: expected 89 registers, got 88" in err
    assert "line 4: block ETC: register 0 (address 600) is 70000" in err
    assert "line 5: missing block BMS2" in err
    assert "line 6: expected a JSON object" in err


def test_help_shows_the_input_and_an_example_that_decodes(monkeypatch, capsys):
    with pytest.raises(SystemExit):
        ess_main(["decode", "--help"])
    shown = capsys.readouterr().out
    assert "input (stdin): one frame a line, a JSON object" in shown
    example = re.search(r"print\(json\.dumps\((.+)\)\)' \|\s+ess decode (.*)", shown)
    stdin = json.dumps(eval(example.group(1))) + "\n"   # noqa: S307 - our own help text
    code, out, err = run(stdin, *example.group(2).split(), monkeypatch=monkeypatch,
                         capsys=capsys)
    assert code == 0 and out.count("\n") == 1, err


@pytest.mark.parametrize("name", ["default", "examples/pcs-meter", "examples/sunspec-802"])
def test_map_check_states_the_sizes_decode_takes(name, monkeypatch, capsys):
    assert ess_main(["map", "check", name]) == 0
    stated = capsys.readouterr().out.split("a frame (ess decode's input): ")[1]
    sizes = {b: int(n) for b, n in re.findall(r"(\w+) (\d+) (?:registers|words?)", stated)}
    regmap = load_map(name)
    assert list(sizes) == [b.name for b in regmap.blocks]
    frame = {b: [0] * n for b, n in sizes.items()}
    code, _, err = run(json.dumps(frame) + "\n", "--map", name, monkeypatch=monkeypatch,
                       capsys=capsys)
    assert code == 0, err
    first = regmap.blocks[0].name
    frame[first].append(0)
    code, _, err = run(json.dumps(frame) + "\n", "--map", name, monkeypatch=monkeypatch,
                       capsys=capsys)
    assert code == 1 and f"block {first}: expected {sizes[first]} " in err, err
