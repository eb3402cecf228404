"""One list of accepted order statuses and payment methods: the vars in jaffle_shop/dbt_project.yml."""

import json
import subprocess
import sys

import pytest

from dagster_project.defs.ingest.accepted_values import (
    ORDER_STATUSES,
    PAYMENT_METHODS,
    AcceptedValuesError,
    read_var_list,
)
from dagster_project.settings import DBT_PROJECT_DIR, REPO_ROOT


def test_python_reads_the_statuses_and_payment_methods_of_the_dbt_vars():
    assert ORDER_STATUSES == ("placed", "shipped", "completed", "return_pending", "returned")
    assert PAYMENT_METHODS == ("credit_card", "coupon", "bank_transfer", "gift_card")


def test_the_dbt_project_tests_its_keys_its_marts_and_the_statuses_it_reads():
    # The staging key tests repeat the raw id checks in a Dagster run, so that a bare `dbt build`
    # tests the keys too (docs/reliability.md, "Which check runs where"); the status test reads
    # the same var as the raw check.
    manifest = json.loads((DBT_PROJECT_DIR / "target" / "manifest.json").read_text(encoding="utf-8"))
    tests = sorted(node["name"] for node in manifest["nodes"].values() if node["resource_type"] == "test")
    assert tests == [
        "accepted_values_orders_status",
        "not_null_customers_customer_id",
        "not_null_orders_amount",
        "not_null_orders_customer_id",
        "not_null_orders_order_id",
        "not_null_stg_customers_customer_id",
        "not_null_stg_orders_order_date",
        "not_null_stg_orders_order_id",
        "not_null_stg_payments_payment_id",
        "relationships_orders_customer_id__customer_id__ref_customers_",
        "unique_customers_customer_id",
        "unique_orders_order_id",
        "unique_stg_customers_customer_id",
        "unique_stg_orders_order_id",
        "unique_stg_payments_payment_id",
    ]
    (status,) = [
        node for node in manifest["nodes"].values() if node["name"] == "accepted_values_orders_status"
    ]
    assert status["test_metadata"]["kwargs"]["values"] == "{{ var('order_statuses') }}"


@pytest.mark.parametrize(
    "project_yml",
    [
        "name: jaffle_shop\n",
        "vars:\n  order_statuses: placed\n",
        "vars:\n  order_statuses: []\n",
    ],
    ids=["missing", "not a list", "empty"],
)
def test_a_missing_or_malformed_var_is_refused_naming_the_file_and_the_fix(tmp_path, project_yml):
    path = tmp_path / "dbt_project.yml"
    path.write_text(project_yml, encoding="utf-8")

    with pytest.raises(AcceptedValuesError) as error:
        read_var_list(path, "order_statuses")

    assert str(error.value).startswith(f"{path}: vars: order_statuses must be a list of names")
    assert "Fix it there: the dbt tests, the raw-table checks and the data generator all read it." in str(
        error.value
    )


def test_the_data_generator_reads_the_list_without_importing_dagster():
    # Importing dagster takes about 2 s; `python -m dagster_project.cli.datagen` should start at once.
    code = "import sys, dagster_project.cli.datagen; print('dagster' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=120
    )

    assert result.stdout == "False\n"
