"""riverbed in other people's training loops.

- :mod:`riverbed.integrations.hf`: ``transformers.Trainer`` wiring (``riverbed_optimizers``,
  ``wsd_from_args``, ``wsd_scheduler``), the spike-guard and PMA-monitor callbacks (``riverbed[hf]``).
- :mod:`riverbed.integrations.lightning`: the same callbacks for ``lightning.Trainer`` (``riverbed[lightning]``).
- :mod:`riverbed.integrations.snapshot_guard` and :mod:`riverbed.integrations.pma_snapshots`: the
  framework-neutral guard and PMA snapshots both use.
"""
