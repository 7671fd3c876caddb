"""Views: verdicts and the statistics of ``judge.reports`` rendered for people to read.

A view computes no statistics of its own; it lays out what ``judge.reports`` and
``judge.calibration`` compute. ``judge.views.html`` renders one self-contained HTML file.
"""
