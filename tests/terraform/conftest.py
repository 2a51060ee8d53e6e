"""tests/terraform: static checks of the Terraform deployment (no AWS, no network).

The helpers live next to the tests (_tf_hcl.py); make them importable whatever
pytest's import mode is.
"""

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
