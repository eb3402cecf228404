{% set payment_methods = var('payment_methods') %}

with

orders as (

    select * from {{ ref('stg_orders') }}

),

payments as (

    select * from {{ ref('stg_payments') }}

),

order_payments as (

    select
        order_id,

        -- A sum of numeric(16, 2) widens to numeric(38, 2); the marts keep the staging type.
        {% for payment_method in payment_methods -%}
            cast(
                sum(case when payment_method = '{{ payment_method }}' then amount else 0 end)
                as numeric(16, 2)
            ) as {{ payment_method }}_amount,
        {% endfor -%}

        cast(sum(amount) as numeric(16, 2)) as total_amount

    from payments

    group by order_id

),

final as (

    select
        orders.order_id,
        orders.customer_id,
        orders.order_date,
        orders.status,

        {% for payment_method in payment_methods -%}
            order_payments.{{ payment_method }}_amount,
        {% endfor -%}

        order_payments.total_amount as amount

    from orders

    left join order_payments
        on orders.order_id = order_payments.order_id

)

select * from final
