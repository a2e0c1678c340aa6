"""riverbed in other people's training loops.

- :mod:`riverbed.integrations.hf`: ``transformers.Trainer`` wiring (``riverbed_optimizers``,
  ``wsd_from_args``, ``wsd_scheduler``), the spike-guard and PMA-monitor callbacks (``riverbed[hf]``).
- :mod:`riverbed.integrations.lightning`: the same callbacks for ``lightning.Trainer`` (``riverbed[lightning]``).
- :mod:`riverbed.integrations.snapshot_guard` and :class:`riverbed.merging.pma_snapshots.PMASnapshots`: the
  framework-neutral guard and PMA snapshots both use (the snapshots are also those of riverbed's own
  ``[pma]`` monitor).
"""
