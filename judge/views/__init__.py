"""Views: verdicts and the statistics of ``judge.reports`` rendered for people to read.

A view computes no statistics of its own; it lays out what ``judge.reports`` and
``judge.calibration`` compute: ``judge.views.tables`` for the terminal (rich), and
``judge.views.html`` for one self-contained HTML file.
"""
