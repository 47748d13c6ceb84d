"""What the report builders take from the config: :class:`ReportOptions` (``reports`` and
``evaluation`` sections; built by :func:`sagea.plan_report.options_from_config`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ReportOptions:
    """Everything the builders need from the config (``reports`` and ``evaluation`` sections)."""

    k: int = 20
    test: str = "ttest"
    correction: str = "none"
    alpha: float = 0.05
    bootstrap: int = 1000
    seed: int = 42
    selection_pool: str = "valid"
    report_pool: str = "test"
    allow_selection_on_report_pool: bool = False
    main_option: str = "ti1-nu0"
    comparisons: list[dict] = field(default_factory=list)

    @property
    def com(self) -> str:
        return f"NDCG{self.k}_com"

    @property
    def ndcg(self) -> dict[str, str]:
        """Display label -> per-group column of the three NDCG views of the paper."""
        return {"com": f"NDCG{self.k}_com", "min": f"NDCG{self.k}_min", "mean": f"NDCG{self.k}_mean"}
