-- Per-day user-base rows without the excluded services (legacy rule L5.4): a keyword that is a
-- case-insensitive substring of the (already stripped) service name drops the row.
-- Inputs (registered by cvas.userbase): daily (the per-day aggregate files), excluded(keyword).

with

daily_rows as (
    select date, cpc, service_name, tme_category, user_base from daily
),

final as (
    select * from daily_rows as d
    where not exists (
        select 1 from excluded as e where contains(lower(d.service_name), e.keyword)
    )
)

select * from final
