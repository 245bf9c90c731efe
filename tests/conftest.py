import os

import pytest

from tests.harness import Farm

# Tests never read the developer's config.yml, .env or Redis by accident.
for var in ("REDIS_URL", "FARM_CONFIG", "FARM_REDIS_URL", "FARM_PROVIDER", "FARM_DATA_DIR"):
    os.environ.pop(var, None)
os.environ["FARM_ENV_FILE"] = "/nonexistent/.env"


@pytest.fixture
def farm(tmp_path):
    """A real redis-server (unix socket, AOF) and a scheduler; start workers with farm.worker()."""
    with Farm(tmp_path) as f:
        yield f
