"""Text from a next-token model: sample new tokens after a prompt (temperature, top-k), the context cropped to
the model's block size, as nanoGPT's `generate` does. No UI: the prediction view, `torchtui predict --prompt`
and tests call it."""

from __future__ import annotations

import torch

from torchtui.engine.errors import DataError

NEWLINE = "\n"  # what an empty prompt starts from: a char corpus's most common separator


@torch.inference_mode()
def generate(model: torch.nn.Module, prompt: list[int], tokens: int, block_size: int, temperature: float = 1.0,
             top_k: int = 0, vocab_size: int | None = None, seed: int | None = None) -> list[int]:
    """`tokens` new ids after `prompt`. temperature 0 takes the most likely token each time; top_k > 0 samples
    among the k likeliest only. Logits past `vocab_size` (a model sized for a larger vocabulary) are never
    chosen. The ids stay on the model's device until the end: one host sync, not one per token."""
    device = next(model.parameters()).device
    idx = torch.tensor([prompt], dtype=torch.long, device=device)
    gen = None
    if seed is not None:  # the same sample each evaluation of the same weights (on CPU; CUDA has its own stream)
        gen = torch.Generator(device=device).manual_seed(seed)
    for _ in range(tokens):
        logits = model(idx[:, -block_size:])[:, -1, :vocab_size].float()
        if temperature <= 0:
            nxt = logits.argmax(dim=-1, keepdim=True)
        else:
            logits = logits / temperature
            if top_k and top_k < logits.shape[-1]:
                kth = torch.topk(logits, top_k).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            nxt = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=gen)
        idx = torch.cat([idx, nxt], dim=1)
    return idx[0, len(prompt):].tolist()


def prompt_ids(tokenizer, prompt: str, field: str) -> list[int]:
    """The prompt's ids (a new line, or id 0, for an empty one); a text the tokenizer cannot encode is a DataError
    naming `field`."""
    try:
        ids = tokenizer.encode(prompt or NEWLINE).tolist()
    except DataError as err:
        if prompt:
            raise DataError(f"{field}: {err}") from None
        ids = []
    return ids or [0]


def sample_text(model, tokenizer_spec: dict | None, prompt: str, tokens: int, block_size: int,
                temperature: float, top_k: int, vocab_size: int, seed: int | None = None) -> tuple[str, str]:
    """(the generated text, a note): decoded with the data's tokenizer; without one (token ids from the user's
    code) the ids themselves, with a note saying why."""
    if not tokenizer_spec:
        ids = generate(model, [0], tokens, block_size, temperature, top_k, vocab_size, seed)
        return " ".join(map(str, ids)), "the data came without a tokenizer (token ids from code): ids shown"
    from torchtui.engine.data.text.tokenizer import Tokenizer

    tok = Tokenizer.from_spec(tokenizer_spec)
    start = prompt_ids(tok, prompt, "predict.prompt")
    return tok.decode(generate(model, start, tokens, block_size, temperature, top_k, vocab_size, seed)), ""
