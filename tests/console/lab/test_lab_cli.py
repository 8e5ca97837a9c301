"""`llm-console lab …` end to end on the tiny model, in process: sweep, list, show, compare, export, apply, estimate."""

from __future__ import annotations

import csv
import io
import json

import pytest

from console.cli.main import main


@pytest.fixture(scope="module")
def cli_data(tmp_path_factory):
    """A data directory of these tests' own: `lab apply` saves a recommendation that later loads would follow."""
    from tests.access_helpers import ensure_admin

    data = tmp_path_factory.mktemp("lab-cli-data")
    ensure_admin(data)
    return data


def _point_at(patch, data) -> None:
    from tests.access_helpers import TEST_ADMIN, TEST_PASSWORD

    for name, value in (("LLM_CONSOLE_DATA_DIR", str(data)), ("LLM_CONSOLE_USER", TEST_ADMIN),
                        ("LLM_CONSOLE_PASSWORD", TEST_PASSWORD)):
        patch.setenv(name, value)


@pytest.fixture(scope="module")
def cli_sweep(tiny_model_dir, cli_data) -> int:
    from console.core import ConsoleCore
    from tests.access_helpers import TEST_ADMIN, TEST_PASSWORD

    with pytest.MonkeyPatch.context() as patch:
        _point_at(patch, cli_data)
        assert main(["lab", "sweep", "--model", str(tiny_model_dir), "--device", "cpu", "--precisions", "fp32,int8",
                     "--batch-sizes", "1,2", "--concurrency", "1,2", "--new-tokens", "3"]) == 0
    core = ConsoleCore(data_dir=cli_data)
    try:
        return core.lab.sweeps(core.sign_in(TEST_ADMIN, TEST_PASSWORD))[0].id
    finally:
        core.shutdown()


@pytest.fixture(autouse=True)
def in_cli_data(monkeypatch, cli_data):
    _point_at(monkeypatch, cli_data)


def test_sweep_prints_the_table_and_the_answers(cli_sweep, capsys):
    assert main(["lab", "show", str(cli_sweep)]) == 0
    out = capsys.readouterr().out
    assert f"Sweep {cli_sweep}" in out and "Machine:" in out and "Within the SLA" in out
    assert out.count("\nint8 ") >= 4 and "Pareto front" in out


def test_show_with_an_impossible_sla_says_none_qualifies(cli_sweep, capsys):
    assert main(["lab", "show", str(cli_sweep), "--ttft-p99-ms", "0.001"]) == 0
    assert "No configuration meets the SLA" in capsys.readouterr().out


def test_list_names_the_sweep_with_its_machine(cli_sweep, capsys):
    assert main(["lab", "list"]) == 0
    out = capsys.readouterr().out
    assert f"{cli_sweep:>4}  done" in out and "torch" in out


def test_json_export_has_per_point_metrics_best_configurations_and_pareto(cli_sweep, tmp_path):
    path = tmp_path / "sweep.json"
    assert main(["lab", "export", str(cli_sweep), "--format", "json", "-o", str(path)]) == 0
    document = json.loads(path.read_text())
    assert len(document["records"]) == 8
    record = document["records"][0]
    assert record["metrics"]["time_to_first_token"]["unit"] == "ms" and "p99" in record["metrics"]["inter_token_latency"]
    assert "coefficient_of_variation" in record and len(document["best_configurations"]) == 3
    assert document["pareto_optimal"] and document["machine"]["torch"]


def test_csv_export_has_one_row_per_point(cli_sweep, capsys):
    assert main(["lab", "export", str(cli_sweep), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 8 and {row["precision"] for row in rows} == {"fp32", "int8"}
    assert all(float(row["output_tokens_per_s"]) > 0 for row in rows)


def test_compare_puts_two_sweeps_side_by_side(cli_sweep, capsys):
    assert main(["lab", "compare", str(cli_sweep), str(cli_sweep)]) == 0
    out = capsys.readouterr().out
    assert "A: sweep" in out and "B: sweep" in out and "1.00x" in out


def test_apply_saves_the_recommendation_for_auto_loads(cli_sweep, capsys):
    assert main(["lab", "apply", str(cli_sweep)]) == 0
    assert "Loads at precision auto use it" in capsys.readouterr().out


def test_estimate_prints_the_items_against_free_memory(tiny_model_dir, capsys):
    assert main(["lab", "estimate", "--model", str(tiny_model_dir), "--precision", "int8", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("int8 on cpu: needs about") and "KV cache" in out and "free" in out


def test_an_unknown_sweep_is_an_error_that_says_where_to_look(capsys):
    assert main(["lab", "show", "999999"]) == 1
    assert "llm-console lab list" in capsys.readouterr().err


def test_loads_lists_each_load_with_its_estimate_beside_the_measurement(cli_sweep, capsys):
    assert main(["lab", "loads"]) == 0
    out = capsys.readouterr().out
    assert "weights est." in out and "int8" in out and "fp32" in out
