"""``python -m napari_unet``: the ``napari-unet`` command, as ``python -m napari_unet.cli``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
