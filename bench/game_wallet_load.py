"""Load driver for the game-wallet API: N concurrent clients send signed bet and win calls,
like a game provider's servers, for a fixed time; prints one JSON line of figures.

Standalone on purpose (no Django): it runs in its own process beside the gunicorn server, so
the figures include HTTP, signing and JSON. Each call is a raw HTTP/1.1 request on its own
asyncio connection (gunicorn's sync workers close the connection after every response). On a
two-core machine httpx's own per-request work added 8-20 ms to every call, which would have
been reported as server latency. Started by `manage.py bench_game_wallet`; by hand:

    python bench/game_wallet_load.py config.json --clients 16 --seconds 20 --mode spread
"""

import argparse
import asyncio
import hashlib
import hmac
import json
import random
import socket
import statistics
import time
import uuid
from urllib.parse import urlsplit


def _signed(secret: str, key_id: str, body: dict) -> tuple[bytes, dict]:
    raw = json.dumps(body, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    signature = hmac.new(secret.encode(), timestamp.encode() + b"." + raw, hashlib.sha256)
    headers = {
        "Content-Type": "application/json",
        "X-Game-Key": key_id,
        "X-Game-Timestamp": timestamp,
        "X-Game-Signature": signature.hexdigest(),
    }
    return raw, headers


async def _post(url: str, raw: bytes, headers: dict) -> tuple[int, str]:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    # One write per request, and no Nagle delay waiting on the server's delayed ACK.
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    writer.write(
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Length: {len(raw)}\r\nConnection: close\r\n{head}\r\n".encode()
        + raw
    )
    response = await reader.read()
    writer.close()
    status_line, _, rest = response.partition(b"\r\n")
    body = rest.partition(b"\r\n\r\n")[2].decode(errors="replace")
    return int(status_line.split()[1]), body


async def _client(index, config, players, deadline, latencies, failures):
    rng = random.Random(index)  # noqa: S311 (a load pattern, not security)
    while time.monotonic() < deadline:
        player = rng.choice(players)
        round_id = f"bench-r-{uuid.uuid4().hex}"
        bet = {
            "player_id": player["player_id"],
            "currency": "EUR",
            "amount": "1.00",
            "transaction_id": f"bench-b-{uuid.uuid4().hex}",
            "round_id": round_id,
            "session_token": player["session_token"],
        }
        win = {
            "player_id": player["player_id"],
            "currency": "EUR",
            "amount": rng.choice(["0", "2.00"]),
            "transaction_id": f"bench-w-{uuid.uuid4().hex}",
            "round_id": round_id,
            "round_closed": True,
        }
        for endpoint, body in (("bet", bet), ("win", win)):
            raw, headers = _signed(config["secret"], config["key_id"], body)
            started = time.perf_counter()
            status, text = await _post(f"{config['base_url']}/{endpoint}", raw, headers)
            latencies[endpoint].append(time.perf_counter() - started)
            if status != 200:
                failures.append((endpoint, status, text[:200]))
                break


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


async def main(args) -> dict:
    with open(args.config) as handle:
        config = json.load(handle)
    players = config["players"] if args.mode == "spread" else [config["hot_player"]]
    latencies = {"bet": [], "win": []}
    failures: list = []
    deadline = time.monotonic() + args.seconds
    started = time.monotonic()
    await asyncio.gather(
        *(_client(i, config, players, deadline, latencies, failures) for i in range(args.clients))
    )
    elapsed = time.monotonic() - started
    every = latencies["bet"] + latencies["win"]
    return {
        "mode": args.mode,
        "clients": args.clients,
        "seconds": round(elapsed, 1),
        "requests": len(every),
        "requests_per_second": round(len(every) / elapsed, 1),
        "p50_ms": round(_percentile(every, 0.50), 2),
        "p99_ms": round(_percentile(every, 0.99), 2),
        "mean_ms": round(statistics.fmean(every) * 1000, 2),
        "bet_p99_ms": round(_percentile(latencies["bet"], 0.99), 2),
        "win_p99_ms": round(_percentile(latencies["win"], 0.99), 2),
        "failures": len(failures),
        "first_failures": failures[:3],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--mode", choices=["spread", "one"], default="spread")
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
