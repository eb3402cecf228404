"""dbt's `adapter.dispatch` for sqlfluff's jinja templater, so models that call our macros parse.

sqlfluff renders the models without dbt, and its dbt builtins have no `adapter`. (It lints
only the models' own text: what a macro expands to is parsed, not linted.) Linting always
runs on DuckDB (the dialect in .sqlfluff), so dispatch resolves as dbt-duckdb would:
`duckdb__name`, then `default__name`.
"""

from jinja2 import pass_context


@pass_context
def dispatch(context, macro_name, macro_namespace=None):
    return context.get(f"duckdb__{macro_name}") or context[f"default__{macro_name}"]
