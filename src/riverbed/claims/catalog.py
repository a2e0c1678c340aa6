"""Which seed claims riverbed re-measures: text, source, study, what one seed's number is, and the rule.

Each claim is measured by one study (``riverbed.claims.studies``) as one number per seed; its
verdict compares that number with ``threshold`` in the claim's direction (``larger_holds``) under
the rule of :mod:`riverbed.claims.verdict`.

>>> by_id("epoch-refit").study
'epoch'
"""

from __future__ import annotations

from dataclasses import dataclass

from riverbed.claims.studies import DETERMINISTIC

PMA = "Li et al. 2025, PMA (arXiv 2505.12082)"
HAGELE = "Hägele et al. 2024 (arXiv 2405.18392)"
RIVER = "Wen et al. 2024, river valley (arXiv 2410.05192)"
WSDS = "Wen et al. 2024, WSD-S (arXiv 2410.05192)"
MPL = "Luo et al. 2025, Multi-Power Law (arXiv 2503.12811)"
SIZED = ("tiny", "1m")  # the WSD study's claims: measured at two model sizes, side by side
DEFAZIO = "Defazio et al. 2024, schedule-free (arXiv 2405.15682)"
EPOCH = "Besiroglu et al. 2024, Epoch AI (arXiv 2404.10102)"


@dataclass(frozen=True)
class Precondition:
    """What must be shown before a claim's number means anything: a second per-seed number (the
    study's value ``key``) that must hold above ``threshold`` on the same t-interval rule; where it
    does not, the claim's verdict is "inconclusive" and says why."""

    key: str
    text: str
    threshold: float = 0.0


@dataclass(frozen=True)
class ClaimSpec:
    id: str
    claim: str
    source: str
    study: str
    """The study (``riverbed.claims.studies.STUDIES``) whose job measures it."""
    measured: str
    """What one seed's number is (units)."""
    threshold: float
    larger_holds: bool = True
    """True: the claim holds above the threshold; False: below it (errors, tolerances)."""
    precondition: Precondition | None = None
    models: tuple[str, ...] = ("tiny",)
    """Model presets it is measured at (several where the verdict could depend on the size)."""

    @property
    def deterministic(self) -> bool:
        return self.study in DETERMINISTIC


