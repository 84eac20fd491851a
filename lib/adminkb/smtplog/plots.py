"""Figures for the time series and top-N tables, drawn with the CJK font of adminkb.plotting."""

from __future__ import annotations

import pandas as pd
from matplotlib.dates import DateFormatter
from matplotlib.ticker import MaxNLocator

from adminkb.i18n import message
from adminkb.plotting import RenderedFigure, new_figure, render_png
from adminkb.smtplog.labels import label

_HOURLY_SERIES = ("connections", "messages_received", "outbound_connections", "messages_sent")


def _no_data(axes) -> None:  # noqa: ANN001 - matplotlib Axes
    axes.text(0.5, 0.5, message("smtplog.plot.no_data"), ha="center", va="center", transform=axes.transAxes)
    axes.set_xticks([])
    axes.set_yticks([])


def plot_hourly(hourly: pd.DataFrame, zone: str) -> RenderedFigure:
    """Draw connections and messages per hour as lines, with the hours in `zone` on the x axis.

    `hourly` is the internal-key table of `SmtpLogAnalysis.hourly_data()`. Series that are zero
    in every hour are left out, so an inbound-only log shows no empty outbound lines.
    """
    figure = new_figure(9, 4)
    axes = figure.add_subplot()
    axes.set_title(message("smtplog.plot.hourly_title", zone=zone))
    if hourly.empty:
        _no_data(axes)
        return render_png(figure)
    # Local wall-clock hours: matplotlib would otherwise draw aware times in UTC.
    hours = pd.to_datetime(hourly["hour"])
    if hours.dt.tz is not None:
        hours = hours.dt.tz_localize(None)
    for column in _HOURLY_SERIES:
        if hourly[column].sum() > 0:
            axes.plot(hours, hourly[column], marker="o", label=label(column))
    axes.set_xlabel(label("hour", zone=zone))
    axes.set_ylabel(message("smtplog.plot.hourly_ylabel"))
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.xaxis.set_major_formatter(DateFormatter("%m-%d %H:%M"))
    axes.set_ylim(bottom=0)
    axes.grid(True, alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend()
    figure.autofmt_xdate()
    return render_png(figure)


def plot_top(table: pd.DataFrame, name_column: str, value_column: str, title: str) -> RenderedFigure:
    """Draw a top-N table as horizontal bars, the largest at the top.

    `table` has internal column keys and is sorted largest first, as the `*_data` methods return it.
    """
    figure = new_figure(8, max(2.5, 0.45 * len(table) + 1.2))
    axes = figure.add_subplot()
    axes.set_title(title)
    if table.empty:
        _no_data(axes)
        return render_png(figure)
    names = [str(name) for name in table[name_column]][::-1]
    values = [int(value) for value in table[value_column]][::-1]
    bars = axes.barh(names, values)
    axes.bar_label(bars, padding=3)
    axes.set_xlabel(label(value_column))
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlim(0, max(values) * 1.15 + 1)
    return render_png(figure)
