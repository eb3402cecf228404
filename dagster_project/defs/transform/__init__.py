"""Transform: the dbt project as Dagster assets.

- ``assets.py``: ``jaffle_shop_dbt_assets`` (``@dbt_assets``), whose step runs ``dbt build`` and
  publishes what it built once every dbt test has passed.
- ``project.py``: the ``DbtProject``, built on first use, so importing never parses dbt.
- ``dbt_child.py``: ``jaffle-dbt``, dbt as the step starts it: a child that dies with its run.
"""
