"""The deployment files outside `make serve`: the image, Docker Compose and Dagster's Helm chart.

Nothing here builds an image or starts a container (no registry is reachable to pull a base
image): the Compose file goes through docker-compose's own `config` check, the build context
through docker-py's own .dockerignore rules, and the Helm values through the chart's own
values.schema.json, merged over the chart's defaults as `helm install -f` merges them, and are
checked for what the chart needs of them (docs/deploying.md says what was and was not validated).
"""

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from dagster._core.launcher import RunLauncher
from dagster._serdes.config_class import class_from_code_pointer
from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from dagster_project.settings import PRODUCTION_DIR, REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
# Dagster's Helm chart's values.schema.json and its default values.yaml, from one commit of
# dagster-io/dagster: tests/fixtures/helm/README.md says which, and why it is not the 1.13.27 one.
HELM_CHART = Path(__file__).parent / "fixtures" / "helm"
DAGSTER_SERVICES = ("code-server", "daemon", "webserver")
# Debian's docker-compose (1.29) brings docker-py, whose .dockerignore rules it builds with.
SYSTEM_PYTHON = "/usr/bin/python3"


class UniqueKeyLoader(yaml.SafeLoader):
    """YAML that refuses a key written twice: PyYAML keeps the last, and Helm does as it likes."""

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        if twice := sorted({key for key in keys if keys.count(key) > 1}):
            raise yaml.constructor.ConstructorError(None, None, f"{twice} written twice", node.start_mark)
        return super().construct_mapping(node, deep)


def docker_compose() -> str:
    if not (path := shutil.which("docker-compose")):
        pytest.fail(
            "The Compose file is checked with docker-compose: `make compose` installs Debian's "
            "(as root), or apt-get install docker-compose.",
            pytrace=False,
        )
    return path


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [docker_compose(), "-f", str(DEPLOY / "compose.yaml"), "config"],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def compose() -> dict:
    """The Compose file as docker-compose resolves it, with a password in the environment."""
    completed = compose_config({"DAGSTER_PG_PASSWORD": "from-the-environment"})
    assert completed.returncode == 0, completed.stderr
    return yaml.safe_load(completed.stdout)


@pytest.fixture(scope="module")
def helm_values() -> dict:
    return yaml.load((DEPLOY / "helm" / "values.yaml").read_text(), UniqueKeyLoader)


@pytest.fixture(scope="module")
def chart_schema() -> dict:
    return json.loads((HELM_CHART / "values.schema.json").read_text())


@pytest.fixture(scope="module")
def chart_defaults() -> dict:
    return yaml.safe_load((HELM_CHART / "chart-values.yaml").read_text())


def helm_merge(values: dict, defaults: dict) -> dict:
    """The chart's defaults with `values` over them, as Helm merges them before it validates: maps
    key by key, a null removes the default, anything else (a list too) replaces it whole."""
    merged = dict(defaults)
    for key, value in values.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(defaults.get(key), dict):
            merged[key] = helm_merge(value, defaults[key])
        else:
            merged[key] = value
    return merged


def kubernetes_stand_ins(schema: dict) -> Registry:
    """The schema's references to Kubernetes' own definitions (env entries, volumes, probes...), a
    URL that Helm downloads: here each resolves to an empty schema, which accepts anything, so the
    validation never reaches the network and leaves those objects' shape unchecked."""
    documents: dict[str, dict] = {}

    def visit(node) -> None:
        if isinstance(node, list):
            for child in node:
                visit(child)
        elif isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and not ref.startswith("#"):
                url, _, pointer = ref.partition("#")
                target = documents.setdefault(url, {})
                for token in pointer.strip("/").split("/"):
                    target = target.setdefault(token.replace("~1", "/").replace("~0", "~"), {})
            for child in node.values():
                visit(child)

    visit(schema)
    return Registry().with_resources(
        (url, DRAFT202012.create_resource(document)) for url, document in documents.items()
    )


def key_path(error) -> str:
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path)
    return path.lstrip(".") or "(the values)"


def chart_schema_errors(schema: dict, values: dict) -> list[str]:
    """What the chart's schema refuses in `values`, one line per error: where, and why."""
    # The schema names no $schema, so validator_for takes the latest draft, 2020-12: the one whose
    # $defs the chart's generator (pydantic) writes.
    validator = validator_for(schema)(schema, registry=kubernetes_stand_ins(schema))
    lines = []
    for error in validator.iter_errors(values):
        # An anyOf (a value or null, a string or an integer) says only that no branch fits.
        why = f" ({best_match(error.context).message})" if error.context else ""
        lines.append(f"{key_path(error)}: {error.message}{why}")
    return sorted(lines)


def test_compose_builds_every_dagster_service_from_the_project_and_waits_for_a_healthy_postgresql(compose):
    services = compose["services"]
    assert services["postgres"]["healthcheck"]["test"][0] == "CMD-SHELL"
    for name in DAGSTER_SERVICES:
        assert services[name]["build"]["context"] == str(REPO_ROOT), name
        assert services[name]["depends_on"]["postgres"] == {"condition": "service_healthy"}, name
        assert services[name]["restart"] == "unless-stopped", name
    for name in ("daemon", "webserver"):
        assert services[name]["depends_on"]["code-server"] == {"condition": "service_healthy"}, name
    assert services["webserver"]["ports"] == ["127.0.0.1:3000:3000/tcp"]


def test_compose_refuses_to_start_without_the_postgresql_password_from_the_environment():
    completed = compose_config({})

    assert completed.returncode != 0
    assert "set it in the environment or in .env, never in this file" in completed.stderr


