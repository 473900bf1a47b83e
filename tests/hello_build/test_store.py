"""hello_build.store：带校验和的缓存目录——读回写进去的东西，坏掉的记录当作没有，没用到的被清掉。"""

from __future__ import annotations

import json
import threading

import pytest

from hello_build.store import Store


def test_round_trip(tmp_path):
    store = Store(tmp_path)
    store.write("k", {"output": "42\n", "html": {"a": "<p>42</p>"}})
    assert store.read("k") == {
        "output": "42\n",
        "html": {"a": "<p>42</p>"},
        "sha256": store.read("k")["sha256"],
    }
    assert store.read("missing") is None


@pytest.mark.parametrize("damage", ["truncate", "tamper", "garbage", "not-a-dict"])
def test_damaged_entries_read_as_missing(tmp_path, damage):
    store = Store(tmp_path)
    store.write("k", {"output": "真的输出"})
    path = tmp_path / "k.json"
    text = path.read_text(encoding="utf-8")
    if damage == "truncate":
        path.write_text(text[: len(text) // 2], encoding="utf-8")
    elif damage == "tamper":
        data = json.loads(text)
        data["output"] = "被篡改的输出"
        path.write_text(json.dumps(data), encoding="utf-8")
    elif damage == "garbage":
        path.write_bytes(b"\x00\xff")
    else:
        path.write_text("[1, 2]", encoding="utf-8")
    assert store.read("k") is None


def test_writes_are_atomic_under_concurrent_writers(tmp_path):
    store = Store(tmp_path)
    errors = []

    def writer(n):
        for i in range(50):
            store.write("same", {"output": f"{n}-{i}" * 1000})

    def reader():
        for _ in range(200):
            entry = store.read("same")
            if entry is not None and len(set(entry["output"].split("-")[0])) > 2:
                errors.append(entry)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)] + [
        threading.Thread(target=reader)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert not list(tmp_path.glob("*.partial")), "不应留下临时文件"
    assert store.read("same") is not None


def test_eviction_keeps_only_what_this_build_used(tmp_path):
    old = Store(tmp_path)
    old.write("stale", {"output": "旧"})
    old.write("kept", {"output": "新"})
    build = Store(tmp_path)
    assert build.read("kept") is not None
    build.write("fresh", {"output": "刚写的"})
    assert build.evict_unused() == ["stale"]
    assert sorted(p.stem for p in tmp_path.glob("*.json")) == ["fresh", "kept"]
