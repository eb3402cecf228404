with

source as (

    select * from {{ source('jaffle_shop', 'raw_orders') }}

),

renamed as (

    select
        -- The marts' contracts declare integer keys, whatever type the loader gave the raw table.
        cast(id as integer) as order_id,
        cast(user_id as integer) as customer_id,
        order_date,
        status

    from source

)

select * from renamed
