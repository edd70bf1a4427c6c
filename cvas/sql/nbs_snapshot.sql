-- NBS user-base snapshot at the end of a day (legacy rule L2.7): one row per group of
-- subscriptions alive at end_ts (the next day's 00:00:00), with the service attributes
-- of their CPC. Excluded services are included, as in the real snapshot.
with

subscriptions as (
    select * from sim_subscription
),

catalogue as (
    select * from sim_cpc
),

-- a subscription segment is alive at end_ts when it started before it and ends at or
-- after it (end_ts null = still active after the simulated window)
alive as (
    select cpc, last_billed_amount, channel_desc
    from subscriptions
    where start_ts < cast(:'end_ts' as timestamp)
      and (end_ts is null or end_ts >= cast(:'end_ts' as timestamp))
),

final as (
    select
        alive.cpc,
        catalogue.content_provider,
        catalogue.service_name,
        alive.last_billed_amount,
        catalogue.tme_category,
        alive.channel_desc,
        count(*) as count
    from alive
    left join catalogue on alive.cpc = catalogue.cpc
    group by
        alive.cpc, catalogue.content_provider, catalogue.service_name, alive.last_billed_amount,
        catalogue.tme_category, alive.channel_desc
)

select * from final
order by cpc, channel_desc, last_billed_amount, content_provider, service_name, tme_category
