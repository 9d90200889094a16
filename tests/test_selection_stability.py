"""Selection stability: per feature, the share of folds that selected it and its mean rank; in
the selection dict, the registry manifest's selection and the HTML report. (That selection
never reads a test row: tests/test_models.py::test_selection_ignores_the_test_fold and
::test_run_experiment_fold_is_independent_of_its_test_rows.)"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tickml.models.selection import FoldImportance, aggregate_importance
from tickml.report import selection_stability_html, write_reports

pytestmark = pytest.mark.unit


def _fold(k: int, values: dict[str, float]) -> FoldImportance:
    s = pd.Series(values, dtype=float)
    return FoldImportance(k, s, {"short": s}, {})


def _three_folds():
    return aggregate_importance(
        [
            _fold(0, {"a": 5.0, "b": 4.0, "c": 3.0, "d": 2.0, "e": 0.0}),
            _fold(1, {"a": 5.0, "b": 1.0, "c": 4.0, "d": 3.0, "e": 0.0}),
            _fold(2, {"a": 1.0, "b": 4.0, "c": 5.0, "d": 0.5, "e": 2.0}),
        ],
        top_k=2,
    )


def test_share_of_folds_and_mean_rank() -> None:
    sel = _three_folds()
    t = sel.table.set_index("feature")
    # fold top-2: {a, b}, {a, c}, {c, b}; fold ranks a 1,1,4  b 2,4,2  c 3,2,1  d 4,3,5  e 5,5,3
    assert t["top_k_share"].to_dict() == pytest.approx(
        {"a": 2 / 3, "b": 2 / 3, "c": 2 / 3, "d": 0.0, "e": 0.0}
    )
    assert t["mean_fold_rank"].to_dict() == pytest.approx(
        {"a": 2.0, "b": 8 / 3, "c": 2.0, "d": 4.0, "e": 13 / 3}
    )
    # pooled mean importance: c 4, a 3.67, b 3: the pooled top-2 is c, a
    assert sel.features == ["c", "a"]
    stab = sel.to_dict()["stability"]
    # only features some fold selected; by share, then mean rank, then name
    assert [r["feature"] for r in stab] == ["a", "c", "b"]
    assert stab[2] == {
        "feature": "b",
        "top_k_share": pytest.approx(2 / 3),
        "mean_fold_rank": pytest.approx(8 / 3),
        "selected": False,
    }
    json.dumps(sel.to_dict(), allow_nan=False)


def test_a_feature_missing_from_a_fold_ranks_with_zero_importance_there() -> None:
    sel = aggregate_importance(
        [_fold(0, {"a": 2.0, "b": 1.0}), _fold(1, {"b": 3.0, "c": 1.0})], top_k=1
    )
    t = sel.table.set_index("feature")
    # fold 0: a 1, b 2, c 3 (absent: 0); fold 1: b 1, c 2, a 3
    assert t["mean_fold_rank"].to_dict() == pytest.approx({"a": 2.0, "b": 1.5, "c": 2.5})
    assert t["top_k_share"].to_dict() == pytest.approx({"a": 0.5, "b": 0.5, "c": 0.0})


def test_the_report_has_a_stability_section(tmp_path: Path) -> None:
    sel = _three_folds().to_dict()
    section = selection_stability_html(sel)
    assert "Selection stability (3 folds, top 2 per fold" in section
    assert section.count("<tr>") == 4  # header + a, c, b
    assert "<td style='text-align:left'>b</td><td>0.6667</td><td>2.6667</td><td>no</td>" in section
    assert selection_stability_html({}) == ""
    paths = write_reports({"selection": sel}, tmp_path)
    assert section in paths["html"].read_text()
    assert json.loads(paths["json"].read_text())["selection"]["stability"][0]["feature"] == "a"
