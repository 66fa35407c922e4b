"""The docks in a shown window: no section's controls are cut off on the right, and
sections in docks of their own scroll instead of growing the window."""

from __future__ import annotations

import pytest
from qtpy.QtCore import QPoint, Qt
from qtpy.QtWidgets import QScrollArea

from napari_unet._widgets import (
    AnnotateWidget,
    FinetuneWidget,
    ModelWidget,
    PredictWidget,
    UNetWidget,
)
from napari_unet._widgets._section_scroll import DOCK_MIN_HEIGHT, SectionDock

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


def test_the_loss_curve_is_in_view_without_scrolling(make_napari_viewer, qtbot):
    """At napari's default window size on a small screen, Start, the status and the loss
    curve of the Fine-tune section show without scrolling: the options beyond the time
    budget wait behind "More options", and still reach the run when hidden."""
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1066, 651)
    widget = UNetWidget(viewer)
    viewer.window.add_dock_widget(widget, name="U-Net")
    finetune, settings = widget.finetune, widget.finetune.settings
    index = next(
        i for i in range(widget.tabs.count()) if widget.tabs.widget(i).widget() is finetune
    )
    widget.tabs.setCurrentIndex(index)
    scroll = widget.tabs.widget(index)
    qtbot.waitExposed(finetune.plot)
    assert not any(shown(control, settings) for control in settings.advanced)

    def plot_bottom() -> int:
        return finetune.plot.mapTo(finetune, QPoint(0, finetune.plot.height())).y()

    qtbot.waitUntil(lambda: plot_bottom() <= scroll.viewport().height(), timeout=5_000)
    settings.more.value = True
    assert all(shown(control, settings) for control in settings.advanced)
    qtbot.waitUntil(lambda: plot_bottom() > scroll.viewport().height(), timeout=5_000)
    settings.iterations.value, settings.w0.value = 7, 3.0
    settings.more.value = False
    assert settings.train_config().iterations == 7 and settings.weight_config().w0 == 3.0


def shown(control, container) -> bool:
    """Whether ``control`` shows when ``container`` does (its own and its label's)."""
    return control.native.isVisibleTo(container.native)


def test_four_docks_of_their_own_scroll_inside_the_window(make_napari_viewer, qtbot):
    """All four sections opened from the Plugins menu: the window keeps its height (it
    grew past a laptop's screen, cutting texts), each dock scrolls its section, and
    none is squeezed below a few rows of controls."""
    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(1400, 900)
    kinds = {"Model": ModelWidget, "Annotate": AnnotateWidget}
    kinds |= {"Fine-tune": FinetuneWidget, "Predict": PredictWidget}
    docks = {}
    for name, kind in kinds.items():
        _, docks[name] = viewer.window.add_plugin_dock_widget("napari-unet", name)
        assert isinstance(docks[name], SectionDock) and isinstance(docks[name].section, kind)
    qtbot.waitExposed(docks["Predict"])
    qtbot.waitUntil(lambda: window.height() == 900, timeout=5_000)
    for dock in docks.values():
        assert dock.height() >= DOCK_MIN_HEIGHT
        assert dock.section.minimumSizeHint().width() <= dock.viewport().width()
    predict = docks["Predict"]
    bar = predict.verticalScrollBar()
    assert predict.section.height() > predict.viewport().height() and bar.maximum() > 0
