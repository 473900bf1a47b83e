"""Lighthouse 审计（nox -s audit）：首页、Hello PyTorch 页、一个既没有图也没有公式的页面。

每页跑 3 次取中位数（桌面预设，--throttling-method=provided），打印四类得分、传输字节、LCP、TBT、CLS，
并检查目标：性能 ≥ 95，无障碍、最佳实践、SEO 都是 100。网站须先构建到 site/（nox 会先构建）。
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "site"
PAGES = {"首页": "", "5. Hello PyTorch": "part1/ch05_hello/", "术语表（无图无公式）": "glossary/"}
RUNS = 3
CHROME_FLAGS = (
    "--headless=new --no-sandbox --disable-gpu --disable-quic --no-first-run "
    "--disable-background-networking --disable-component-update --disable-sync"
)
TARGETS = {"performance": 95, "accessibility": 100, "best-practices": 100, "seo": 100}


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def lighthouse(url: str, out: Path) -> dict:
    command = [
        str(ROOT / "node_modules" / ".bin" / "lighthouse"),
        url,
        "--preset=desktop",
        "--throttling-method=provided",
        f"--chrome-flags={CHROME_FLAGS}",
        "--output=json",
        f"--output-path={out}",
        "--quiet",
    ]
    env = {**os.environ, "CHROME_PATH": os.environ.get("CHROME_PATH", "/usr/bin/chromium")}
    subprocess.run(command, check=True, env=env, timeout=300)
    return json.loads(out.read_text(encoding="utf-8"))


def summarise(report: dict) -> dict:
    audits = report["audits"]
    return {
        **{key: round(report["categories"][key]["score"] * 100) for key in TARGETS},
        "bytes": audits["total-byte-weight"]["numericValue"],
        "lcp": audits["largest-contentful-paint"]["numericValue"],
        "tbt": audits["total-blocking-time"]["numericValue"],
        "cls": audits["cumulative-layout-shift"]["numericValue"],
    }


def main() -> int:
    if not (SITE / "index.html").exists():
        sys.exit("site/ 里没有构建好的网站：先运行 nox -s docs")
    handler = functools.partial(_Quiet, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    rows, ok = [], True
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in PAGES.items():
            runs = [summarise(lighthouse(base + path, Path(tmp) / f"{i}.json")) for i in range(RUNS)]
            median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
            rows.append((name, median))
            ok &= all(median[key] >= target for key, target in TARGETS.items())
    server.shutdown()
    print("\n| 页面 | 性能 | 无障碍 | 最佳实践 | SEO | 传输 | LCP | TBT | CLS |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, m in rows:
        print(
            f"| {name} | {m['performance']:.0f} | {m['accessibility']:.0f} | {m['best-practices']:.0f} | "
            f"{m['seo']:.0f} | {m['bytes'] / 1024:.0f} KiB | {m['lcp']:.0f} ms | {m['tbt']:.0f} ms | {m['cls']:.3f} |"
        )
    print(
        f"\n目标（{RUNS} 次的中位数）：性能 ≥ 95，无障碍、最佳实践、SEO = 100 —— {'全部达到' if ok else '未全部达到'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