def test_the_image_leaves_local_state_and_secrets_out_of_its_build_context(tmp_path: Path):
    if not shutil.which(SYSTEM_PYTHON):
        pytest.fail("docker-py comes with Debian's docker-compose: `make compose`.", pytrace=False)
    # A checkout after `make run`, `make serve`, `make spark` and `make test` have run in it.
    kept = ["Dockerfile", "uv.lock", "data/sample/raw_orders.csv", "dagster_project/definitions.py"]
    local = [
        ".serve/postgres-password",
        ".venv/bin/python",
        ".dagster_home/dagster.yaml",
        ".spark/warehouse/x",
        "test-artifacts/serve/daemon.log",
        "data/jaffle.duckdb",
        "data/jaffle.duckdb.wal",
    ]
    for path in (*kept, *local):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("")
    shutil.copy(REPO_ROOT / ".dockerignore", tmp_path)
    lister = (
        "from docker.utils.build import exclude_paths; "
        "patterns = [line.strip() for line in open('.dockerignore') if line.strip() and not line.startswith('#')]; "
        "print('\\n'.join(sorted(exclude_paths('.', patterns))))"
    )
    completed = subprocess.run(
        [SYSTEM_PYTHON, "-c", lister], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr

    files = [
        path for path in completed.stdout.split() if (tmp_path / path).is_file() and path != ".dockerignore"
    ]
    assert sorted(files) == sorted(kept)


def test_helm_values_run_the_project_image_in_every_dagster_pod(helm_values):
    (deployment,) = helm_values["dagster-user-deployments"]["deployments"]
    image = deployment["image"]

    assert helm_values["dagsterWebserver"]["image"] == image
    assert helm_values["dagsterDaemon"]["image"] == image
    assert set(image) == {"repository", "tag", "pullPolicy"}
    assert deployment["dagsterApiGrpcArgs"][:2] == ["--module-name", "dagster_project.definitions"]


def test_helm_values_name_the_postgresql_driver_and_the_launcher_of_the_production_instance(helm_values):
    instance = yaml.safe_load((PRODUCTION_DIR / "dagster.yaml").read_text())
    launcher = helm_values["runLauncher"]

    assert (
        helm_values["postgresql"]["postgresqlScheme"]
        == instance["storage"]["postgres"]["postgres_db"]["scheme"]
    )
    assert launcher["type"] == "CustomRunLauncher"
    custom = launcher["config"]["customRunLauncher"]
    # The chart requires all three; the class is one Dagster can load and configure with `config`.
    assert {key: custom[key] for key in ("module", "class")} == instance["run_launcher"]
    launcher_class = class_from_code_pointer(custom["module"], custom["class"])
    assert issubclass(launcher_class, RunLauncher)
    assert custom["config"] == {} and launcher_class.config_type() == {}
    assert helm_values["dagsterDaemon"]["runMonitoring"]["enabled"] is True
    assert helm_values["telemetry"] == {"enabled": False}


def test_a_key_written_twice_in_helm_values_is_refused():
    with pytest.raises(yaml.constructor.ConstructorError, match=r"\['telemetry'\] written twice"):
        yaml.load("telemetry: {enabled: false}\ntelemetry: {enabled: true}\n", UniqueKeyLoader)


def test_helm_values_merged_over_the_charts_defaults_pass_the_charts_values_schema(
    helm_values, chart_schema, chart_defaults
):
    validator_for(chart_schema).check_schema(chart_schema)
    # The chart's own defaults pass: the schema and the defaults are the pair of one commit.
    assert chart_schema_errors(chart_schema, chart_defaults) == []

    assert chart_schema_errors(chart_schema, helm_merge(helm_values, chart_defaults)) == []


def unquoted_image_tag(values: dict) -> None:
    # YAML reads an unquoted `tag: 1.10` as the number 1.1.
    values["dagsterWebserver"]["image"] = {
        **values["dagsterWebserver"]["image"],
        "tag": yaml.safe_load("1.10"),
    }


def misspelled_daemon_key(values: dict) -> None:
    values["dagsterDaemon"]["runMonitorng"] = values["dagsterDaemon"].pop("runMonitoring")


def quoted_code_server_port(values: dict) -> None:
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    deployment["port"] = "4000"


@pytest.mark.parametrize(
    ("mistake", "error"),
    [
        (
            unquoted_image_tag,
            "dagsterWebserver.image.tag: 1.1 is not valid under any of the given schemas "
            "(1.1 is not of type 'string')",
        ),
        (
            misspelled_daemon_key,
            "dagsterDaemon: Additional properties are not allowed ('runMonitorng' was unexpected)",
        ),
        (
            quoted_code_server_port,
            "dagster-user-deployments.deployments[0].port: '4000' is not of type 'integer'",
        ),
    ],
    ids=["unquoted image tag", "misspelled daemon key", "quoted code server port"],
)
def test_a_mistake_in_helm_values_is_refused_by_the_charts_schema_naming_its_key_path(
    helm_values, chart_schema, chart_defaults, mistake, error
):
    values = copy.deepcopy(helm_values)
    mistake(values)

    assert chart_schema_errors(chart_schema, helm_merge(values, chart_defaults)) == [error]


def test_a_misspelled_postgresql_scheme_passes_the_charts_schema_and_the_chart_default_is_used(
    helm_values, chart_schema, chart_defaults
):
    # The chart's schema takes any key under `postgresql`: the test of the driver above, which
    # reads `postgresqlScheme` by name, is what refuses this.
    values = copy.deepcopy(helm_values)
    values["postgresql"]["postgresqlSchema"] = values["postgresql"].pop("postgresqlScheme")
    merged = helm_merge(values, chart_defaults)

    assert chart_schema_errors(chart_schema, merged) == []
    assert merged["postgresql"]["postgresqlScheme"] == ""
