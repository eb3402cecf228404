with

source as (

    select * from {{ source('jaffle_shop', 'raw_customers') }}

),

renamed as (

    select
        -- The marts' contracts declare integer keys, whatever type the loader gave the raw table
        -- (DuckDB's read_csv infers bigint).
        cast(id as integer) as customer_id,
        first_name,
        last_name

    from source

)

select * from renamed
