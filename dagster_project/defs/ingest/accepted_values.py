"""The accepted order statuses and payment methods: the `vars` of the dbt project.

`jaffle_shop/dbt_project.yml` holds the one list. The dbt test of `orders.status` and
`orders.sql` read it with `var()`; the raw-table checks and the data generator import it from here. Reading it takes
about 2 ms (yaml is imported by dagster and dbt anyway), so it is read at import.
"""

from pathlib import Path

import yaml

# Found from this file (dagster_project/defs/ingest/), not through settings.py: settings imports
# dagster (about 2 s), and the data generator, which imports this module, must start at once.
DBT_PROJECT_FILE = Path(__file__).resolve().parents[3] / "jaffle_shop" / "dbt_project.yml"


class AcceptedValuesError(ValueError):
    """dbt_project.yml does not hold a list of accepted values the project needs."""


def read_var_list(path: Path, name: str) -> tuple[str, ...]:
    """The list of names under `vars: name:` in a dbt_project.yml."""
    with path.open(encoding="utf-8") as file:
        value = ((yaml.safe_load(file) or {}).get("vars") or {}).get(name)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise AcceptedValuesError(
            f"{path}: vars: {name} must be a list of names, such as [a, b]; it holds {value!r}. "
            "Fix it there: the dbt tests, the raw-table checks and the data generator all read it."
        )
    return tuple(value)


ORDER_STATUSES = read_var_list(DBT_PROJECT_FILE, "order_statuses")
PAYMENT_METHODS = read_var_list(DBT_PROJECT_FILE, "payment_methods")
