"""Pick example ids from trained artifacts for `make demo`: python -m recsys_cli.demo warm|few|product.

warm: the customer with the longest history; few: a customer with exactly one or two distinct
products that the router sends to content similarity; product: the most popular product.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .service import CONTENT, RecommendationService


def pick(service: RecommendationService, kind: str) -> str:
    dataset = service.dataset
    if kind == "product":
        return str(dataset.items.external_ids[service.popularity.ranking[0]])
    distinct = np.diff(dataset.interactions.indptr)
    if kind == "warm":
        return str(dataset.users.external_ids[int(np.argmax(distinct))])
    candidates = np.flatnonzero((distinct >= 1) & (distinct <= 2))
    routed = service.route(candidates, dataset.history(candidates), 1).route
    chosen = candidates[routed == CONTENT]
    return str(dataset.users.external_ids[int(chosen[0] if len(chosen) else candidates[0])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["warm", "few", "product"])
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    args = parser.parse_args()
    print(pick(RecommendationService.load(args.artifacts), args.kind))


if __name__ == "__main__":
    main()
