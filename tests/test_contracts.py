"""Each analysis's contract is the one source of its parameters: the schema derives from it, every
notebook's parameters cell holds its names and defaults, and values reach a notebook unchanged."""

import ast
import copy
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest
import yaml

from induction_heads import config as C
from induction_heads.contracts import CONTRACTS, parameters_yaml
from induction_heads.naming import head_label, parse_head_label

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def smoke():
    return yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())


def test_every_notebook_has_a_contract_and_every_contract_a_notebook():
    assert {p.stem for p in NOTEBOOKS.glob("*.ipynb")} == set(CONTRACTS)


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_notebook_parameters_cell_matches_its_contract(name):
    contract = CONTRACTS[name]
    cell = papermill.inspect_notebook(str(NOTEBOOKS / f"{name}.ipynb"))
    assert set(cell) == contract.notebook_names()
    for param in (p for p in contract.params if p.notebook):
        default = ast.literal_eval(cell[param.name]["default"])
        assert default == param.default and type(default) is type(param.default), param.name


def test_schema_of_analyses_is_the_contracts():
    schema = C.load_schema()["properties"]["analyses"]
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(CONTRACTS)
    for name, contract in CONTRACTS.items():
        props = schema["properties"][name]["properties"]
        assert {k: v["default"] for k, v in props.items()} == contract.defaults()
        assert schema["properties"][name]["additionalProperties"] is False


def test_defaults_are_filled_from_the_contracts():
    cfg = smoke()
    # other ICL windows; everything else left out
    cfg["analyses"]["head_scores"] = {"thresholds": {"induction": 0.5}, "icl_late": [0.5, 1.0], "icl_early": [0.1, 0.2]}
    C.validate_config(cfg)
    expected = CONTRACTS["head_scores"].defaults() | {"icl_late": [0.5, 1.0], "icl_early": [0.1, 0.2]}
    expected["thresholds"]["induction"] = 0.5
    assert cfg["analyses"]["head_scores"] == expected
    assert "olsson" not in cfg["analyses"]  # defaults never switch an analysis on
    assert set(cfg["analyses"]) == set(smoke()["analyses"])


def test_tokenizer_minimum_is_bytes_plus_special_tokens():
    from induction_heads.tokenizer import SPECIAL_TOKENS

    vocab = C.load_schema()["properties"]["tokenizer"]["properties"]["vocab_size"]
    assert vocab["minimum"] == 256 + len(SPECIAL_TOKENS)


def test_parameters_yaml_keeps_every_type():
    params = {"label": "1.10", "eps": 1e-05, "big": 1e20, "n": 3, "flag": False, "none": None,
              "date": "2024-01-01", "yes": "yes", "heads": ["0.1", "1.10"], "nested": {"a": 0.4}}  # fmt: skip
    back = yaml.safe_load(parameters_yaml(params))
    assert back == params
    assert type(back["eps"]) is float and type(back["label"]) is str and type(back["yes"]) is str
    with pytest.raises(ValueError, match="do not survive"):
        parameters_yaml({"x": float("nan")})


def test_papermill_receives_values_typed_and_unchanged(tmp_path):
    """The rule's route (a parameters file from parameters_yaml, then `papermill -f`), run on a
    throwaway notebook with the real kernel: "1.10" stays a string, 1e-05 a float."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('label = "0.0"\neps = 0.5\nheads = []\nflag = True\nout = ""')
    params.metadata["tags"] = ["parameters"]
    record = nbformat.v4.new_code_cell(
        "import json\n"
        "values = dict(label=label, eps=eps, heads=heads, flag=flag)\n"
        "json.dump({k: [type(v).__name__, v] for k, v in values.items()}, open(out, 'w'))"
    )
    nb.cells = [params, record]
    src, executed, out = tmp_path / "nb.ipynb", tmp_path / "executed.ipynb", tmp_path / "out.json"
    nbformat.write(nb, src)
    values = {"label": "1.10", "eps": 1e-05, "heads": ["1.10", "0.2"], "flag": False, "out": str(out)}
    (tmp_path / "parameters.yaml").write_text(parameters_yaml(values))
    papermill_cli = [sys.executable, "-m", "papermill", "--no-progress-bar"]
    subprocess.run([*papermill_cli, str(src), str(executed), "-f", str(tmp_path / "parameters.yaml")],
                   check=True, capture_output=True, cwd=tmp_path)  # fmt: skip
    got = json.loads(out.read_text())
    assert got == {"label": ["str", "1.10"], "eps": ["float", 1e-05],
                   "heads": ["list", ["1.10", "0.2"]], "flag": ["bool", False]}  # fmt: skip


def test_notebook_parameters_refuse_a_missing_or_extra_name():
    contract = CONTRACTS["qk_circuit"]
    common = dict.fromkeys(contract.common, "x")
    files = {"head_scores_path": "h.json"}
    params = contract.notebook_parameters({"include_bias": True}, common, files)
    assert params["include_bias"] is True and params["head_scores_path"] == "h.json"
    with pytest.raises(ValueError, match="qk_circuit"):
        contract.notebook_parameters({}, common, {})
    with pytest.raises(ValueError, match="qk_circuit"):
        contract.notebook_parameters({}, {**common, "stray": 1}, files)


def test_rule_only_parameters_stay_out_of_the_notebook():
    td = CONTRACTS["training_dynamics"]
    assert {"max_repeated", "max_heldout"} <= set(td.defaults())
    assert not {"max_repeated", "max_heldout"} & td.notebook_names()


@pytest.mark.parametrize("label, parsed", [("0.0", (0, 0)), ("1.10", (1, 10)), ("12.3", (12, 3))])
def test_head_labels_round_trip(label, parsed):
    assert parse_head_label(label) == parsed and head_label(*parsed) == label


@pytest.mark.parametrize("bad", [1.1, "1.1.0", "01.2", "1.x", "", " 1.2"])
def test_head_labels_refuse_anything_but_l_dot_h(bad):
    with pytest.raises(ValueError, match="L.H"):
        parse_head_label(bad)


def test_studied_heads_fall_back_to_the_best_head_and_say_so(tmp_path):
    from induction_heads.circuits import studied_heads
    from induction_heads.metrics import Metrics

    def metric(value):
        return {"value": value}

    found = {"metrics": {"induction_heads": metric(["1.1", "1.0"]), "prev_token_heads": metric([]),
                         "best_induction_head": metric("1.1"), "best_prev_token_head": metric("0.1")}}  # fmt: skip
    heads = studied_heads(copy.deepcopy(found))
    assert heads.induction == ["1.1", "1.0"] and heads.prev_token == ["0.1"]
    assert heads.circuit == ["0.1", "1.1", "1.0"]
    metrics = Metrics("x", "m", tmp_path, params={})
    notes = heads.record_notes(metrics, "induction", "prev_token")
    assert len(notes) == 1 and "0.1" in notes[0]
    assert list(metrics.data["text"]) == ["fallback_prev_token"]
