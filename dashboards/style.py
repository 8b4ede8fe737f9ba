"""Colours and labels of the figures (:mod:`dashboards.figures` and both renderers)."""

from __future__ import annotations

# Plain, importance-sampled and group-robust: the same hue per kind in both families, darker for DPO.
METHOD_COLORS = {
    "dpo": "#2F4B7C",
    "is_dpo": "#B5651D",
    "gr_dpo": "#2E7D32",
    "ipo": "#4C72B0",
    "is_ipo": "#DD8452",
    "gr_ipo": "#55A868",
    "cdpo": "#8172B3",
    "rdpo": "#64B5CD",
    "dr_dpo": "#937860",
    "kl_dpo": "#DA8BC3",
}
OTHER_COLORS = ("#8C8C8C", "#CCB974", "#C44E52", "#17BECF", "#BCBD22", "#7F7F7F")
GROUP_COLORS = (
    "#4C72B0",
    "#DD8452",
    "#55A868",
    "#C44E52",
    "#8172B3",
    "#937860",
    "#DA8BC3",
    "#8C8C8C",
    "#CCB974",
    "#64B5CD",
)
WORST_COLOR = "#C0392B"

METHOD_LABELS = {
    "dpo": "DPO",
    "is_dpo": "IS-DPO",
    "gr_dpo": "GR-DPO",
    "ipo": "IPO",
    "is_ipo": "IS-IPO",
    "gr_ipo": "GR-IPO",
    "cdpo": "cDPO",
    "rdpo": "rDPO",
    "dr_dpo": "Dr. DPO",
    "kl_dpo": "KL-DPO",
}


def method_color(method: object, index: int = 0) -> str:
    """The colour of a method; other labels (e.g. evaluation runs) cycle through a second palette."""
    return METHOD_COLORS.get(str(method), OTHER_COLORS[index % len(OTHER_COLORS)])


def method_label(method: object) -> str:
    return METHOD_LABELS.get(str(method), str(method))


def group_color(index: int) -> str:
    return GROUP_COLORS[index % len(GROUP_COLORS)]


def rgba(hex_color: str, alpha: float) -> str:
    """``#RRGGBB`` -> ``rgba(r, g, b, alpha)`` (plotly's band fills)."""
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r}, {g}, {b}, {alpha})"
