"""Lock files read into pins: each format, as the tools write them, and the errors for bad input."""

from __future__ import annotations

import pytest

from moorage.audit.lockfiles import (
    LockedFile,
    LockedPackage,
    LockFileError,
    detect_format,
    parse_lockfile,
    parse_poetry_lock,
    parse_pylock,
    parse_requirements,
    parse_uv_lock,
)

A = "a" * 64
B = "b" * 64
C = "c" * 64
INDEX = "http://127.0.0.1:8080/simple/"
FILES = "http://127.0.0.1:8080/files"


@pytest.mark.parametrize(("name", "fmt"), [
    ("pylock.toml", "pylock"), ("locks/pylock.dev.toml", "pylock"), ("uv.lock", "uv"), ("poetry.lock", "poetry"),
    ("requirements.txt", "requirements"), ("requirements-dev.lock", "requirements"),
    ("pylock.a.b.toml", "requirements"),  # PEP 751: the name part has no dots
])
def test_the_format_comes_from_the_file_name(name: str, fmt: str) -> None:
    assert detect_format(name) == fmt


# -- pylock.toml ------------------------------------------------------------------------------
PIP_PYLOCK = f"""\
lock-version = "1.0"
created-by = "pip"

[[packages]]
name = "alpha"
version = "1.0"

[[packages.wheels]]
name = "alpha-1.0-py3-none-any.whl"
url = "http://127.0.0.1:8080/files/{A}/alpha-1.0-py3-none-any.whl"

[packages.wheels.hashes]
sha256 = "{A}"

[[packages]]
name = "beta"
version = "2.0"
index = "{INDEX}"
sdist = {{ url = "{FILES}/{B}/beta-2.0.tar.gz", size = 386, hashes = {{ sha256 = "{B.upper()}" }} }}
wheels = [{{ url = "{FILES}/{C}/beta-2.0-py3-none-any.whl", size = 963, hashes = {{ sha256 = "{C}" }} }}]

[[packages]]
name = "local"
directory = {{ path = "." }}
"""


def test_pylock_as_pip_and_uv_write_it() -> None:
    packages = parse_pylock(PIP_PYLOCK)
    assert packages == [
        LockedPackage("alpha", "1.0", None, [
            LockedFile("alpha-1.0-py3-none-any.whl", A, None,
                       f"http://127.0.0.1:8080/files/{A}/alpha-1.0-py3-none-any.whl", 9)], 5),
        LockedPackage("beta", "2.0", INDEX, [
            LockedFile("beta-2.0.tar.gz", B, 386, f"http://127.0.0.1:8080/files/{B}/beta-2.0.tar.gz", 19),
            LockedFile("beta-2.0-py3-none-any.whl", C, 963,
                       f"http://127.0.0.1:8080/files/{C}/beta-2.0-py3-none-any.whl", 20)], 16),
    ]  # the directory package is not a file of an index: left out


@pytest.mark.parametrize(("text", "says"), [
    ("lock-version = \"1.0\"\n[[packages]]\nname = \"x\"\n", "Missing required value in 'created-by'"),
    ("lock-version = \"3.0\"\ncreated-by = \"me\"\npackages = []\n", "pylock version 3.0 is not supported"),
    ("lock-version = \"1.0\"\ncreated-by = \"me\"\n[[packages]]\nname = \"Not_Normal\"\ndirectory = {path = \".\"}\n",
     "Name 'Not_Normal' is not normalized"),
    ("lock-version = \"1.0\"\ncreated-by = \"me\"\n[[packages]]\nname = \"x\"\nversion = \"1.0\"\n"
     "wheels = [{url = \"http://h/y-1.0-py3-none-any.whl\", hashes = {sha256 = \"" + A + "\"}}]\n",
     "not consistent with package name"),
    ("lock-version = \"1.0\"\ncreated-by = \"me\"\n[[packages]]\nname = \"x\"\n"
     "wheels = [{url = \"http://h/x-1.0-py3-none-any.whl\", hashes = {sha256 = \"" + A + "\"}}]\n",
     "package x has files but no version"),
    ("lock-version = \"1.0\"\ncreated-by = \"me\"\n[[packages]]\nname = \"x\"\nversion = \"1.0\"\n"
     "wheels = [{url = \"http://h/x-1.0-py3-none-any.whl\", hashes = {sha256 = \"abc\"}}]\n",
     "'abc' is not a sha256 digest"),
    ("lock-version = 1.0 = 2\n", "not valid TOML (pylock.toml)"),
])
def test_a_bad_pylock_says_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(LockFileError) as exc:
        parse_pylock(text)
    assert says in str(exc.value)


