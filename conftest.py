"""Repository-wide pytest set-up (applies to tests/ and to the nbval pass over notebooks/)."""

import pytest


def pytest_collection_modifyitems(items):
    # Every notebook cell is slow: `make test-fast` (-m "not slow") leaves the nbval pass out.
    # nbval waits only 5 s for a cell's output messages after the cell finished; on a busy
    # 2-core machine a training cell's last progress-bar messages can take longer.
    for item in items:
        if type(item).__name__ == "IPyNbCell":
            item.output_timeout = 60
            item.add_marker(pytest.mark.slow)
