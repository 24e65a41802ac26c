"""Self-made calibration: synthetic_batches and patch(calibration="synthetic")."""
import pytest
import torch

import torch_lowbit
from hf_models import output_of, tiny_bert, tiny_gpt2


def test_batches_are_framed_padded_and_reproducible():
    model, _ = tiny_bert()
    model.config.bos_token_id, model.config.eos_token_id, model.config.pad_token_id = 1, 2, 0
    cal = torch_lowbit.synthetic_batches(model, batches=3, batch_size=5, max_length=64, seed=7)
    assert len(cal) == 3
    for batch in cal:
        ids, mask = batch["input_ids"], batch["attention_mask"]
        assert ids.shape == mask.shape == (5, 32)  # capped by max_position_embeddings
        lengths = mask.sum(1)
        assert (lengths >= 8).all() and (mask[:, :1] == 1).all()
        assert (ids[:, 0] == 1).all()
        assert torch.equal(ids[torch.arange(5), lengths - 1], torch.full((5,), 2))
        assert (ids[mask == 0] == 0).all()
        body = torch.cat([row[1 : n - 1] for row, n in zip(ids, lengths.tolist())])
        assert not torch.isin(body, torch.tensor([0, 1, 2])).any()  # special ids only as framing
        assert ((ids >= 0) & (ids < 103)).all()
    again = torch_lowbit.synthetic_batches(model, batches=3, batch_size=5, max_length=64, seed=7)
    assert all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(cal, again))


def test_tokenizer_special_tokens_frame_the_sequences():
    model, _ = tiny_bert()

    class Tok:  # the attributes synthetic_batches reads from a transformers tokenizer
        cls_token_id, sep_token_id, pad_token_id = 101, 102, 0
        all_special_ids = [0, 100, 101, 102]

    cal = torch_lowbit.synthetic_batches(model, Tok(), batches=1, batch_size=4, max_length=16)
    ids, mask = cal[0]["input_ids"], cal[0]["attention_mask"]
    assert (ids[:, 0] == 101).all() and torch.equal(ids[torch.arange(4), mask.sum(1) - 1], torch.full((4,), 102))
    assert not (ids == 100).any()


def test_patch_with_synthetic_calibration_runs_gptq():
    model, batch = tiny_gpt2()
    ref = output_of(model, batch)
    torch_lowbit.patch(model, bits=4, group_size=32, calibration="synthetic")
    rows = model.torch_lowbit_report.replaced
    assert rows and all(r["method"] == "gptq" for r in rows)
    out = output_of(model, batch)
    assert torch.isfinite(out).all() and ((out - ref).norm() / ref.norm()) < 0.5


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: torch_lowbit.patch(torch.nn.Sequential(torch.nn.Linear(8, 8)), calibration="synthetic"), "token embedding"),
        (lambda: torch_lowbit.patch(tiny_bert()[0], calibration="random"), "'synthetic'"),
        (lambda: torch_lowbit.synthetic_batches(tiny_bert()[0], batches=0), "batches"),
        (lambda: torch_lowbit.synthetic_batches(tiny_bert()[0], max_length=4), "max_length"),
    ],
)
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_cli_quantize_with_synthetic_calibration(tmp_path):
    from torch_lowbit.__main__ import main

    model, batch = tiny_bert()
    model.save_pretrained(tmp_path / "float")
    assert main(["quantize", str(tmp_path / "float"), str(tmp_path / "q"), "--bits", "4", "--group-size", "32",
                 "--method", "gptq", "--calibration", "synthetic"]) == 0
    loaded = torch_lowbit.load(tmp_path / "q")
    methods = {m.method for m in loaded.modules() if isinstance(m, torch_lowbit.LowBitLinear)}
    assert methods == {"gptq"}
    assert torch.isfinite(output_of(loaded, batch)).all()
