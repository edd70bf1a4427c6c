-- rfnd_analysis (legacy rule L11): refunds per (year_month, cpc) of the chosen months, with service metadata.
-- Inputs: $files (the months' RFND partition files, layout-made), master (MASTERCPC.csv).
-- Like the legacy tool it applies neither the exclusion list nor the service exclusions.

with

refunds as (
    select year_month, cpc, tmuserid, instant_rfnd, rfnd_amount, rfnd_cnt
    from read_parquet($files, hive_partitioning = true, hive_types = {'year_month': 'VARCHAR'})
),

-- unique users overall and per refund kind (instant_rfnd 'f' = regular, 't' = automatic)
per_cpc as (
    select
        year_month,
        cpc,
        round(coalesce(sum(rfnd_amount), 0), 2) as cpcTotalRfdsAmount,
        coalesce(sum(rfnd_cnt), 0) as cpcTotalRfdsCount,
        count(distinct tmuserid) as cpcTotalRfdsCountUU,
        count(distinct tmuserid) filter (where instant_rfnd = 'f') as RegularRfdsUU,
        count(distinct tmuserid) filter (where instant_rfnd = 't') as AutomaticRfdsUU
    from refunds
    group by year_month, cpc
),

final as (
    select
        p.year_month,
        p.cpc,
        coalesce(m.service_name, '') as service_name,
        coalesce(m.tme_category, '') as tme_category,
        p.cpcTotalRfdsAmount,
        p.cpcTotalRfdsCount,
        p.cpcTotalRfdsCountUU,
        p.RegularRfdsUU,
        p.AutomaticRfdsUU
    from per_cpc as p
    left join master as m on m.cpc = p.cpc
)

select * from final
-- the legacy order (month, then count descending) with cpc as the tie-breaker
order by year_month, cpcTotalRfdsCount desc, cpc nulls last
