"""The deployment files outside `make serve`: the image, Docker Compose and Dagster's Helm chart.

Nothing here builds an image or starts a container (no registry is reachable to pull a base
image): the Compose file goes through docker-compose's own `config` check, the build context
through docker-py's own .dockerignore rules, and the Helm values are checked for what the chart
needs of them (docs/deploying.md says what was and was not validated).
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from dagster._core.launcher import RunLauncher
from dagster._serdes.config_class import class_from_code_pointer

from dagster_project.settings import PRODUCTION_DIR, REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
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
