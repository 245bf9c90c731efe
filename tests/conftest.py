import os

import pytest

from tests.harness import Farm

# Tests never read the developer's config.yml, .env or Redis by accident.
for var in ("REDIS_URL", "FARM_CONFIG", "FARM_REDIS_URL", "FARM_PROVIDER", "FARM_DATA_DIR"):
    os.environ.pop(var, None)
os.environ["FARM_ENV_FILE"] = "/nonexistent/.env"
# Nor a terminal size: pytest-xdist's workers inherit COLUMNS=80/LINES=24 from execnet, which a
# plain pytest run does not; a test that wants a width sets COLUMNS itself.
for var in ("COLUMNS", "LINES"):
    os.environ.pop(var, None)


@pytest.fixture
def farm(tmp_path):
    """A real redis-server (unix socket, AOF) and a scheduler; start workers with farm.worker()."""
    with Farm(tmp_path) as f:
        yield f
