{#
    Test-only: each mart waits JAFFLE_TEST_PAUSE_MARTS_SECONDS seconds before it is built, so
    tests/test_interrupts.py can stop dbt between the staging views and the marts on any machine
    (the sample data builds in about a second). Unset, as everywhere but that test, the hook
    renders nothing and dbt runs no statement for it. DuckDB's sleep_ms is interruptible, so the
    pause ends as soon as dbt cancels its query.
#}
{% macro pause_for_tests() %}
    {%- set seconds = env_var('JAFFLE_TEST_PAUSE_MARTS_SECONDS', '0') | int -%}
    {%- if seconds > 0 -%}
        select sleep_ms({{ seconds * 1000 }})
    {%- endif -%}
{% endmacro %}
