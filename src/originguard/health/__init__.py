"""Origin health: active monitors, pool health and steering, passive outlier detection,
session affinity, origin alerts and their delivery.

Pure cores (``state``, ``outlier``, ``affinity``, ``alerts``) are functions of (input, now);
I/O lives at the rim (``probe``, ``scheduler``, ``notify``). Spec: cloudflare-spec.md §3-§6.
"""
