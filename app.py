#!/usr/bin/env python3
"""CDK entry point: `cdk synth -c datastoreId=<id>` (settings: docs/configuration.md)."""

import sys

from infra.app import build_app
from infra.settings import SettingsError

try:
    build_app().synth()
except SettingsError as error:
    sys.exit(f"cdk.json / -c settings: {error}")