# -- uv.lock ----------------------------------------------------------------------------------
UV_LOCK = f"""\
version = 1
revision = 3
requires-python = ">=3.8"

[[package]]
name = "app"
version = "0.1.0"
source = {{ editable = "." }}
dependencies = [
    {{ name = "Demo-Pkg" }},
]

[[package]]
name = "Demo-Pkg"
version = "1.0+local"
source = {{ registry = "{INDEX}" }}
sdist = {{ url = "http://127.0.0.1:8080/files/{A}/demo_pkg-1.0%2Blocal.tar.gz", hash = "sha256:{A}", size = 10 }}
wheels = [
    {{ url = "http://127.0.0.1:8080/files/{B}/demo_pkg-1.0%2Blocal-py3-none-any.whl", hash = "sha256:{B}", size = 20 }},
    {{ url = "http://127.0.0.1:8080/files/{C}/demo_pkg-1.0%2Blocal-py2-none-any.whl", hash = "sha512:{'d' * 128}" }},
]

[[package]]
name = "from-git"
version = "0.3"
source = {{ git = "https://example.invalid/repo.git" }}
"""


def test_uv_lock_keeps_registry_packages_and_decodes_file_names() -> None:
    (package,) = parse_uv_lock(UV_LOCK)
    assert (package.name, package.version, package.index, package.line) == ("Demo-Pkg", "1.0+local", INDEX, 14)
    assert [(f.filename, f.sha256, f.size, f.line) for f in package.files] == [
        ("demo_pkg-1.0+local.tar.gz", A, 10, 17),
        ("demo_pkg-1.0+local-py3-none-any.whl", B, 20, 19),  # found as the URL spells it
        ("demo_pkg-1.0+local-py2-none-any.whl", None, None, 20),  # sha512 only: nothing to compare with the index
    ]
    assert package.normalized_name == "demo-pkg"


@pytest.mark.parametrize(("text", "says"), [
    ('version = 1\n[[package]]\nname = "x"\nversion = "1"\nsource = { registry = "u" }\n'
     'wheels = [{ url = "http://h/x-1-py3-none-any.whl", hash = "md5:00" }]\n',
     "line 3: package x, x-1-py3-none-any.whl: expected a hash such as sha256:<hex digest>, got 'md5:00'"),
    ('version = 1\n[[package]]\nname = "x"\nsource = { registry = "u" }\n', "line 3: package x: `version` must be"),
    ('version = 1\n[[package]]\nname = "x"\nversion = "1"\nsource = { registry = "u" }\nwheels = [{ hash = "x" }]\n',
     "a file without `url` or `path`"),
    ('version = 1\n[[package]]\nname = "x"\nversion = "1"\nsource = { registry = "u" }\n'
     'sdist = { url = "http://h/x-1.tar.gz", size = -1 }\n', "`size` of x-1.tar.gz must be a whole number"),
    ("package = 3\n", "`package` must be an array of tables"),
    ("[tool]\nx = 1\n", "not a uv.lock"),
])
def test_a_bad_uv_lock_says_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(LockFileError) as exc:
        parse_uv_lock(text)
    assert says in str(exc.value)


# -- poetry.lock ------------------------------------------------------------------------------
POETRY_LOCK = f"""\
# This file is automatically @generated by Poetry and should not be changed by hand.

[[package]]
name = "alpha"
version = "1.0"
description = "a test project"
optional = false
files = [
    {{file = "alpha-1.0-py3-none-any.whl", hash = "sha256:{A}"}},
    {{file = "alpha-1.0.tar.gz", hash = "sha256:{B}"}},
]

[package.source]
type = "legacy"
url = "http://127.0.0.1:8080/simple"
reference = "moorage"

[[package]]
name = "gamma"
version = "3.0"
files = [
    {{file = "gamma-3.0.tar.gz", hash = "sha256:{C}"}},
]

[[package]]
name = "checkout"
version = "0.1"
files = []

[package.source]
type = "git"
url = "https://example.invalid/checkout.git"
reference = "main"

[metadata]
lock-version = "2.1"
python-versions = ">=3.8"
"""


def test_poetry_lock_with_a_legacy_source_and_the_default_one() -> None:
    alpha, gamma = parse_poetry_lock(POETRY_LOCK)
    assert alpha == LockedPackage("alpha", "1.0", "http://127.0.0.1:8080/simple", [
        LockedFile("alpha-1.0-py3-none-any.whl", A, None, None, 9),
        LockedFile("alpha-1.0.tar.gz", B, None, None, 10)], 4)
    # No [package.source]: Poetry's default index, which the lock does not name (--index decides).
    assert gamma == LockedPackage("gamma", "3.0", None, [LockedFile("gamma-3.0.tar.gz", C, None, None, 22)], 19)


