"""Large blobs read raw (``application/vnd.github.raw+json``) into a spooled temporary file and
parsed from it (issue 10, point 9): the same findings as the JSON path, the file private and
gone afterwards, a body cut short retried like any transient error, a blob above the memory
budget one file error the verdict names, and repository text kept as data."""

from __future__ import annotations

import io
import json
import os
import stat

import httpx
import pytest

from engine.api import Engine
from engine.config import load_config
from engine.errors import ErrorClass, NetworkError, classify
from engine.github import GitHubClient
from engine.github.client import BodyTooLarge
from engine.jobs.ioc_scan.fetch import raw_blob, read_blob
from engine.jobs.ioc_scan.models import LockfileError
from engine.jobs.ioc_scan.output import render
from engine.jobs.ioc_scan.parsers import BlobLimits, parser_for, streaming
from engine.jobs.ioc_scan.scan import DEFAULT_IOCS, ScanTargets, build_spec, make_client, results
from engine.models import RunState
from engine.sim import SimConfig, create_app, hostile

URL = "http://sim.test"
STREAM_ALL = BlobLimits(stream_threshold=0, max_whole_bytes=1 << 40)
WHOLE = BlobLimits(stream_threshold=1 << 40, max_whole_bytes=1 << 40)


def open_fds_under(directory) -> list[str]:
    """Paths of this process's open files under ``directory`` (an unlinked one shows as ``... (deleted)``)."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(directory)):
            out.append(target)
    return out


def sim_client(app, transport=None) -> GitHubClient:
    return GitHubClient(URL, "sim-token", transport=transport or httpx.ASGITransport(app))


# ------------------------------------------------------------------ raw == JSON, every format


def one_file_per_format(app) -> dict[str, tuple[str, str, str, str]]:
    """The smallest well-formed file of each format the generated org holds (it plants broken
    ones too): parser name -> (owner, repo, path, sha)."""
    picked: dict[str, tuple[int, tuple[str, str, str, str]]] = {}
    for repo in app.state.sim.org.repos:
        for path, f in sorted(repo.files.items(), key=lambda item: item[1].size):
            parser = parser_for(path)
            if parser is None or (parser.name in picked and f.size >= picked[parser.name][0]):
                continue
            try:
                parser.parse(path, f.content)
            except LockfileError:
                continue
            picked[parser.name] = (f.size, (repo.owner, repo.name, path, f.sha))
    return {name: where for name, (_, where) in picked.items()}


async def test_the_raw_path_finds_what_the_json_path_finds_for_every_format_in_the_corpus():
    app = create_app(SimConfig(repos=60, seed=3))
    files = one_file_per_format(app)
    assert len(files) == 16              # every supported format, package.json to Cargo.lock
    async with sim_client(app) as gh:
        for name, (owner, repo, path, sha) in sorted(files.items()):
            parser = parser_for(path)
            as_json = parser.parse_blob(path, await read_blob(gh, owner, repo, sha), WHOLE)
            # threshold 0: every format with a streaming reader is read from the file in parts
            async with raw_blob(gh, owner, repo, sha) as (file, size):
                streamed = parser.parse_file(path, file, size, STREAM_ALL)
            assert list(streamed) == list(as_json), name
            assert len(as_json) > 0 or name == "package.json", name


def test_npm_key_lines_are_the_same_whatever_the_chunk_boundaries():
    data = hostile.big_package_lock(150).replace(b'"node_modules/pkg-0000007"', b'"node_modules/p\\u006bg-7"')
    whole = streaming._key_lines(io.BytesIO(data))
    assert len(whole) == 150 and whole["node_modules/pkg-7"]
    for chunk_size in (1, 2, 3, 7, 64, 4099):
        assert streaming._key_lines(io.BytesIO(data), chunk_size=chunk_size) == whole, chunk_size


# ------------------------------------------------------------------ the temporary file


async def test_the_spooled_file_is_0600_unnamed_and_gone_after_the_block_also_when_parsing_fails(tmp_path):
    app = create_app(SimConfig(repos_dir=str(write_repo(tmp_path, "big", "package-lock.json",
                                                        hostile.big_package_lock(2000)))))
    big = app.state.sim.org.repos[0].files["package-lock.json"]
    spool = tmp_path / "spool"
    spool.mkdir()
    async with sim_client(app) as gh:
        async with gh.download(f"/repos/acme/big/git/blobs/{big.sha}", spool_dir=str(spool)) as file:
            assert file.read() == big.content                       # the bytes as stored, not base64
            assert stat.S_IMODE(os.fstat(file.fileno()).st_mode) == 0o600
            assert os.listdir(spool) == []                          # no name anyone could open
            assert open_fds_under(spool)                            # on disk: it rolled over from memory
        assert file.closed and open_fds_under(spool) == []
        with pytest.raises(LockfileError):
            async with gh.download(f"/repos/acme/big/git/blobs/{big.sha}", spool_dir=str(spool)) as file:
                file.write(b"\xff")                                 # the parse fails on what it reads
                file.seek(0)
                parser_for("package-lock.json").parse_file("package-lock.json", file, big.size, STREAM_ALL)
        assert file.closed and open_fds_under(spool) == [] and os.listdir(spool) == []


async def test_a_body_above_max_bytes_is_refused_with_its_size_without_being_kept(tmp_path):
    app = create_app(SimConfig(repos_dir=str(write_repo(tmp_path, "big", "yarn.lock",
                                                        hostile.big_yarn_lock(3000)))))
    big = app.state.sim.org.repos[0].files["yarn.lock"]
    async with sim_client(app) as gh:
        with pytest.raises(BodyTooLarge) as caught:
            async with gh.download(f"/repos/acme/big/git/blobs/{big.sha}", max_bytes=100_000):
                pytest.fail("a body above max_bytes must not be handed over")
    assert caught.value.size == big.size and f"{big.size:,} bytes" in str(caught.value)
    assert classify(caught.value) is ErrorClass.CLIENT


# ------------------------------------------------------------------ a body cut short


class _CutStream(httpx.AsyncByteStream):
    def __init__(self, part: bytes) -> None:
        self.part = part

    async def __aiter__(self):
        yield self.part
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")


class CutRawBodies(httpx.AsyncBaseTransport):
    """The simulator, but the first ``times`` raw blob bodies stop half way (a connection reset)."""

    def __init__(self, app, times: int) -> None:
        self.inner = httpx.ASGITransport(app)
        self.times = times
        self.cut = 0
        self.raw_requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if "/git/blobs/" not in request.url.path or "raw" not in request.headers.get("accept", ""):
            return response
        self.raw_requests += 1
        if self.cut >= self.times:
            return response
        self.cut += 1
        body = b"".join([chunk async for chunk in response.stream])
        return httpx.Response(response.status_code, headers=response.headers, stream=_CutStream(body[:len(body) // 2]))


async def test_a_raw_body_cut_short_is_a_transient_network_error_seen_by_the_breaker(tmp_path):
    app = create_app(SimConfig(repos_dir=str(write_repo(tmp_path, "big", "yarn.lock", hostile.big_yarn_lock(3000)))))
    big = app.state.sim.org.repos[0].files["yarn.lock"]
    cutting = CutRawBodies(app, times=1)
    failures: list[ErrorClass] = []

    class Breaker:
        state = "closed"

        def record_success(self) -> None:
            failures.append(None)

        def record_failure(self, error_class) -> None:
            failures.append(error_class)

    async with sim_client(app, cutting) as gh:
        gh.bind(breakers={"read": Breaker()})
        with pytest.raises(NetworkError) as caught:
            async with gh.download(f"/repos/acme/big/git/blobs/{big.sha}"):
                pytest.fail("a cut body must not be handed over")
        assert classify(caught.value) is ErrorClass.NETWORK
        async with gh.download(f"/repos/acme/big/git/blobs/{big.sha}") as file:
            assert file.read() == big.content
    assert failures == [ErrorClass.NETWORK, None]


async def test_a_scan_whose_large_blob_is_cut_short_retries_it_and_finds_everything(tmp_path):
    data = hostile.big_yarn_lock(3000)
    app = create_app(SimConfig(repos_dir=str(write_repo(tmp_path, "big", "yarn.lock", data))))
    cutting = CutRawBodies(app, times=1)
    state, scanned, engine_db = await scan(tmp_path, app, ["acme/big"], transport=cutting, retry_attempts=2)
    assert state is RunState.COMPLETED and cutting.raw_requests == 2
    expected = [d for d in parser_for("yarn.lock").parse("yarn.lock", data) if d.name == hostile.PLANTED[0]]
    assert [(m.file_path, m.line_number, m.package_name) for m in scanned.matches] == \
        [("yarn.lock", d.line, d.name) for d in expected] and expected
    assert scanned.failures == [] and scanned.coverage.complete


# ------------------------------------------------------------------ scans


def write_repo(tmp_path, repo: str, path: str, content: bytes):
    root = tmp_path / "repos"
    target = root / repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    return root


async def scan(tmp_path, app, repos: list[str], transport=None, **overrides):
    config = load_config(None, env={}, overrides={"retry_attempts": 0, "retry_delay_base": 0.1,
                                                  "stream_large_files_threshold": 10240, **overrides})
    async with await Engine.open(tmp_path / "scan.db", config) as engine:
        spec = build_spec(ScanTargets(repos=repos), [DEFAULT_IOCS], api_url=URL)
        client = make_client(engine, URL, "sim-token", transport=transport or httpx.ASGITransport(app))
        run_id = await engine.create_run("ioc-scan", spec)
        state = await (await engine.start(run_id, github=client)).wait()
        await client.aclose()
        scanned = await results(engine.store, run_id)
        cached = await engine.store.fetchall("SELECT sha FROM blobs")
    return state, scanned, {row[0] for row in cached}


async def test_a_blob_above_the_memory_budget_is_one_named_file_error_not_fetched_nor_cached(tmp_path, monkeypatch):
    monkeypatch.setattr(streaming, "STREAM_PARSE_EXPANSION", 1000)    # 100 MB / 1000: files above ~105 kB
    huge = hostile.big_package_lock(800)
    write_repo(tmp_path, "huge", "package-lock.json", huge)
    root = write_repo(tmp_path, "clean", "package-lock.json", hostile._clean_lock(*hostile.PLANTED))
    app = create_app(SimConfig(repos_dir=str(root)))
    sha = next(r for r in app.state.sim.org.repos if r.name == "huge").files["package-lock.json"].sha
    state, scanned, cached = await scan(tmp_path, app, ["acme/huge", "acme/clean"], max_memory_usage_mb=100)
    assert state is RunState.COMPLETED
    assert [(f["repo"], f["file_path"]) for f in scanned.failures] == [("acme/huge", "package-lock.json")]
    reason = scanned.failures[0]["reason"]
    assert f"too large to scan: {len(huge):,} bytes" in reason and "max_usage_mb" in reason
    assert sha not in app.state.sim.stats.blob_fetches and sha not in cached    # not read, and not kept by sha
    as_json = json.loads(render(scanned.matches, "json", scanned.failures, coverage=scanned.coverage))
    assert "acme/huge:package-lock.json" in as_json["verdict"] and "not checked" in as_json["verdict"]
    assert "No compromised packages found" not in as_json["verdict"]
    assert [(m.repo, m.package_name) for m in scanned.matches] == [("acme/clean", hostile.PLANTED[0])]


async def test_hostile_text_in_a_streamed_blob_stays_data(tmp_path):
    streamed_path = f"{hostile.ESCAPE_DIR}/{hostile.MARKUP_DIR}/package-lock.json"
    broken_path = f"{hostile.ESCAPE_DIR}/yarn.lock"
    write_repo(tmp_path, "streamed", streamed_path, hostile.big_package_lock(600))
    root = write_repo(tmp_path, "broken", broken_path, b"\x1b[2J" + hostile.big_yarn_lock(600) + b"\xff")
    app = create_app(SimConfig(repos_dir=str(root)))
    state, scanned, _ = await scan(tmp_path, app, ["acme/streamed", "acme/broken"])
    assert state is RunState.COMPLETED
    # the path, escape sequences and markup included, is kept exactly as the repository has it
    assert {(m.repo, m.file_path, m.package_name) for m in scanned.matches} == {
        ("acme/streamed", streamed_path, hostile.PLANTED[0])}
    assert [(f["repo"], f["file_path"]) for f in scanned.failures] == [("acme/broken", broken_path)]
    assert "not UTF-8" in scanned.failures[0]["reason"]
    verdict = scanned.coverage.verdict(len(scanned.matches))
    assert "\x1b" not in verdict and "\x07" not in verdict and "␛" in verdict and "acme/broken:" in verdict
    table = render(scanned.matches, "table", scanned.failures, coverage=scanned.coverage)
    assert "\x1b" not in table and "\x07" not in table and "[/oops]crash" in table
