"""Start `trialmatch mcp` over stdio with the MCP SDK's client, as an AI assistant would, and time it.

    python scripts/mcp_client_demo.py ["patient description"]

Prints the start-up time (the first start on an empty database includes loading the bundled trials),
the time of one `match_patient` call, the top trials with their labels and the first follow-up
questions. Settings come from the environment as for any trialmatch command (TRIALMATCH_DATABASE_URL,
TRIALMATCH_INSTANCE_PATH, ...). Needs the optional extra: pip install -c constraints.txt -e '.[mcp]'.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TEXT = ("52-year-old woman with SLE, lupus nephritis class IV on biopsy, failed mycophenolate and "
                "belimumab, UPCR 2.1 g/g")


async def main(text: str) -> None:
    params = StdioServerParameters(command=sys.executable, args=["-m", "assistant.cli", "mcp"],
                                   env=dict(os.environ), cwd=str(REPO))
    started = time.perf_counter()
    async with Client(params, read_timeout_seconds=900) as client:
        print(f"server ready in {time.perf_counter() - started:.1f}s")
        started = time.perf_counter()
        result = await client.call_tool("match_patient", {"text": text, "top_k": 5})
        print(f"match_patient in {time.perf_counter() - started:.1f}s")
        if result.is_error:
            print(result.content[0].text)
            return
        body = result.structured_content
        for m in body["matches"]:
            print(f"  {m['nct_id']}  {m['label']:<17} {m['score']:.3f}  {m['title'][:70]}")
        for q in body["questions"][:3]:
            print(f"  ? {q['text']}")


if __name__ == "__main__":
    anyio.run(main, sys.argv[1] if len(sys.argv) > 1 else DEFAULT_TEXT)
