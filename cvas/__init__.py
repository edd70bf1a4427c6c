"""cvas: the CVAS Beyond Data subscription analytics pipeline (library layer, no luigi)."""

__version__ = "0.1.0"
