"""Smoke test of benchmark (h) (``bench/verifier.py``) in its quick mode, and of the load generator's
open-loop and answer-checking options it relies on. Figures are not judged here (``make bench`` measures
them on a quiet machine); what must hold is that every scan and round trip was a valid verification,
recorded once, and that the report section renders them.

The benchmark runs against a real ``elicence serve --workers 2`` on the test database: SQLite, and
PostgreSQL when ``ELICENCE_TEST_DATABASE_URL`` is set.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench import loadgen
from bench import verifier as bench_verifier
from bench.run import _section_verifier


def test_the_verifier_benchmark_runs_in_quick_mode(database_url):
    result = bench_verifier.run(quick=True, scans=40, round_trips=3, database_url=database_url)
    full, half, trip = result["full"], result["half"], result["round_trip"]
    assert (full["requests"], full["ok"], full["unexpected"]) == (40, 40, 0)
    assert half["ok"] == half["requests"] >= 20 and half["unexpected"] == 0
    assert half["rate"] == full["per_second"] / 2
    assert trip["n"] == 3 and set(trip["steps_p50_ms"]) == {"create request", "wallet inspects", "wallet answers",
                                                             "result delivered"}
    assert result["consistency"]["verifications"] == 2 * 8 + 40 + half["requests"] + 3
    lines, goals = _section_verifier(result)
    text = "\n".join(lines)
    assert text.startswith("## (h) The verifier service") and goals == []
    assert f"on {result['database']}" in text and "| create → wallet answers → result delivered |" in text


class _Answers(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        body = b'{"verdict":"valid"}' if self.path == "/good" else b'{"verdict":"invalid"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_loadgen_counts_answers_without_the_expected_text_and_keeps_its_rate():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        requests = [{"method": "GET", "path": "/good" if i % 3 else "/bad"} for i in range(12)]
        out = loadgen.run(requests, host="127.0.0.1", port=port, connections=2, rate=200.0, expect='"verdict":"valid"')
    finally:
        server.shutdown()
        server.server_close()
    assert (out["requests"], out["ok"], out["unexpected"], out["rate"]) == (12, 12, 4, 200.0)
    assert len(out["errors"]) == 4 and all(e["body"] == '{"verdict":"invalid"}' for e in out["errors"])
