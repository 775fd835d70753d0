"""Pick example ids from trained artifacts for `make demo`: python -m recsys_cli.demo warm|few|product|all.

warm: the customer with the longest history; few: `--viewed` options for two related products, so a
visitor new to the shop gets content similarity; product: the most popular product; all: the three
as shell assignments (warm=... few=... product=...), loading the artifacts once.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

import numpy as np

from .service import RecommendationService


def pick(service: RecommendationService, kind: str) -> str:
    dataset = service.dataset
    if kind == "product":
        return str(dataset.items.external_ids[service.popularity.ranking[0]])
    distinct = np.diff(dataset.interactions.indptr)
    if kind == "warm":
        return str(dataset.users.external_ids[int(np.argmax(distinct))])
    # few: two products from one category, as `--viewed` options for a visitor new to the shop
    top = service.popularity.ranking[0]
    similar, _ = service.content.similar_items(np.array([top]), k=1)
    return " ".join(f"--viewed {dataset.items.external_ids[i]}" for i in (top, similar[0, 0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["warm", "few", "product", "all"])
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    args = parser.parse_args()
    service = RecommendationService.load(args.artifacts)
    if args.kind == "all":
        print(" ".join(f"{kind}={shlex.quote(pick(service, kind))}" for kind in ("warm", "few", "product")))
    else:
        print(pick(service, args.kind))


if __name__ == "__main__":
    main()