CLAIMS: tuple[ClaimSpec, ...] = (
    ClaimSpec("pma-beats-last", "Merging stable-phase checkpoints beats the last checkpoint", PMA, "wsd",
              "held-out loss of the last constant-LR checkpoint minus that of the SMA of main's checkpoints over the last "
              "20 % of the run (nats)", 0.0, models=SIZED),
    ClaimSpec("merge-approximates-decay", "A merge approximates the decayed model", PMA, "wsd",
              "a difference, defined for every seed: the SMA merge's held-out gain over the last checkpoint minus "
              "half the 1-sqrt decay's gain, at the same tokens (nats; > 0 exactly when the merge closes more than "
              "half of a positive main-to-decayed gap)", 0.0, models=SIZED),
    ClaimSpec("wsd-vs-cosine", "WSD with a 20 % decay matches or beats cosine at equal tokens", HAGELE, "wsd",
              "cosine-run loss minus WSD 1-sqrt decay-branch loss at the same tokens (nats; match = within 0.01)", -0.01,
              models=SIZED),
    ClaimSpec("1sqrt-vs-linear", "1-sqrt decay is at least as good as linear", HAGELE, "wsd",
              "linear decay-branch loss minus 1-sqrt decay-branch loss, same fork and length (nats; tie = within 0.005)",
              -0.005, models=SIZED),
    ClaimSpec("drop-grows-with-lr", "The decay drop grows with the stable LR", RIVER, "wsd",
              "decay drop (main minus decayed loss) at the peak LR minus the drop at 1/3 of it (nats)", 0.0,
              precondition=Precondition("drop-grows-with-lr/decay-helps", "the decay lowers the held-out loss at the "
                                        "low LR (its drop > 0)"), models=SIZED),
    ClaimSpec("merges-converge-late", "SMA, EMA and WMA converge late in training", PMA, "wsd",
              "spread (max - min loss) of SMA/EMA/WMA merges at mid-run minus the spread at the end (nats)", 0.0,
              models=SIZED),
    ClaimSpec("wsds-vs-wsd", "WSD-S beats WSD at equal compute when several budgets come from one run", WSDS,
              "multibudget", "WSD decay-branch loss minus WSD-S decayed-checkpoint loss at equal total compute, "
              "mean over 3 budgets (nats)", 0.0),
    ClaimSpec("wsds-vs-cyclic", "WSD-S beats cyclic cosine at equal compute", WSDS, "multibudget",
              "cyclic-cosine cycle-end loss minus WSD-S decayed-checkpoint loss at the same steps, mean over 3 budgets "
              "(nats)", 0.0),
    ClaimSpec("wsd-matches-schedulefree", "WSD with a short decay matches schedule-free AdamW at equal tokens", DEFAZIO,
              "schedulefree", "schedule-free AdamW loss minus the WSD decay branch's (linear, last 10 % of the budget) "
              "at the same tokens, mean over the multi-budget study's budgets, each method's LR tuned on 3e-4, 1e-3, "
              "3e-3, 1e-2 (nats; match = within 0.01)", -0.01),
    ClaimSpec("schedulefree-beats-wsd-main", "Schedule-free AdamW's iterate beats WSD's undecayed main branch at every "
              "budget", DEFAZIO, "schedulefree", "smallest over the multi-budget study's budgets of the WSD main "
              "branch's loss minus schedule-free's at the same tokens, each LR tuned on 3e-4, 1e-3, 3e-3, 1e-2 "
              "(nats)", 0.0),
    ClaimSpec("pma-init-passes-spike", "PMA-init passes a loss spike and returns to the original trajectory", PMA,
              "spike", "final training loss of the PMA-init arm minus the unspiked reference run's, same seed "
              "(nats; back = within 0.05; stopped = 1)", 0.05, larger_holds=False),
    ClaimSpec("spike-hurts-unguarded", "Without intervention the spike leaves training off its trajectory", PMA,
              "spike", "final training loss of the unguarded arm minus the reference run's, same seed (nats; off = "
              "more than 0.05)", 0.05),
    ClaimSpec("branch-law-matches", "A data law fitted from WSD branch ends matches one from independent cosine runs "
              "(at ~half the compute)", HAGELE, "branch-law",
              "largest relative difference of L(D) = E + B/D^beta fitted on 4 decay-branch ends vs on 4 cosine runs, "
              "over their token range (match = below 1 %)", 0.01, larger_holds=False),
    ClaimSpec("epoch-refit", "Epoch AI's Chinchilla approach-3 refit is reproduced", EPOCH, "epoch",
              "largest relative error of (A, B, E, alpha, beta) refitted on Epoch's 240 points against Epoch's "
              "published 477.84, 2143.86, 1.8172, 0.3473, 0.3672 (tolerance 1 %)", 0.01, larger_holds=False),
    ClaimSpec("mpl-accurate", "The Multi-Power Law predicts a held-out decay branch's final loss to within 0.5 %", MPL,
              "predictor", "leave-one-out mean relative error of the MPL over 4 decay branches (%)", 0.5,
              larger_holds=False),
    ClaimSpec("mpl-beats-main", "The MPL prediction beats the undecayed main branch's loss as an estimate", MPL,
              "predictor", "leave-one-out mean relative error of main's loss at the branch's end step minus the "
              "MPL's (percentage points)", 0.0),
    ClaimSpec("mpl-beats-merge", "The MPL prediction beats a PMA merge as an estimate of the decayed loss", MPL,
              "predictor", "leave-one-out mean relative error of the SMA of main's last 4 checkpoints minus the "
              "MPL's (percentage points)", 0.0),
    ClaimSpec("optimal-beats-cosine", "The schedule that minimises the fitted law's final loss beats cosine", MPL,
              "optimal-schedule", "cosine-run loss minus the law-optimised schedule's loss at the same steps (nats)", 0.0),
    ClaimSpec("optimal-beats-wsd", "The law-optimised schedule ends slightly lower than WSD", MPL, "optimal-schedule",
              "loss of the better of WSD linear / 1-sqrt (each at its best decay fraction under the law) minus the "
              "law-optimised schedule's, same steps (nats)", 0.0),
    ClaimSpec("merge-interval-grows", "The best merge interval V grows with model size", PMA, "merge-interval",
              "slope of log2(best V) against log10(parameters) over 3 model sizes (4 at full size), the best V "
              "being that of the lowest-loss SMA of the last 4 checkpoints at the end of a constant-LR run", 0.0),
    ClaimSpec("decay-lowers-high-entropy", "On bigram data the decay mostly lowers the loss of high-entropy contexts",
              RIVER, "bigram", "held-out loss drop of the decay against the constant-LR control at equal tokens, in "
              "the high-entropy bucket minus the largest of the other buckets (nats)", 0.0),
    ClaimSpec("stable-line-interior-min", "Between two stable checkpoints the loss has an interior minimum below "
              "both ends", RIVER, "bigram", "min of the two ends minus the lowest interior point of the "
              "11-point line (nats)", 0.0),
    ClaimSpec("decay-line-monotone", "Toward a decayed checkpoint the loss falls monotonically", RIVER, "bigram",
              "largest rise between consecutive points of the 11-point line from the fork to the decayed "
              "checkpoint (nats; monotone = below 0)", 0.0, larger_holds=False),
)


def by_id(claim_id: str) -> ClaimSpec:
    for c in CLAIMS:
        if c.id == claim_id:
            return c
    raise KeyError(claim_id)
