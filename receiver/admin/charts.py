"""Small charts for the console, drawn here as SVG: no script, nothing fetched, and nothing in
them but numbers and escaped text. Pure."""

from collections.abc import Sequence

from markupsafe import Markup

HEIGHT = 48
BAR = 4
"""Width of one bar in the drawing's own units; the SVG scales to the width of its box."""


RECT = Markup('<rect x="{x}" y="{y:.1f}" width="{w}" height="{h:.1f}"/>')
SVG = Markup(
    '<svg class="chart" viewBox="0 0 {width} {height}" preserveAspectRatio="none" role="img" '
    'aria-label="{title}"><title>{title}</title>'
    '<line x1="0" y1="{height}" x2="{width}" y2="{height}"/>{shapes}</svg>'
)


def bars(values: Sequence[int], label: str) -> Markup:
    """One bar per value (a minute), the oldest on the left, scaled to the largest; with a
    title that says what it shows, for a screen reader and a hovering pointer. Whatever is not
    a number is escaped (``Markup.format``)."""
    top = max(values, default=0)
    width = max(len(values), 1) * BAR
    shapes = Markup("").join(
        RECT.format(x=i * BAR, y=HEIGHT - h, w=BAR - 1, h=h)
        for i, h in ((i, max(1.0, HEIGHT * v / top)) for i, v in enumerate(values) if v > 0)
    )
    title = f"{label}: {sum(values)} in {len(values)} min, at most {top} a minute"
    return SVG.format(width=width, height=HEIGHT, title=title, shapes=shapes)
