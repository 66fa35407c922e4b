"""napari_unet asks PyTorch for transparent huge pages before torch is imported."""

import os
import subprocess
import sys

import pytest

# records the variable at the moment torch is first imported, then uses napari_unet
# ({use}: the package imports torch only when a name that needs it is first used)
CHECK = """
import importlib.abc, os, sys
seen = []
class Spy(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "torch" and not seen:
            seen.append(os.environ.get("THP_MEM_ALLOC_ENABLE"))
        return None
sys.meta_path.insert(0, Spy())
{use}
print(seen[0], os.environ.get("THP_MEM_ALLOC_ENABLE"))
"""


@pytest.mark.parametrize(
    "use", ["import napari_unet; napari_unet.UNet", "import napari_unet.core.inference"]
)
@pytest.mark.parametrize(("given", "expected"), [(None, "1"), ("0", "0")])
def test_set_before_torch_is_imported_unless_the_user_chose(given, expected, use):
    environment = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    if given is not None:
        environment["THP_MEM_ALLOC_ENABLE"] = given
    result = subprocess.run(
        [sys.executable, "-c", CHECK.format(use=use)],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    at_torch_import, afterwards = result.stdout.split()
    assert at_torch_import == expected
    assert afterwards == expected
