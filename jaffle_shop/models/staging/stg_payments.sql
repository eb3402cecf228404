with

source as (

    select * from {{ source('jaffle_shop', 'raw_payments') }}

),

renamed as (

    select
        -- The marts' contracts declare integer keys, whatever type the loader gave the raw table.
        cast(id as integer) as payment_id,
        cast(order_id as integer) as order_id,
        payment_method,

        -- amount is stored in cents; the marts report exact dollars
        {{ cents_to_dollars('amount') }} as amount

    from source

)

select * from renamed
