"""What a team would write instead of `reconciler plan`: the vendor's SDK reading the same pages with 32 threads.

Run as ``python -m benchmarks.sdk_reader URL SCOPES.json [--threads 32]`` (the benchmark does it, see
`sdk_side_by_side`). SCOPES.json is ``{"groups": [...], "stages": [...]}``. It reads what plan reads for
those manifests, page by page with the SDK's synchronous client (PageSize 100): every signature
(the listing twice when it has several pages, as plan does to catch a change between pages, so that
both send the same requests), the bindings of every (group, stage), the API list of every group;
and prints how many items of each it holds.
"""

from __future__ import annotations

import argparse
import json
import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from alibabacloud_cloudapi20160714 import models
from alibabacloud_cloudapi20160714.client import Client
from alibabacloud_tea_openapi.models import Config

from reconciler.emulator.server import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET

PAGE_SIZE = 100


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("scopes", type=Path)
    parser.add_argument("--threads", type=int, default=32)
    args = parser.parse_args()
    scopes = json.loads(args.scopes.read_text(encoding="utf-8"))
    local = threading.local()

    def client() -> Client:  # the SDK's client is not documented as thread-safe: one a thread
        if not hasattr(local, "client"):
            local.client = Client(Config(access_key_id=DEFAULT_ACCESS_KEY_ID,
                                         access_key_secret=DEFAULT_ACCESS_KEY_SECRET,
                                         endpoint=urlsplit(args.url).netloc, protocol="http"))
        return local.client

    def signatures(page: int) -> Any:
        return client().describe_signatures(models.DescribeSignaturesRequest(page_number=page,
                                                                             page_size=PAGE_SIZE)).body

    def bindings(group: str, stage: str) -> list[Any]:
        body = client().describe_api_signatures(models.DescribeApiSignaturesRequest(
            group_id=group, stage_name=stage, page_number=1, page_size=PAGE_SIZE)).body
        assert body.total_count <= PAGE_SIZE, "the benchmark's scopes fit one page"
        return list(body.api_signatures.api_signature_item)

    def apis(group: str) -> list[Any]:
        body = client().describe_apis(models.DescribeApisRequest(group_id=group, page_number=1,
                                                                 page_size=PAGE_SIZE)).body
        assert body.total_count <= PAGE_SIZE, "the benchmark's groups fit one page"
        return list(body.api_summarys.api_summary)

    with ThreadPoolExecutor(args.threads) as pool:
        first = signatures(1)
        pages = max(1, math.ceil(first.total_count / PAGE_SIZE))
        jobs: list[Callable[[], Any]] = []
        reads = 1 if pages == 1 else 2
        for read in range(reads):
            jobs += [lambda n=n: signatures(n) for n in range(1 if read else 2, pages + 1)]
        jobs += [lambda g=g, s=s: bindings(g, s) for g in scopes["groups"] for s in scopes["stages"]]
        jobs += [lambda g=g: apis(g) for g in scopes["groups"]]
        results = list(pool.map(lambda job: job(), jobs))
    signature_pages = [first, *results[: reads * pages - 1]]
    listed = sum(len(p.signature_infos.signature_info) for p in signature_pages) // reads
    rest = results[reads * pages - 1:]
    bound = sum(len(r) for r in rest[: len(scopes["groups"]) * len(scopes["stages"])])
    api_count = sum(len(r) for r in rest[len(scopes["groups"]) * len(scopes["stages"]):])
    print(json.dumps({"signatures": listed, "bindings": bound, "apis": api_count}))


if __name__ == "__main__":
    main()
