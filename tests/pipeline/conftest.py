"""Make the synthetic-data builder importable by the pipeline tests."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
