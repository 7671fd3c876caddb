"""Bridges to the tools researchers already run; each needs its own extra (``judge[inspect]``),
so importing ``judge`` never imports them."""
