"""Operator tools (docs/operators.md): zone editor, replay report, explain, threshold sweep.

zone_editor.py + static/zone_editor.html   `detector zones`: draw zones on a frame, save to the YAML
observe.py      what each (zone, type) rule saw in one frame: shared by the report and explain
timeline.py     per-frame rule states over a replay, drawn as an inline SVG
report.py       `detector replay --report`: report.html with alerts, snapshots, timeline, score
cache.py        per-clip cache of the detect stage (model + static objects), as .npz
rules_only.py   the track-and-judge stage of the real pipeline over cached detections
sweep.py        `detector tune`: every combination of settings, scored against ground truth
explain.py      `detector explain`: why an alert did or did not fire in a time range
"""