def test_an_old_poetry_lock_keeps_its_files_under_metadata() -> None:
    text = f"""[[package]]
name = "Old_Name"
version = "0.9"

[metadata]
lock-version = "1.1"

[metadata.files]
old-name = [
    {{file = "Old_Name-0.9.tar.gz", hash = "sha256:{A}"}},
]
"""
    (package,) = parse_poetry_lock(text)
    assert package.files == [LockedFile("Old_Name-0.9.tar.gz", A, None, None, 10)]


def test_a_bad_poetry_lock_says_what_is_wrong() -> None:
    with pytest.raises(LockFileError, match="line 2: package x: `version` must be a non-empty string"):
        parse_poetry_lock('[[package]]\nname = "x"\n')
    with pytest.raises(LockFileError, match=r"`files` must be an array of \{file, hash\} tables"):
        parse_poetry_lock('[[package]]\nname = "x"\nversion = "1"\nfiles = "x-1.tar.gz"\n')
    with pytest.raises(LockFileError, match="not a poetry.lock"):
        parse_poetry_lock("")


# -- requirements.txt -------------------------------------------------------------------------
REQUIREMENTS = f"""\
# This file was autogenerated by uv via the following command:
#    uv pip compile --generate-hashes --emit-index-url requirements.in
--index-url {INDEX}
--extra-index-url http://127.0.0.1:9999/simple/

alpha==1.0 \\
    --hash=sha256:{A} \\
    --hash=sha256:{B.upper()}
    # via -r requirements.in
Beta_Two[extra]==2.0 ; python_version >= "3.8" \\
    --hash=sha256:{C}
    # via alpha
gamma===3.0rc1  # a comment after the pin
delta @ https://example.invalid/delta-1.0.tar.gz
-e ./local
"""


def test_requirements_with_hashes_continuations_markers_and_the_index() -> None:
    alpha, beta, gamma = parse_requirements(REQUIREMENTS)
    assert alpha == LockedPackage("alpha", "1.0", INDEX, [LockedFile(None, A, None, None, 6),
                                                          LockedFile(None, B, None, None, 6)], 6)
    assert beta == LockedPackage("Beta_Two", "2.0", INDEX, [LockedFile(None, C, None, None, 10)], 10)
    assert gamma == LockedPackage("gamma", "3.0rc1", INDEX, [], 13)  # no hashes: the release is checked


@pytest.mark.parametrize("line", [f"-i {INDEX}", f"--index-url={INDEX}", f"-i{INDEX}", f"--index-url   {INDEX}"])
def test_every_spelling_of_the_index_option(line: str) -> None:
    (package,) = parse_requirements(f"alpha==1.0\n{line}\n")  # after the pins: it applies to all of them
    assert package.index == INDEX


def test_requirements_without_an_index_record_none() -> None:
    (package,) = parse_requirements("alpha==1.0 --hash=sha256:" + A + "\n")
    assert package.index is None and package.files == [LockedFile(None, A, None, None, 1)]


def test_a_comment_line_ends_a_continuation_as_pip_reads_it() -> None:
    text = "alpha==1.0 \\\n# a comment\n    --hash=sha256:" + A + "\n"
    with pytest.raises(LockFileError, match="line 3: --hash outside a requirement"):
        parse_requirements(text)


@pytest.mark.parametrize(("text", "says"), [
    ("alpha>=1.0\n", "line 1: 'alpha>=1.0' is not pinned to one version with =="),
    ("alpha==1.*\n", "line 1: 'alpha==1.*' is not pinned"),
    ("alpha\n", "line 1: 'alpha' is not pinned"),
    ("x\nalpha==1.0 \\\n  --hash=md5:0123\n", "line 1: 'x' is not pinned"),
    ("alpha==1.0 \\\n  --hash=md5:0123\n", "line 1: expected a hash such as sha256:<hex digest>, got 'md5:0123'"),
    ("alpha==1.0 --hash=sha256:abc\n", "line 1: 'sha256:abc' is not a sha256 digest"),
    ("alpha==1.0 --hash\n", "line 1: --hash needs a value"),
    ("-r base.txt\n", "line 1: '-r base.txt' includes another file"),
    ("-cconstraints.txt\n", "includes another file"),
    ("--index-url\n", "line 1: --index-url needs a URL"),
    ("./some/dir\n", "line 1: not a requirement"),
])
def test_bad_requirements_say_what_and_where(text: str, says: str) -> None:
    with pytest.raises(LockFileError) as exc:
        parse_requirements(text)
    assert says in str(exc.value)


def test_parse_lockfile_dispatches_on_the_format() -> None:
    assert parse_lockfile(REQUIREMENTS, "requirements") == parse_requirements(REQUIREMENTS)
    assert parse_lockfile(UV_LOCK, "uv") == parse_uv_lock(UV_LOCK)
