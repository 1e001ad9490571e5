from funreason_msl.cli import segment_table
from funreason_msl.data import BuildReport
from funreason_msl.labels import Example
from funreason_msl.loss import RESULT, THINK
from funreason_msl.stats import segment_stats
from rich.console import Console


class Examples:
    def __init__(self, *examples: Example):
        self.examples, self.report = list(examples), BuildReport()


def example(think: int, result: int) -> Example:
    segments = [0] * 3 + [THINK] * think + [RESULT] * result
    return Example(
        input_ids=[1] * len(segments), labels=[1] * len(segments), segments=segments, turns=[(3, 3 + think + result)]
    )


def test_the_loss_share_is_rounded_once_as_it_is_shown():
    # 9 think tokens of 44: 20.45%, shown as 20.5% (rounded to 0.2045 first, it showed 20.4%: shares summing to 99.9%)
    stats = segment_stats(Examples(example(5, 11), example(0, 10), example(4, 14)))  # type: ignore[arg-type]
    assert stats["think"]["sft_loss_share"] == 9 / 44 and stats["result"]["sft_loss_share"] == 35 / 44
    console = Console(record=True, width=160)
    console.print(segment_table(stats))
    rows = {line.split()[0]: line.split()[-1] for line in console.export_text().splitlines() if line.split()}
    assert (rows["think"], rows["result"]) == ("20.5%", "79.5%")
