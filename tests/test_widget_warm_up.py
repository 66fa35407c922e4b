"""The Fine-tune section pays torch's one-off optimizer imports when it opens, in a thread."""

import pytest

from napari_unet._widgets import FinetuneWidget

pytestmark = pytest.mark.gui


def test_the_finetune_section_builds_torchs_first_optimizer_when_it_opens(make_napari_viewer):
    """torch's first optimizer imports its compiler stack holding the GIL (0.3-0.9 s): that
    must happen in a thread started when the section is built, not in the first fine-tune's
    worker."""
    from napari_unet._widgets._warm_up import start_optimizer_warm_up, warm_up_optimizer

    viewer = make_napari_viewer()
    FinetuneWidget(viewer)
    thread = start_optimizer_warm_up()  # the one the section started (once per process)
    assert thread.daemon and thread.name == "napari-unet optimizer warm-up"
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert warm_up_optimizer.cache_info().currsize == 1  # the optimizer was built
    FinetuneWidget(viewer)
    assert start_optimizer_warm_up() is thread
