"""Training logs of other trainers, read into riverbed's terms: ``read`` (trainer_state.json,
TensorBoard events, W&B-style CSV/TSV, JSONL -> series of (step, value) by role), ``columns``
(the one header-name -> role rule, also behind the scaling fit's CSV reader) and ``schedule``
(which riverbed schedule a logged LR follows)."""
