"""Operator tools for a deployed stack (docs/operations.md).

They read and write the table with the function's own code (`copier`: one implementation of the journal,
the copy records and the backfill progress), imported as the Lambda runtime imports it: from the function's
source directory, which sits beside this package in the repository (lambda/) and in the installed package
(healthimaging_copy/lambda/) alike.
"""

import sys
from pathlib import Path

FUNCTION_SOURCE = Path(__file__).resolve().parent.parent / "lambda"
if str(FUNCTION_SOURCE) not in sys.path:
    sys.path.append(str(FUNCTION_SOURCE))
