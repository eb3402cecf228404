"""The command-line tools `make` runs (prepare, materialize, open_chart, datagen, sql_shell).

None of them is part of the code location: Dagster never imports this package, and each tool
imports the definitions only when it needs them.
"""
