"""healthimaging-copy, installed: the HealthImaging CopyImageSet pipeline as a CDK construct.

    from healthimaging_copy import HealthImagingCopy

    HealthImagingCopy(stack, "ImagingCopy", datastore_id="...", copy_policy="merge-into-primary", alarm_topic=topic)

The wheel lays the repository's parts out under this package (pyproject.toml): `healthimaging_copy.infra` (the
construct, its settings model, the app's stack), `healthimaging_copy.ops` (the operator CLI, also the console
script `healthimaging-copy`) and `healthimaging_copy/lambda/` (the function's source, bundled from there). In the
repository, this file is all there is of it: import `infra` and `ops` there.
"""

from .infra.healthimaging_copy import HealthImagingCopy
from .infra.settings import SettingsError, StackSettings

__all__ = ["HealthImagingCopy", "SettingsError", "StackSettings"]
