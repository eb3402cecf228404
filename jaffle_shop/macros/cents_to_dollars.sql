{#- Integer cents to exact dollars, numeric(16, 2), on every adapter: the models stay the same
    SQL whichever warehouse runs them, as in dbt-labs' jaffle-shop. -#}
{% macro cents_to_dollars(column_name) -%}
    {{ return(adapter.dispatch('cents_to_dollars')(column_name)) }}
{%- endmacro %}

{#- Standard SQL divides a decimal by an integer exactly; the outer cast fixes the scale. -#}
{% macro default__cents_to_dollars(column_name) -%}
    cast(cast({{ column_name }} as numeric(16, 2)) / 100 as numeric(16, 2))
{%- endmacro %}

{#- DuckDB divides in floating point, even a decimal by an integer (12.34 would pass through
    a double); multiplying by the decimal 0.01 stays exact. -#}
{% macro duckdb__cents_to_dollars(column_name) -%}
    cast({{ column_name }} * 0.01 as numeric(16, 2))
{%- endmacro %}
