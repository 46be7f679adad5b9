"""Snapshots and what a run compares them with.

A *snapshot* is what a unit looked like: its signature, cost and seeded values, one JSON
file per unit. A *baseline* is what a run compares the units with: the committed
snapshots, a directory of snapshot files, or the snapshots of a base git ref taken on
the fly. The modules, bottom up:

- :mod:`.diff`: how two snapshots differ (pure data);
- :mod:`.store`: snapshot files (where, layout, read/write) and the per-unit baseline record;
- :mod:`.update`: what ``torchvet snapshot`` does with an existing file;
- :mod:`.base_ref`: a base git ref's files in a directory of their own;
- :mod:`.changes`: the Model changes table of a run against a baseline;
- :mod:`.jobs`: snapshot-only jobs, jobs with a baseline, the Model changes rows;
- :mod:`.command`: ``torchvet snapshot`` and the baseline of ``torchvet run --baseline``;
- :mod:`.compute`: the worker side, a unit's snapshot computed with torch.

Only :mod:`.compute` imports torch; nothing here imports it on import of the package.
"""
