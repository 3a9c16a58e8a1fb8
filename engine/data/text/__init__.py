"""Text as token ids: tokenizers (tokenizer.py), corpora read into a memory-mapped token cache (corpus.py)."""
