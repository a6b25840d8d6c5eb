import sys
from pathlib import Path

# the example plugin as an author has it before packaging: importable from its folder
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "checkup_plugin"))
