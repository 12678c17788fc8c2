"""The CDK app's stack and constructs: read stack.py first, it shows the architecture.

The function's own code (`copier`, lambda/) is imported as the Lambda runtime imports it, for what the stack and the
function must agree on (e.g. the copies a second the read budgets allow: copier.budgets)."""

import sys
from pathlib import Path

FUNCTION_SOURCE = Path(__file__).resolve().parent.parent / "lambda"
if str(FUNCTION_SOURCE) not in sys.path:
    sys.path.append(str(FUNCTION_SOURCE))
