"""Writing prices to the test InfluxDB 3 endpoint, as the fault tests do."""

from __future__ import annotations

import time


def write_prices(influx, prices: dict[str, float], measurement: str = "crypto") -> None:
    writer = influx.client("markets")
    now = time.time_ns()
    writer.write("\n".join(f"{measurement},symbol={s} price={p} {now}" for s, p in prices.items()))
    writer.close()
