"""Credentials in Redis URLs never leave the URL: not in the CLI's output, reprs, errors, logs,
manifests, summaries or the progress store itself, whatever form the URL takes.

Every form is run for real: a private redis-server with that password (``requirepass``), a
``thumbflow run`` against the shared test cluster, then the same URL pointed at a port (or socket)
where nothing listens, so the error paths print too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from distributed import Client

import pipeline
from pipeline import cli
from pipeline.errors import ConfigError, ThumbflowError
from pipeline.progress.store import RedisStore
from pipeline.redaction import redact, redact_location
from pipeline.samples import photo_like
from tests.helpers import read_rows
from tests.redis_server import RedisServer, free_port

# -- what counts as a leak ----------------------------------------------------------------------


def leaks(secret: str) -> list[str]:
    """The secret as typed and percent-encoded, and every run of 4+ letters or digits in it: a
    parser that splits a password at '#' or '@' and prints one half leaks too."""
    pieces = {secret, quote(secret, safe=""), quote(secret)}
    pieces.update(re.findall(r"[A-Za-z0-9]{4,}", secret))
    return sorted(pieces)


def assert_no_secret(text: str, secrets: tuple[str, ...]) -> None:
    found = [piece for secret in secrets for piece in leaks(secret) if piece in text]
    assert not found, f"{found} leaked in:\n{text}"


# -- redact() on its own: every form, including those no parser accepts --------------------------

# (URL, the secrets in it, what must still be shown)
REDACT_CASES = [
    ("redis://:Tulip8813@cache:6379/0", ("Tulip8813",), "redis://:***@cache:6379/0"),
    ("redis://alice:Maple5521@cache:6379/0", ("Maple5521",), "redis://alice:***@cache:6379/0"),
    ("redis://Token7730zz@cache:6379/0", ("Token7730zz",), "redis://***@cache:6379/0"),
    ("redis://cache:6379/0?password=Cedar4417", ("Cedar4417",), "cache:6379/0?password=***"),
    ("redis://cache/0?db=1&token=Aspen3302", ("Aspen3302",), "?db=1&token=***"),
    ("redis://cache/0?ssl_keyfile_password=Elm9002", ("Elm9002",), "cache/0?"),
    ("redis://cache/0?Api_Key=Fir7711&x=1", ("Fir7711",), "cache/0?"),
    ("redis://cache/0?auth=Yew5512", ("Yew5512",), "redis://cache/0?auth=***"),
    ("redis://cache/0?client_secret=Ash1123", ("Ash1123",), "redis://cache/0?"),
    ("redis://cache/0?pwd=Lime4450", ("Lime4450",), "redis://cache/0?"),
    ("redis://cache/0?credentials=Pine6613", ("Pine6613",), "redis://cache/0?"),
    ("redis://:Quokka#Zq6624wv@cache:6379/0", ("Quokka#Zq6624wv",), "redis://"),
    ("redis://:#Zq6624wv@cache:6379/0", ("#Zq6624wv",), "redis://"),
    ("redis://cache/0?password=Wombat#Xy5521", ("Wombat#Xy5521",), "redis://cache/0?"),
    ("redis://:Numbat@Kj7731@cache:6379/0", ("Numbat@Kj7731",), "redis://:***@cache:6379/0"),
    ("redis://:Numbat%40Kj7731@cache/0", ("Numbat@Kj7731",), "redis://:***@cache/0"),
    ("redis://:Dingo W\u00f6%rt9981@cache/0", ("Dingo W\u00f6%rt9981",), "redis://"),
    ("redis://:Dingo%20W%C3%B6rt9981@cache/0", ("Dingo W\u00f6rt9981",), "@cache/0"),
    ("redis://:Bilby/Qq2231@cache:6379/0", ("Bilby/Qq2231",), "redis://"),
    ("redis://:Bilby?Qq2231@cache:6379/0", ("Bilby?Qq2231",), "redis://"),
    ("redis://:Emu:Rr8874@cache:6379/0", ("Emu:Rr8874",), "redis://"),
    ("redis://:Possum4410@[::1]:6379/0", ("Possum4410",), "redis://:***@[::1]:6379/0"),
    ("redis://:Possum4410@[::1:6379/0", ("Possum4410",), "redis://"),
    ("redis://:Possum4410@cache:99999999/0", ("Possum4410",), "redis://"),
    ("rediss://default:Koala8826@cache:6380", ("Koala8826",), "rediss://default:***@cache:6380"),
    ("unix://:Koala8826@/run/redis.sock?db=0", ("Koala8826",), "unix://:***@/run/redis.sock?db=0"),
    ("unix:///run/redis.sock?password=Koala8826", ("Koala8826",), "unix:///run/redis.sock?"),
    ("Koala8826@cache", ("Koala8826",), ""),
    (":Koala8826", ("Koala8826",), ""),
]


@pytest.mark.parametrize(("url", "secrets", "shown"), REDACT_CASES)
def test_redact_hides_every_credential_and_keeps_the_address(
    url: str, secrets: tuple[str, ...], shown: str
) -> None:
    redacted = redact(url)
    assert_no_secret(redacted, secrets)
    assert shown in redacted
    assert redact(redacted) == redacted  # redacting twice changes nothing


def test_redact_leaves_a_url_without_credentials_as_it_was() -> None:
    for url in ("redis://cache:6379/0", "rediss://[::1]:6380/2?ssl_cert_reqs=none", "unix:///s"):
        assert redact(url) == url


def test_a_location_is_a_local_path_as_it_is_or_a_url_redacted() -> None:
    assert redact_location("/data/out/manifests/b.jsonl") == "/data/out/manifests/b.jsonl"
    assert redact_location("ftp://me:Heron5510@files/out") == "ftp://me:***@files/out"


def test_a_malformed_url_says_so_without_echoing_it() -> None:
    redacted = redact("redis://:Quokka#Zq6624wv@cache.example:6379/0")
    assert "malformed" in redacted
    assert "redis://cache.example:6379" in redacted  # host and port can be told safely here


# -- every output of a real run ------------------------------------------------------------------


@dataclass(frozen=True)
class UrlForm:
    """A way to give Redis a password, and what thumbflow must make of it."""

    password: str | None  # the server's requirepass
    make_url: Callable[[int, str], str]  # (port, unix socket path) → URL
    secrets: tuple[str, ...]
    outcome: str  # "recorded" (works), "unreachable" (warns, runs) or "refused" (ConfigError)


ODD_PASSWORD = "Dingo W\u00f6%rt9981"  # a space, a non-ASCII letter and a percent sign


def _pw(form_password: str) -> str:
    return quote(form_password, safe="")


URL_FORMS = {
    "userinfo": UrlForm(
        "Tulip-8813x",
        lambda port, _: f"redis://:Tulip-8813x@127.0.0.1:{port}/0",
        ("Tulip-8813x",),
        "recorded",
    ),
    "user-and-password": UrlForm(
        "Maple-5521x",
        lambda port, _: f"redis://default:Maple-5521x@127.0.0.1:{port}/0",
        ("Maple-5521x",),
        "recorded",
    ),
    "username-only-token": UrlForm(
        "Token-7730x",
        lambda port, _: f"redis://Token-7730x@127.0.0.1:{port}/0",
        ("Token-7730x",),
        "unreachable",  # redis-py sends no AUTH without a password: the server says NOAUTH
    ),
    "query-password": UrlForm(
        "Cedar-4417x",
        lambda port, _: f"redis://127.0.0.1:{port}/0?password=Cedar-4417x",
        ("Cedar-4417x",),
        "recorded",
    ),
    "query-token": UrlForm(
        "Birch-1190x",
        lambda port, _: f"redis://:Birch-1190x@127.0.0.1:{port}/0?token=Aspen-3302x",
        ("Birch-1190x", "Aspen-3302x"),
        "refused",  # redis-py has no 'token' parameter
    ),
    "hash-in-password": UrlForm(
        "Quokka#Zq6624wv",
        lambda port, _: f"redis://:Quokka#Zq6624wv@127.0.0.1:{port}/0",
        ("Quokka#Zq6624wv",),
        "refused",  # '#' starts the URL's fragment: no parser can read this URL
    ),
    "hash-in-password-encoded": UrlForm(
        "Wombat#Xy5521",
        lambda port, _: f"redis://:{_pw('Wombat#Xy5521')}@127.0.0.1:{port}/0",
        ("Wombat#Xy5521",),
        "recorded",
    ),
    "at-in-password": UrlForm(
        "Numbat@Kj7731",
        lambda port, _: f"redis://:Numbat@Kj7731@127.0.0.1:{port}/0",
        ("Numbat@Kj7731",),
        "recorded",
    ),
    "percent-encoded-space-unicode-percent": UrlForm(
        ODD_PASSWORD,
        lambda port, _: f"redis://:{_pw(ODD_PASSWORD)}@127.0.0.1:{port}/0",
        (ODD_PASSWORD,),
        "recorded",
    ),
    "rediss": UrlForm(
        "Possum-Tls4410",
        lambda port, _: f"rediss://:Possum-Tls4410@127.0.0.1:{port}/0",
        ("Possum-Tls4410",),
        "unreachable",  # the test server speaks no TLS: the handshake fails
    ),
    "unix-socket": UrlForm(
        "Koala-Sock8826",
        lambda _, socket: f"unix://:Koala-Sock8826@{socket}?db=0",
        ("Koala-Sock8826",),
        "recorded",
    ),
}


@pytest.fixture
def small_image(tmp_path: Path) -> Path:
    path = tmp_path / "in" / "photo.jpg"
    path.parent.mkdir()
    photo_like(96, 64, seed=5).save(path, quality=80)
    return path


@pytest.fixture
def server_for(redis_binary: str, tmp_path: Path) -> Iterator[Callable[[UrlForm], RedisServer]]:
    started: list[RedisServer] = []

    def start(form: UrlForm) -> RedisServer:
        socket = str(tmp_path / "redis.sock")
        server = RedisServer(redis_binary, password=form.password, unix_socket=socket).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def run_cli(capfd: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cli.main(list(args))
    captured = capfd.readouterr()
    return code, captured.out + captured.err


def everything_in(server: RedisServer) -> str:
    """Every key and value in the server, as text."""
    admin = redis.Redis(
        host="127.0.0.1", port=server.port, password=server.password, decode_responses=True
    )
    dump = []
    for key in admin.scan_iter():
        kind = admin.type(key)
        value = {
            "hash": admin.hgetall,
            "zset": lambda k: admin.zrange(k, 0, -1, withscores=True),
            "stream": admin.xrange,
            "string": admin.get,
        }[kind](key)
        dump.append(f"{key} {value}")
    return "\n".join(dump)


def store_outputs(url: str) -> str:
    """repr(RedisStore) and the text of whatever it raises when asked for a batch."""
    try:
        store = RedisStore(url)
    except ConfigError as error:
        return str(error)
    try:
        store.batch("no-such-batch")
    except ThumbflowError as error:  # unreachable, refused, or (reached) no such batch
        return f"{store!r} {error}"
    return repr(store)


@pytest.mark.parametrize("form", URL_FORMS.values(), ids=URL_FORMS.keys())
def test_a_redis_password_appears_in_no_output(
    form: UrlForm,
    server_for: Callable[[UrlForm], RedisServer],
    cluster_client: Client,
    small_image: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    server = server_for(form)
    url = form.make_url(server.port, str(server.unix_socket))
    scheduler = cluster_client.scheduler.address
    out = tmp_path / "out"
    seen: list[str] = []

    code, printed = run_cli(
        capfd, "run", str(small_image), "-o", str(out), "--scheduler", scheduler,
        "--redis", url, "--no-progress",
    )  # fmt: skip
    seen.append(printed)
    assert "Traceback" not in printed
    assert code == (cli.EXIT_USAGE if form.outcome == "refused" else cli.EXIT_OK), printed
    if form.outcome == "refused":
        assert "cannot read the Redis URL" in printed or "parameter" in printed, printed
    else:
        assert "progress in" in printed, printed
        seen += [path.read_text() for path in (out / "manifests").iterdir()]
    batch_id = re.search(r"batch (\d{8}-\d{6}-\w+)", printed)
    if form.outcome == "recorded":
        assert batch_id, printed
        redis_text = everything_in(server)
        assert batch_id.group(1) in redis_text  # the URL worked: the batch is in Redis
        seen.append(redis_text)
        seen.append(run_cli(capfd, "status", batch_id.group(1), "--redis", url)[1])
    seen.append(store_outputs(url))

    # The same URL where nothing listens: the error paths print it too.
    nowhere = form.make_url(free_port(), str(tmp_path / "no-such.sock"))
    code, printed = run_cli(
        capfd, "run", str(small_image), "-o", str(tmp_path / "out2"), "--scheduler", scheduler,
        "--redis", nowhere, "--require-redis", "--no-progress",
    )  # fmt: skip
    assert code in (cli.EXIT_USAGE, cli.EXIT_INFRASTRUCTURE), printed
    assert "Traceback" not in printed
    seen += [printed, run_cli(capfd, "status", "x", "--redis", nowhere)[1], store_outputs(nowhere)]
    seen.append(caplog.text)

    for text in seen:
        assert_no_secret(text, form.secrets)


# -- what a refused file is, never what it says ----------------------------------------------------


def test_a_refused_file_is_described_never_quoted(
    cluster_client: Client, tmp_path: Path, small_image: Path
) -> None:
    """A link to a private file, fed in as an image, must not leak its first line into the
    manifest (which the people who read the outputs can read)."""
    line = "AWS_SECRET=Qv8Zr2Lp"
    private = tmp_path / "private" / "credentials"
    private.parent.mkdir()
    private.write_text(f"{line}\nregion=eu-west-1\n")
    link = small_image.parent / "holiday.jpg"
    link.symlink_to(private)

    report = pipeline.run([small_image.parent], tmp_path / "out", client=cluster_client)

    rows = {Path(row["source"]).name: row for row in read_rows(report.manifest)}
    failure = rows["holiday.jpg"]["failure"]
    assert failure["code"] == "not_an_image"
    assert "a text file" in failure["message"]
    pieces = {line[start : start + 4] for start in range(len(line) - 3)}
    assert not [piece for piece in pieces if piece in failure["message"]], failure["message"]
    assert_no_secret(Path(report.manifest).read_text(), (line,))
