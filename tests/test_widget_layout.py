"""The U-Net dock in a shown window: no section's controls are cut off on the right."""

from __future__ import annotations

import pytest
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QScrollArea

from napari_unet._widgets import UNetWidget

pytestmark = pytest.mark.gui


def test_every_section_fits_the_dock_width(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1500, 980)
    widget = UNetWidget(viewer)
    dock = viewer.window.add_dock_widget(widget, name="U-Net")
    qtbot.waitExposed(widget)
    # the user drags the dock narrow: it stops where the widest section still fits
    viewer.window._qt_window.resizeDocks([dock], [150], Qt.Orientation.Horizontal)
    for index in range(widget.tabs.count()):
        widget.tabs.setCurrentIndex(index)
        scroll = widget.tabs.widget(index)
        assert isinstance(scroll, QScrollArea)
        section = scroll.widget()

        def fits(scroll=scroll, section=section) -> bool:  # once the layout has settled
            viewport = scroll.viewport().width()
            return section.minimumSizeHint().width() <= viewport and section.width() <= viewport

        qtbot.waitUntil(fits, timeout=5_000)
