"""`ess decode`: the debugging command and the contract acceptance checks use."""

import json
import subprocess
import sys

from ess.decode import decoder_for
from ess.regmap import load_map

M = load_map("default")


def frame(seed=0):
    return {b.name: [(i * 31 + seed) % 65536 for i in range(b.count)] for b in M.blocks}


def run(stdin: str, *args):
    return subprocess.run([sys.executable, "-m", "ess.cli", "decode", *args], input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_valid_frames_match_the_decoder():
    frames = [frame(1), frame(2)]
    out = run("".join(json.dumps(f) + "\n" for f in frames), "--bank-id", "4")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    expected = [r for f in frames for r in decoder_for(M).decode(f, bank_id=4)]
    assert rows == expected
    assert [r["table"] for r in rows[:11]] == ["bank"] + ["rack"] * 8 + ["pcs", "etc"]
    assert rows[3]["rack_id"] == 3 and "rack_id" not in rows[0]


def test_malformed_lines_are_refused_by_line():
    good = json.dumps(frame())
    short = frame()
    short["PCS"] = short["PCS"][:-1]
    big = frame()
    big["ETC"][0] = 70000
    missing = frame()
    del missing["BMS2"]
    lines = [good, "not json", json.dumps(short), json.dumps(big), json.dumps(missing), "[1]"]
    out = run("\n".join(lines) + "\n")
    assert out.returncode != 0
    assert len(out.stdout.splitlines()) == 11          # only the good frame printed
    err = out.stderr
    assert "line 2: not JSON" in err
    assert "line 3: block PCS: expected 89 registers, got 88" in err
    assert "line 4: block ETC: register 0 (address 600) is 70000" in err
    assert "line 5: missing block BMS2" in err
    assert "line 6: expected a JSON object" in err
