"""The Dataset pane with text data (issue 28): the text fields only where they apply, and the engine's
preview of a corpus (size, vocabulary, tokens per character, a sample of its text) and of a CSV text column."""

from __future__ import annotations

from textual.app import App, ComposeResult

from torchtui.engine import presets
from torchtui.engine import protocol as p
from torchtui.engine.run.requests import forget_data, preview_data
from torchtui.tui.panes.dataset import DatasetPane


class PaneApp(App):
    def __init__(self, pane):
        super().__init__()
        self.pane = pane

    def compose(self) -> ComposeResult:
        yield self.pane


def shown(app, name: str) -> bool:
    return not app.query_one(f"#data-{name}-field").has_class("-irrelevant")


def previewed(data: dict) -> p.DataPreviewed:
    config = presets.load("moons").to_dict()
    config["data"] = data
    forget_data()
    return preview_data(p.PreviewData(config=config, max_points=50, request_id=1))


async def test_text_fields_show_only_where_they_apply_and_the_corpus_is_previewed(tmp_path):
    corpus = tmp_path / "tiny.txt"
    line = "to be, or not to be, that is the question:\n"
    corpus.write_text(line * 40)
    app = PaneApp(DatasetPane())
    async with app.run_test(size=(100, 60)) as pilot:
        assert not shown(app, "tokenizer") and not shown(app, "block_size")  # moons reads no text
        app.pane.set_values({"source": "text"})
        await pilot.pause()
        assert shown(app, "tokenizer") and shown(app, "block_size") and shown(app, "files") and shown(app, "limit")
        assert not shown(app, "vocab_size") and not shown(app, "text_columns")
        app.pane.set_values({"source": "text", "tokenizer": "bpe"})
        await pilot.pause()
        assert shown(app, "vocab_size")
        app.pane.set_values({"source": "csv", "tokenizer": "char"})
        await pilot.pause()
        assert shown(app, "text_columns") and not shown(app, "tokenizer")  # a CSV without text columns
        app.pane.set_values({"source": "csv", "text_columns": ["review"]})
        await pilot.pause()
        assert shown(app, "tokenizer") and shown(app, "block_size")

        reply = previewed({"source": "text", "path": str(corpus), "tokenizer": "char", "block_size": 32})
        assert not reply.error and reply.task == "tokens" and reply.x == []
        app.pane.show_preview(reply)
        await pilot.pause()
        lines = str(app.query_one("#data-columns").content)
        assert f"corpus: {len(line) * 40 / 1000:.1f} KB" in lines, lines
        assert f"vocabulary: {len(set(line))} char tokens · 1.000 tokens per character" in lines, lines
        assert "sample: to be, or not to be, that is the question:⏎to be, or" in lines, lines
        assert "next-token windows of 32" in str(app.query_one("#data-sizes").content)


async def test_a_csv_text_column_is_previewed_as_tokens():
    reviews = presets.builtin_dir() / "examples" / "reviews.csv"
    reply = previewed({"source": "csv", "path": str(reviews), "target": "sentiment", "tokenizer": "bytes",
                       "block_size": 64})
    assert not reply.error and reply.task == "binary"
    text = "\n".join(reply.columns)
    assert "text column(s) review: 257 bytes tokens" in text and "cut at block_size 64" in text, text
