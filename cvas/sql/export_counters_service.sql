-- Counters_Service.csv (legacy rule L9.6, decisions D7/D10): CPC-level counters with service metadata.
-- Inputs: counters (all per-day counter rows), master (MASTERCPC.csv), excluded(keyword).

with

-- unmapped CPCs get the legacy synthetic mapping; blank master fields are filled the same way
mapped as (
    select
        c.date,
        coalesce(nullif(m.service_name, ''), 'UNKNOWN') as service_name,
        coalesce(m.tme_category, '') as tme_category,
        c.cpc,
        coalesce(m.cpc_period, 0) as cpc_period,
        coalesce(m.cpc_price, 0.0) as cpc_price,
        c.act_count, c.act_free, c.act_pay, c.upg_count, c.reno_count, c.dct_count,
        c.upg_dct_count, c.cnr_count, c.ppd_count, c.rfnd_count, c.rfnd_amount, c.rev
    from counters as c
    left join master as m on m.cpc = c.cpc
),

-- excluded services: case-insensitive substring of the service name (legacy rule L5.4)
final as (
    select * from mapped
    where not exists (
        select 1 from excluded as e where contains(lower(mapped.service_name), e.keyword)
    )
)

select * from final
-- default collation is binary: byte-wise order like the legacy
order by date, service_name, cpc
