"""``python -m bridge``: a wrong ``--mapping`` ends in one line naming what is wrong, never a traceback."""

import pytest

from bridge.__main__ import load_mapping, main
from exporter.stream import STREAM_MAPPING

SCRAPE = ["--scrape", "http://127.0.0.1:9/metrics"]


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("exporter.stream:MAPPING", "has no attribute 'MAPPING' (its Mappings: STREAM_MAPPING)"),
        ("no_such_module_anywhere", "no module named 'no_such_module_anywhere'"),
        ("exporter.no_such_module:X", "no module named 'exporter.no_such_module'"),
        ("exporter.stream:", "expected MODULE:ATTRIBUTE or MODULE"),
        (":STREAM_MAPPING", "expected MODULE:ATTRIBUTE or MODULE"),
        ("bridge.protocol:MAX_WINDOW", "is a float, not a bridge.categories.Mapping"),
        ("bridge.protocol", "defines 0 Mappings (none); name one"),
    ],
)
def test_a_bad_mapping_exits_with_one_line(spec, says):
    with pytest.raises(SystemExit) as exited:
        main([*SCRAPE, "--mapping", spec])
    message = str(exited.value.code)
    assert says in message and "\n" not in message and message.startswith("python -m bridge: --mapping: ")


def test_a_module_alone_names_its_one_mapping():
    assert load_mapping("exporter.stream") is STREAM_MAPPING
    assert load_mapping("exporter.stream:STREAM_MAPPING") is STREAM_MAPPING
