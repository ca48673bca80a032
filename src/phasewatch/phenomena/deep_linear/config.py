"""The deep linear network's config: target modes, widths, depth and initial scale
(Saxe, McClelland & Ganguli 2014, arXiv 1312.6120, §2)."""

from __future__ import annotations

from dataclasses import dataclass

from phasewatch.config import require


@dataclass(frozen=True)
class DeepLinearConfig:
    """A deep linear network learning a linear target map one singular mode at a time.

    Attributes:
        d: input and output dimension (the target map is d × d).
        hidden: width of every hidden layer.
        depth: number of weight matrices (2 = one hidden layer, Saxe et al.'s case).
        modes: the target's nonzero singular values s_1 > s_2 > ..., comma-separated on
            the command line; mode i is learned after a plateau of about
            (τ / 2 s_i) · ln(s_i / a_0) steps (τ = 1/lr, depth 2).
        drop_last: train on the target *without* its last mode (a null run: the same
            model, optimiser and budget, but no last transition to make).
        init_scale: standard deviation of every initial weight (small: saddle-to-saddle
            dynamics need a small initialisation).
        n_train: training inputs, exactly whitened (Σ_xx = I; needs n_train >= d).
        n_test: held-out Gaussian inputs.
    """

    d: int = 10
    hidden: int = 10
    depth: int = 2
    modes: tuple[float, ...] = (4.0, 2.0, 1.0)
    drop_last: bool = False
    init_scale: float = 0.01
    n_train: int = 200
    n_test: int = 200

    def __post_init__(self) -> None:
        for name in ("d", "hidden", "n_test"):
            require(getattr(self, name) >= 1, name, "an integer >= 1", getattr(self, name))
        require(self.depth >= 2, "depth", "an integer >= 2", self.depth)
        ok = 1 <= len(self.modes) <= min(self.d, self.hidden) and all(s > 0 for s in self.modes)
        require(
            ok and list(self.modes) == sorted(set(self.modes), reverse=True),
            "modes",
            f"1 to min(d, hidden) = {min(self.d, self.hidden)} distinct positive values, "
            "in decreasing order",
            self.modes,
        )
        require(self.init_scale > 0, "init_scale", "a float > 0", self.init_scale)
        require(self.n_train >= self.d, "n_train", f"an integer >= d ({self.d})", self.n_train)

    @property
    def target_modes(self) -> tuple[float, ...]:
        """The singular values actually in the target (the last one dropped for a null)."""
        return self.modes[:-1] if self.drop_last else self.modes
