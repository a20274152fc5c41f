"""The generated org: deterministic, git-exact, every format, and a truth that matches the files.

The truth checks re-read every npm file with small readers written here (JSON,
YAML and line scanning, not the generator's writers), so a writer that puts a
package somewhere the truth does not say, or a truth entry with no package
behind it, fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tomllib
from collections import Counter, defaultdict
from functools import cache
from pathlib import Path

import pytest
import yaml

from engine.errors import InputError
from engine.sim.data import EMPTY_TREE_SHA, TRUNCATE_TREE_ENTRIES, SimFile, SimOrg, SimRepo, git_blob_sha
from engine.sim.generate import DEFAULT_IOCS, demo_org, generate_org, read_ioc_csv
from engine.sim.lockfile_semver import satisfies
from engine.sim.lockfiles import FORMATS
from engine.sim.repos_dir import load_repos_dir

YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
#: Documented bound: a 500-repo org holds under 40 MB of file content (shared files counted once per repo).
CONTENT_BOUND_500 = 40_000_000
NPM_LOCKS = {"package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lock"}


@cache
def org500() -> SimOrg:
    return generate_org(repos=500, seed=1)


@cache
def iocs() -> dict[str, tuple[str, ...]]:
    return read_ioc_csv(DEFAULT_IOCS)


def files_of(org: SimOrg):
    for r in org.repos:
        for path, f in r.files.items():
            yield r, path, f


def malformed_keys(org: SimOrg) -> set[tuple[str, str]]:
    return {(m["repo"], m["path"]) for m in org.malformed}


def jsonc(text: str):
    return json.loads(re.sub(r",(\s*[}\]])", r"\1", text))


# -- readers of the npm formats (independent of the writers) -------------------------
def pnpm_key(key: str) -> tuple[str, str]:
    key = key.strip().strip("'").rstrip(":").strip("'")
    key = re.sub(r"\(.*\)$", "", key)
    v5 = re.fullmatch(r"/((?:@[^/]+/)?[^/@]+)/(\d+\.\d+\.\d+)(?:_.+)?", key)  # /name/1.2.3_peer@1.0.0
    if v5:
        return v5[1], v5[2]
    if key.startswith("/"):  # v6: /name@1.2.3
        key = key[1:]
    at = key.find("@", 1)
    return key[:at], key[at + 1 :]


def locked_pairs(name: str, text: str) -> set[tuple[str, str]]:
    pairs: set[tuple[str, str]] = set()
    if name in ("package-lock.json", "npm-shrinkwrap.json"):
        doc = json.loads(text)
        for key, e in doc.get("packages", {}).items():
            if "node_modules/" in key and not e.get("link"):
                pairs.add((e.get("name") or key.rsplit("node_modules/", 1)[1], e["version"]))

        def walk(deps: dict) -> None:
            for k, e in deps.items():
                v = e["version"]
                pairs.add(tuple(v[4:].rsplit("@", 1)) if v.startswith("npm:") else (k, v))
                walk(e.get("dependencies", {}))

        walk(doc.get("dependencies", {}))
    elif name == "yarn.lock" and "__metadata:" in text:
        for key, e in yaml.load(text, Loader=YAML_LOADER).items():
            if key != "__metadata" and "@workspace:" not in e["resolution"]:
                pkg, _, v = e["resolution"].rpartition("@npm:")
                pairs.add((pkg, v))
    elif name == "yarn.lock":
        lines = text.replace("\r\n", "\n").split("\n")
        for i, line in enumerate(lines):
            if line and not line.startswith((" ", "#")) and line.endswith(":"):
                version = re.match(r'\s+version "(.+)"', lines[i + 1]).group(1)
                pairs.add((yarn_v1_name(line), version))
    elif name == "pnpm-lock.yaml":
        doc = yaml.load(text, Loader=YAML_LOADER)
        pairs |= {pnpm_key(k) for k in doc.get("packages") or {}}
    elif name == "bun.lock":
        for value in jsonc(text)["packages"].values():
            pkg, _, v = value[0].rpartition("@")
            if not v.startswith("workspace:"):
                pairs.add((pkg, v))
    return pairs


def yarn_v1_name(header: str) -> str:
    first = header.rstrip(":").split(", ")[0].strip('"')
    if "@npm:" in first:
        first = first.split("@npm:", 1)[1]
    at = first.find("@", 1)
    return first[:at]


def expected_findings(f: SimFile) -> set[tuple[str, str, str]]:
    """What a correct scanner reports for one file, read straight from its bytes."""
    bad = iocs()
    text = f.content.decode()
    if f.name == "package.json":
        doc = json.loads(text)
        out = set()
        for section in ("dependencies", "devDependencies", "optionalDependencies", "peerDependencies"):
            for pkg, rng in doc.get(section, {}).items():
                out |= {(pkg, v, "declared") for v in bad.get(pkg, ()) if satisfies(v, rng)}
        return out
    if f.name in NPM_LOCKS:
        return {(p, v, "locked") for p, v in locked_pairs(f.name, text) if v in bad.get(p, ())}
    return set()


# -- determinism, shas, trees ---------------------------------------------------------
def fingerprint(org: SimOrg) -> str:
    h = hashlib.sha256()
    for r in org.repos:
        meta = [r.id, r.name, r.default_branch, r.private, r.archived, r.fork, r.created_at, r.pushed_at]
        h.update(json.dumps(meta).encode())
        for path in sorted(r.files):
            h.update(path.encode() + b"\0" + r.files[path].content)
    h.update(json.dumps([org.truth, org.malformed]).encode())
    return h.hexdigest()


def test_same_seed_gives_byte_identical_org_and_other_seed_differs():
    a, b = generate_org(repos=40, seed=5), generate_org(repos=40, seed=5)
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(generate_org(repos=40, seed=6)) != fingerprint(a)


def test_same_seed_is_identical_across_processes_with_different_hash_seeds():
    code = (
        "from engine.sim.generate import generate_org\n"
        "import hashlib\n"
        "org = generate_org(repos=40, seed=3)\n"
        "h = hashlib.sha256()\n"
        "[h.update(r.name.encode() + f.sha.encode() + p.encode()) for r in org.repos for p, f in sorted(r.files.items())]\n"
        "h.update(repr(org.truth).encode())\n"
        "print(h.hexdigest())\n"
    )
    outs = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        outs.add(done.stdout.strip())
    assert len(outs) == 1


def test_blob_sha_is_git_hash_object():
    assert git_blob_sha(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
    assert git_blob_sha(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"
    org = generate_org(repos=12, seed=2)
    sample = [f for _, _, f in files_of(org)][::37][:8]
    for f in sample:
        assert f.sha == hashlib.sha1(b"blob %d\0" % len(f.content) + f.content).hexdigest()
        done = subprocess.run(["git", "hash-object", "--stdin"], input=f.content, capture_output=True, check=True)
        assert done.stdout.decode().strip() == f.sha


def tricky_repo() -> SimRepo:
    repo = SimRepo(id=1, name="t", owner="acme", full_name="acme/t")
    for path in ("a.txt", "a/b.txt", "a-b/c", "a/b/c/d.txt", "a/b0", "Z", "b/x", "a/b/c/e.txt"):
        repo.add(path, f"{path}\n".encode())
    repo.files["run.sh"] = SimFile("run.sh", b"#!/bin/sh\n", mode="100755")
    return repo


@pytest.mark.parametrize("which", ["tricky", "generated"])
def test_tree_shas_and_order_match_git(tmp_path: Path, which: str):
    if which == "tricky":
        repo = tricky_repo()
    else:  # the biggest repo short of the mega monorepo (walking that one is slow, not harder)
        repo = max((r for r in generate_org(repos=30, seed=4).repos if len(r.files) < 400), key=lambda r: len(r.files))
    for path, f in repo.files.items():
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(f.content)
        target.chmod(0o755 if f.mode == "100755" else 0o644)
    git = ["git", "-C", str(tmp_path)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    tree = subprocess.run([*git, "write-tree"], capture_output=True, text=True, check=True).stdout.strip()
    listing = subprocess.run([*git, "ls-tree", "-r", "-t", tree], capture_output=True, text=True, check=True).stdout
    assert repo.tree_sha() == tree
    expected = [line.split(None, 3) for line in listing.splitlines()]
    assert [[e["mode"], e["type"], e["sha"], e["path"]] for e in repo.tree_entries()] == expected
    # every subtree sha resolves back to its directory, and lists what git lists there
    for _mode, kind, sha, path in expected:
        if kind == "tree":
            assert repo.tree_path(sha) is not None
            assert repo.tree_sha(path) == sha
            sub = subprocess.run([*git, "ls-tree", sha], capture_output=True, text=True, check=True).stdout
            assert [e["path"] for e in repo.tree_entries(path, recursive=False)] == [
                line.split("\t", 1)[1] for line in sub.splitlines()
            ]


def test_refs_resolve_to_trees_and_empty_repo_has_the_empty_tree():
    repo = tricky_repo()
    repo.default_branch = "trunk"
    assert repo.resolve_tree("trunk") == repo.resolve_tree("HEAD") == repo.resolve_tree(repo.commit_sha) == ""
    assert repo.resolve_tree(repo.tree_sha("a/b")) == "a/b"
    assert repo.resolve_tree("main") is None
    with pytest.raises(KeyError):
        repo.tree_sha("nope")
    empty = SimRepo(id=2, name="e", owner="acme", full_name="acme/e")
    assert empty.tree_sha() == EMPTY_TREE_SHA and empty.tree_entries() == []


def test_tree_entries_hold_every_parent_directory():
    for r in org500().repos:
        entries = r.tree_entries()
        trees = {e["path"] for e in entries if e["type"] == "tree"}
        blobs = [e["path"] for e in entries if e["type"] == "blob"]
        assert sorted(blobs) == sorted(r.files)
        parents = {p.rsplit("/", 1)[0] for p in blobs if "/" in p}
        parents |= {d.rsplit("/", 1)[0] for d in trees if "/" in d}
        assert parents <= trees, r.name


# -- what the org holds ---------------------------------------------------------------
def format_keys(f: SimFile) -> set[str]:
    text = f.content.decode(errors="replace")
    name, found = f.name, set()
    if name in ("package-lock.json", "npm-shrinkwrap.json"):
        version = json.loads(text)["lockfileVersion"]
        found.add("npm-shrinkwrap" if name == "npm-shrinkwrap.json" else f"npm-lock-v{version}")
        if '"name": ' in text.split('"packages"', 1)[-1].split('"node_modules/', 1)[-1]:
            found.add("npm-alias")
        if re.search(r'"node_modules/[^"]+/node_modules/', text):
            found.add("npm-nested")
    elif name == "yarn.lock":
        found.add("yarn-berry" if "__metadata:" in text else "yarn-v1")
    elif name == "pnpm-lock.yaml":
        version = str(yaml.load(text, Loader=YAML_LOADER)["lockfileVersion"])
        found.add("pnpm-v" + version.split(".")[0])
        if "snapshots:" in text:
            found.add("pnpm-snapshots")
    elif name == "bun.lock":
        found.add("bun")
    elif name == "package.json":
        found.add("package-json")
    elif re.fullmatch(r"requirements.*\.txt", name):
        found.add("requirements")
        found |= {k for k, pat in (("req-hashes", "--hash="), ("req-include", "-r "), ("req-marker", " ; ")) if pat in text}
    elif name == "pyproject.toml":
        doc = tomllib.loads(text)
        found.add("pyproject-poetry" if "poetry" in doc.get("tool", {}) else "pyproject-pep621")
    else:
        found |= {
            "poetry.lock": {"poetry"},
            "Pipfile.lock": {"pipfile-lock"},
            "uv.lock": {"uv"},
            "go.mod": {"go-mod"},
            "go.sum": {"go-sum"},
            "Cargo.lock": {"cargo"},
            "Gemfile.lock": {"gemfile-lock"},
            "composer.lock": {"composer"},
        }.get(name, set())
    if b"\r\n" in f.content:
        found.add("crlf")
    return found


def test_every_format_of_the_issue_is_present_in_a_500_repo_org():
    org, broken = org500(), malformed_keys(org500())
    seen: set[str] = set()
    for r, path, f in files_of(org):
        if (r.full_name, path) not in broken:
            seen |= format_keys(f)
    expected = {
        "npm-lock-v1", "npm-lock-v2", "npm-lock-v3", "npm-shrinkwrap", "npm-alias", "npm-nested",
        "yarn-v1", "yarn-berry", "pnpm-v5", "pnpm-v6", "pnpm-v9", "pnpm-snapshots", "bun", "package-json",
        "requirements", "req-hashes", "req-include", "req-marker", "poetry", "pipfile-lock", "uv",
        "pyproject-pep621", "pyproject-poetry", "go-mod", "go-sum", "cargo", "gemfile-lock", "composer", "crlf",
    }  # fmt: skip
    assert expected - seen == set()


def test_an_org_of_30_repos_already_holds_every_format():
    org = generate_org(repos=30, seed=9)
    seen = set().union(*(format_keys(f) for r, p, f in files_of(org) if (r.full_name, p) not in malformed_keys(org)))
    assert set(FORMATS) - seen == set()


def test_every_npm_lockfile_format_carries_a_planted_finding():
    org = org500()
    per_format: Counter = Counter()
    for t in org.truth:
        f = org.repo(t["repo"].split("/")[1]).files[t["path"]]
        for key in format_keys(f) - {"crlf", "npm-alias", "npm-nested", "pnpm-snapshots"}:
            per_format[(key, t["kind"])] += 1
    for key in ("npm-lock-v1", "npm-lock-v2", "npm-lock-v3", "npm-shrinkwrap", "yarn-v1", "yarn-berry",
                "pnpm-v5", "pnpm-v6", "pnpm-v9", "bun"):  # fmt: skip
        assert per_format[(key, "locked")] > 0, key
    assert per_format[("package-json", "declared")] > 0
    assert any(t["package"].startswith("@") for t in org.truth)


def test_planted_packages_hide_in_the_tricky_places():
    org = org500()
    variants: Counter = Counter()
    for t in org.truth:
        f = org.repo(t["repo"].split("/")[1]).files[t["path"]]
        line = f.content.decode().split("\n")[t["line"] - 1].strip()
        if f.name in ("package-lock.json", "npm-shrinkwrap.json"):
            key = line.split('"')[1]
            variants["alias"] += not key.endswith("node_modules/" + t["package"])
            variants["nested"] += key.count("node_modules/") > 1
            variants["workspace-local"] += not key.startswith("node_modules/")
        elif f.name == "pnpm-lock.yaml":
            variants["pnpm-peer"] += "(" in line or "_" in line.rsplit("/", 1)[-1]
        elif f.name == "yarn.lock":
            variants["yarn-alias"] += not line.strip('"').startswith(t["package"] + "@")
        variants["declared-multi"] += t["kind"] == "declared" and any(
            u is not t and u["kind"] == "declared" and (u["repo"], u["path"], u["package"]) == (t["repo"], t["path"], t["package"])
            for u in org.truth
        )
        variants["crlf"] += b"\r\n" in f.content
        variants["nested-path"] += "/" in t["path"]
    for variant in ("alias", "nested", "workspace-local", "pnpm-peer", "yarn-alias", "declared-multi", "crlf", "nested-path"):
        assert variants[variant] > 0, variant


def test_repo_mix_looks_like_an_org():
    org = org500()
    assert [r.name.lower() for r in org.repos] == sorted(r.name.lower() for r in org.repos)
    assert len({r.id for r in org.repos}) == len({r.name for r in org.repos}) == 500
    assert set(Counter(r.default_branch for r in org.repos)) == {"main", "master", "trunk", "develop"}
    assert 10 <= sum(r.archived for r in org.repos) <= 50
    assert 10 <= sum(r.fork for r in org.repos) <= 50
    no_lock = [r for r in org.repos if not any(f.name in NPM_LOCKS | {"package.json", "go.mod", "Cargo.lock",
               "Gemfile.lock", "composer.lock", "poetry.lock", "Pipfile.lock", "uv.lock", "pyproject.toml"}
               or f.name.startswith("requirements") for f in r.files.values())]  # fmt: skip
    assert len(no_lock) >= 5
    assert {"TypeScript", "Python", "Go", "Rust", "Ruby", "PHP"} <= {r.language for r in org.repos}
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r.pushed_at) for r in org.repos)
    small = sorted(len(r.files) for r in org.repos)[250]
    assert small <= 12  # mostly small repos


def test_a_repo_exceeds_the_tree_truncation_threshold_and_large_lockfiles_exist():
    org = org500()
    assert max(len(r.tree_entries()) for r in org.repos) > TRUNCATE_TREE_ENTRIES
    big = [f for _, _, f in files_of(org) if f.name in NPM_LOCKS and 1_000_000 <= f.size <= 5_000_000]
    assert len(big) >= 2
    total = sum(f.size for _, _, f in files_of(org))
    assert total < CONTENT_BOUND_500


def test_without_large_files_the_big_tree_stays_but_lockfiles_are_small():
    org = generate_org(repos=40, seed=1, large_files=False)
    assert max(len(r.tree_entries()) for r in org.repos) > TRUNCATE_TREE_ENTRIES
    assert max(f.size for _, _, f in files_of(org)) < 1_000_000


def test_identical_lockfiles_are_shared_across_repos_with_one_truth_entry_per_repo():
    org = org500()
    repos_by_sha: dict[str, set[str]] = defaultdict(set)
    for r, _, f in files_of(org):
        if f.name in NPM_LOCKS:
            repos_by_sha[f.sha].add(r.full_name)
    shared = {sha: repos for sha, repos in repos_by_sha.items() if len(repos) >= 2}
    assert shared
    planted_shared = [sha for sha in shared if expected_findings(org.blob(sha))]
    assert planted_shared
    sha = planted_shared[0]
    in_truth = {t["repo"] for t in org.truth if org.repo(t["repo"].split("/")[1]).files[t["path"]].sha == sha}
    assert in_truth == shared[sha]


# -- the truth ------------------------------------------------------------------------
def test_truth_equals_what_the_files_contain():
    """Every compromised package a reader finds is in the truth, and nothing else is."""
    org, broken = org500(), malformed_keys(org500())
    assert org.truth
    by_file: dict[tuple[str, str], set] = defaultdict(set)
    for t in org.truth:
        assert t["ecosystem"] == "npm" and t["kind"] in ("locked", "declared")
        by_file[(t["repo"], t["path"])].add((t["package"], t["version"], t["kind"]))
    keys = [(t["repo"], t["path"], t["package"], t["version"], t["kind"]) for t in org.truth]
    assert len(keys) == len(set(keys))
    for r, path, f in files_of(org):
        if (r.full_name, path) in broken or f.name not in NPM_LOCKS | {"package.json"}:
            assert (r.full_name, path) not in by_file
            continue
        assert by_file.get((r.full_name, path), set()) == expected_findings(f), (r.full_name, path)


def test_truth_lines_point_at_the_package_record():
    org = org500()
    for t in org.truth:
        f = org.repo(t["repo"].split("/")[1]).files[t["path"]]
        lines = f.content.decode().split("\n")
        line = lines[t["line"] - 1].rstrip("\r")
        pkg, v = t["package"], t["version"]
        nxt = "\n".join(lines[t["line"] : t["line"] + 3])
        if f.name == "package.json":
            m = re.fullmatch(r'\s*"(.+)": "(.+)",?', line)
            assert m and m[1] == pkg and satisfies(v, m[2]), (t, line)
        elif f.name in ("package-lock.json", "npm-shrinkwrap.json"):
            m = re.fullmatch(r'\s*"(.+)": \{', line)
            assert m, (t, line)
            entry = json.loads(f.content).get("packages", {}).get(m[1])
            if entry is not None:  # v2/v3 packages key
                assert (entry.get("name") or m[1].rsplit("node_modules/", 1)[1], entry["version"]) == (pkg, v)
            else:  # v1 dependencies tree
                assert m[1] == pkg and f'"version": "{v}"' in nxt, (t, line)
        elif f.name == "yarn.lock":
            assert not line.startswith(" ") and line.endswith(":") and f"{pkg}@" in line, (t, line)
            assert f'version "{v}"' in nxt or f'resolution: "{pkg}@npm:{v}"' in nxt, (t, line)
        elif f.name == "pnpm-lock.yaml":
            assert pnpm_key(line) == (pkg, v), (t, line)
        elif f.name == "bun.lock":
            assert f'["{pkg}@{v}"' in line, (t, line)
        else:
            raise AssertionError(f"truth in an unexpected file: {t}")


def test_decoys_put_ioc_names_at_safe_versions_and_behind_excluding_ranges():
    org, bad = org500(), iocs()
    safe_locked, safe_ranges, zero_x_traps = 0, 0, 0
    for r, path, f in files_of(org):
        if (r.full_name, path) in malformed_keys(org):
            continue
        if f.name in NPM_LOCKS:
            safe_locked += sum(1 for p, v in locked_pairs(f.name, f.content.decode()) if p in bad and v not in bad[p])
        elif f.name == "package.json":
            doc = json.loads(f.content)
            for section in ("dependencies", "devDependencies", "optionalDependencies", "peerDependencies"):
                for p, rng in doc.get(section, {}).items():
                    if p in bad and not any(satisfies(v, rng) for v in bad[p]):
                        safe_ranges += 1
                        zero_x_traps += rng.startswith("^0.")
    assert safe_locked >= 10 and safe_ranges >= 5 and zero_x_traps >= 1


def test_malformed_files_do_not_parse_and_carry_no_truth():
    org = org500()
    reasons = Counter()
    truth_files = {(t["repo"], t["path"]) for t in org.truth}
    for m in org.malformed:
        f = org.repo(m["repo"].split("/")[1]).files[m["path"]]
        assert (m["repo"], m["path"]) not in truth_files
        reasons[m["reason"]] += 1
        with pytest.raises((ValueError, yaml.YAMLError)):  # JSONDecodeError, TOMLDecodeError, UnicodeDecodeError
            text = f.content.decode()
            if f.name.endswith(".json") or f.name in ("composer.lock", "Pipfile.lock"):
                json.loads(text)
            elif f.name.endswith(".yaml"):
                yaml.load(text, Loader=YAML_LOADER)
            else:
                tomllib.loads(text)
    assert len(reasons) >= 4


def test_structured_files_that_are_not_malformed_parse():
    org, broken = org500(), malformed_keys(org500())
    for r, path, f in files_of(org):
        if (r.full_name, path) in broken:
            continue
        text = f.content.decode()
        if f.name.endswith(".json") or f.name in ("composer.lock", "Pipfile.lock"):
            json.loads(text)
        elif f.name == "bun.lock":
            jsonc(text)
        elif f.name.endswith((".yaml", ".yml")) or (f.name == "yarn.lock" and "__metadata:" in text):
            yaml.load(text, Loader=YAML_LOADER)
        elif f.name.endswith(".toml") or f.name in ("poetry.lock", "uv.lock", "Cargo.lock"):
            tomllib.loads(text)


# -- IOC list, semver, org API --------------------------------------------------------
def test_ioc_csv_alternatives_are_parsed_each(tmp_path: Path):
    table = iocs()
    assert len(table) == 795
    assert table["@asyncapi/cli"] == ("4.1.3", "4.1.2")
    assert sum(len(v) > 1 for v in table.values()) == 233
    bad_header = tmp_path / "x.csv"
    bad_header.write_text("name;version\n")
    with pytest.raises(InputError, match=r"x\.csv:1"):
        read_ioc_csv(bad_header)
    bad_row = tmp_path / "y.csv"
    bad_row.write_text("Package,Version\nok,= 1.0.0\nbroken\n")
    with pytest.raises(InputError, match=r"y\.csv:3"):
        read_ioc_csv(bad_row)
    with pytest.raises(InputError, match="missing.csv"):
        generate_org(repos=3, iocs_path=tmp_path / "missing.csv")


def test_a_custom_ioc_list_is_what_gets_planted(tmp_path: Path):
    csv_path = tmp_path / "iocs.csv"
    lines = ["Package,Version"] + [f"@evil/pkg-{i},= 1.{i}.0 || = 1.{i}.1" for i in range(30)]
    csv_path.write_text("\n".join(lines) + "\n")
    org = generate_org(repos=40, seed=2, iocs_path=csv_path)
    assert org.truth and all(t["package"].startswith("@evil/pkg-") for t in org.truth)
    csv_path.write_text("Package,Version\nlone,= 2.0.0\nany,= *\n")
    org = generate_org(repos=30, seed=2, iocs_path=csv_path)
    assert {t["package"] for t in org.truth} == {"lone"}


@pytest.mark.parametrize(
    ("version", "spec", "inside"),
    [
        ("0.6.2", "^0.5.0", False),
        ("0.6.2", "^0.6.0", True),
        ("0.0.8", "^0.0.7", False),
        ("0.0.8", "~0.0.7", True),
        ("1.4.0", "^1.2.3", True),
        ("2.0.0", "^1.2.3", False),
        ("1.3.0", "~1.2.3", False),
        ("1.2.9", "1.2.x", True),
        ("1.0.1", ">=1.0.3 <2.0.0", False),
        ("3.0.1", "^2.0.0 || ^3.0.0", True),
        ("1.5.0", "1.2.3 - 1.5", True),
        ("1.0.1", "<1.0.1", False),
        ("4.1.2", "=4.1.2", True),
    ],
)
def test_range_semantics(version: str, spec: str, inside: bool):
    assert satisfies(version, spec) is inside


def test_org_lookups():
    org = org500()
    some = org.repos[17]
    assert org.repo(some.name.upper()) is some and org.repo("no-such-repo") is None
    f = next(iter(some.files.values()))
    assert org.blob(f.sha).content == f.content and org.blob("0" * 40) is None
    visible = org.truth_for(include_archived=False, include_forks=False)
    skipped = {r.full_name for r in org.repos if r.archived or r.fork}
    assert visible and not any(t["repo"] in skipped for t in visible)


def test_demo_org_is_the_generator_with_the_demo_defaults():
    org = demo_org(repos=30)
    assert org.login == "acme" and len(org.repos) == 30 and org.truth
    assert fingerprint(org) == fingerprint(generate_org(login="acme", repos=30, seed=7))


# -- repos dir ----------------------------------------------------------------------
def test_repos_dir_loads_each_subfolder_as_a_repo(tmp_path: Path):
    (tmp_path / "web" / "src").mkdir(parents=True)
    (tmp_path / "web" / "package-lock.json").write_bytes(b'{"lockfileVersion": 3}\r\n')
    (tmp_path / "web" / "src" / "index.js").write_text("console.log(1)\n")
    (tmp_path / "web" / ".git" / "objects").mkdir(parents=True)
    (tmp_path / "web" / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "requirements.txt").write_text("requests==2.31.0\n")
    (tmp_path / "notes.txt").write_text("not a repo\n")
    truth = [{"repo": "web", "path": "package-lock.json", "package": "x", "version": "1.0.0", "line": 1}]
    (tmp_path / "_truth.json").write_text(json.dumps(truth))
    org = load_repos_dir(tmp_path, login="corp")
    assert [r.full_name for r in org.repos] == ["corp/api", "corp/web"]
    web = org.repo("web")
    assert sorted(web.files) == ["package-lock.json", "src/index.js"]
    assert web.default_branch == "main"
    assert web.files["package-lock.json"].content == b'{"lockfileVersion": 3}\r\n'
    assert [e["path"] for e in web.tree_entries()] == ["package-lock.json", "src", "src/index.js"]
    assert org.truth == [{"repo": "corp/web", "path": "package-lock.json", "package": "x", "version": "1.0.0",
                          "ecosystem": "npm", "kind": "locked", "line": 1}]  # fmt: skip
    assert org.repo("api").files["requirements.txt"].content == b"requests==2.31.0\n"


def test_repos_dir_without_truth_file_has_empty_truth(tmp_path: Path):
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "README.md").write_text("# only\n")
    org = load_repos_dir(tmp_path)
    assert org.truth == [] and org.repo("only").files["README.md"].sha == git_blob_sha(b"# only\n")


def test_repos_dir_errors_name_the_path(tmp_path: Path):
    missing = tmp_path / "nope"
    with pytest.raises(InputError, match=re.escape(str(missing))):
        load_repos_dir(missing)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(InputError, match="not a directory.*file.txt"):
        load_repos_dir(a_file)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no subfolders.*empty"):
        load_repos_dir(empty)
    (empty / "r").mkdir()
    (empty / "_truth.json").write_text('[{"repo": "ghost", "path": "a", "package": "p", "version": "1"}]')
    with pytest.raises(InputError, match=r"_truth\.json.*ghost"):
        load_repos_dir(empty)
    (empty / "_truth.json").write_text("{broken")
    with pytest.raises(InputError, match=r"_truth\.json"):
        load_repos_dir(empty)
    for message in (str(e) for e in _errors(tmp_path)):
        assert "\n" not in message


def _errors(tmp_path: Path) -> list[InputError]:
    out = []
    for target in (tmp_path / "nope", tmp_path / "file.txt", tmp_path / "empty"):
        try:
            load_repos_dir(target)
        except InputError as e:
            out.append(e)
    return out
