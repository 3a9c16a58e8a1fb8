"""What a model needs to know when its inputs are token ids: the vocabulary, the padding id, and whether it
predicts every position (next-token data, task "tokens") or one output per sequence (text classification)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

TOKEN_KINDS = ("transformer", "rnn", "custom")  # kinds told about token inputs (built-ins embed them first)


@dataclass(frozen=True)
class TokenInput:
    vocab_size: int
    pad_id: int | None = None
    per_token: bool = False      # outputs (N, T, vocab) for next-token targets (N, T)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> TokenInput | None:
        return cls(**data) if isinstance(data, dict) else None


def token_input(task: str, n_classes: int, tokenizer: dict | None, x_is_integer: bool,
                max_id: int | None = None) -> TokenInput | None:
    """The token description of a data set, or None for float inputs.

    Next-token data predicts its own vocabulary (n_classes); classification over ids takes the tokenizer's
    vocabulary, or max id + 1 when the user's code brought ids without a tokenizer."""
    if not x_is_integer:
        return None
    spec = tokenizer or {}
    pad = spec.get("pad_id")
    if task == "tokens":
        return TokenInput(int(n_classes), pad, per_token=True)
    vocab = spec.get("vocab_size") or (max_id + 1 if max_id is not None else 0)
    return TokenInput(int(vocab), pad, per_token=False)
