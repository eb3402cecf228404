"""Ingest: the raw CSV files, and the raw tables loaded and checked from them.

- ``assets.py``: ``raw_tables``, the step that loads ``raw_customers``, ``raw_orders`` and
  ``raw_payments`` and runs their blocking checks, and publishes them (or leaves them to the dbt
  step of the same run).
- ``files.py``: an asset per raw file, and ``raw_files_sensor``, which reports their new versions.
- ``tables.py``: the raw tables, their files and the load's config; ``checks.py``: the raw checks.
- ``input_contract.py`` and ``csv_errors.py``: what a loadable file is, and how a file that is not
  one is explained; ``accepted_values.py``: the statuses and payment methods, from dbt's vars.
- ``data_source.py``: where the files come from (the ``data_source`` resource).

Nothing here imports dagster-dbt or plotly, and the modules the data generator imports
(``accepted_values.py``) import nothing of Dagster's.
"""
