"""Writes notebooks/quickstart.ipynb (cells kept here so the notebook is reviewable as code).
tests/test_notebooks.py executes the notebook, so it cannot rot."""
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = [
    new_markdown_cell("# torch_lowbit quick start\nPatch a real sentence encoder to 3-bit weights, compare it with fp32, save and reload it, and take a LoRA training step on top."),
    new_code_cell(
        "import os, copy, tempfile\n"
        "os.environ.setdefault('HF_HUB_OFFLINE', '1')\n"
        "import torch, torch_lowbit\n"
        "from torch_lowbit import demo\n"
        "model, tokenizer = demo.load_minilm()\n"
        "texts = demo.sentences('eval')[:32]\n"
        "reference = demo.embed(model, tokenizer, texts)"
    ),
    new_markdown_cell("## Patch\n`patch` swaps every `nn.Linear` in place. `method='mse'` is data-free; `method='gptq'` with calibration batches is the most accurate."),
    new_code_cell(
        "q = torch_lowbit.patch(copy.deepcopy(model), bits=3, group_size=128, method='mse')\n"
        "print(q.torch_lowbit_report)\n"
        "print(q.encoder.layer[0].attention.self.query)"
    ),
    new_code_cell(
        "emb = demo.embed(q, tokenizer, texts)\n"
        "cos = (emb * reference).sum(-1)\n"
        "print(f'mean cosine vs fp32: {cos.mean():.4f}')\n"
        "assert cos.mean() > 0.8"
    ),
    new_markdown_cell("## Save and load\nAn HF-style directory; loading builds the model on the meta device and never materialises float weights."),
    new_code_cell(
        "d = tempfile.mkdtemp()\n"
        "torch_lowbit.save(q, d + '/minilm-3bit', tokenizer=tokenizer)\n"
        "reloaded = torch_lowbit.load(d + '/minilm-3bit')\n"
        "assert torch.equal(demo.embed(reloaded, tokenizer, texts), emb)\n"
        "print(sorted(os.listdir(d + '/minilm-3bit')))"
    ),
    new_markdown_cell("## A LoRA step on the frozen 3-bit model (QLoRA style)"),
    new_code_cell(
        "import peft\n"
        "lora = peft.get_peft_model(reloaded, peft.LoraConfig(r=8, target_modules=['query', 'value']))\n"
        "opt = torch.optim.AdamW([p for p in lora.parameters() if p.requires_grad], lr=1e-3)\n"
        "batch = tokenizer(texts[:8], padding=True, return_tensors='pt')\n"
        "hidden = lora(**batch).last_hidden_state\n"
        "loss = torch.nn.functional.mse_loss(hidden[:, 0], reference[:8])\n"
        "loss.backward(); opt.step()\n"
        "print('loss', loss.item())"
    ),
]
nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
if __name__ == "__main__":
    import pathlib

    nbformat.write(nb, pathlib.Path(__file__).with_name("quickstart.ipynb"))
