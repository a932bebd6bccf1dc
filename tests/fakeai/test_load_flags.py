"""``fakeai load`` refuses flags that could only hang or mislead, with one line naming the flag."""

import pytest

from fakeai.__main__ import _parser
from fakeai.tools.load import plans


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--concurrency", "0"], "argument --concurrency: must be at least 1, got 0"),
        (["--processes", "x"], "argument --processes: not a number: 'x'"),
        (["--stream-ratio", "1.5"], "argument --stream-ratio: a share is at most 1, got 1.5"),
        (["--rps", "-1"], "argument --rps: must be at least 0, got -1"),
        (["--check-quantiles", "0.75"], "argument --check-quantiles: choose among 0.5, 0.9, 0.99"),
    ],
)
def test_bad_flags_are_refused_naming_the_flag(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args(["load", *flags])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"fakeai load: error: {message}"


def test_worker_processes_share_the_run_and_its_concurrency():
    args = _parser().parse_args(["load", "--requests", "10", "--concurrency", "5", "--processes", "2"])
    shares = plans(args)
    assert [(p.offset, p.stride, p.concurrency) for p in shares] == [(0, 2, 3), (1, 2, 2)]
    assert len({p.start_at for p in shares}) == 1  # one schedule origin for all
    one = plans(_parser().parse_args(["load", "--requests", "1", "--processes", "4"]))
    assert len(one) == 1  # never more processes than requests
