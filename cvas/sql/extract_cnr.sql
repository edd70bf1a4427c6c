-- CNR: cancellations (deferred deactivation requests) from the delayed-deactivation log,
-- one output row per source row, in the half-open window [start_ts, end_ts) on
-- "timestamp". legacy rules L2.4, L2.5.
with

cancellations as (
    select * from delaydcttlog_v1_0_0_fact
    where "timestamp" >= cast(:'start_ts' as timestamp)
      and "timestamp" < cast(:'end_ts' as timestamp)
),

-- sbn_id as numeric(38,0): prints as plain integer text in both engines, like the
-- legacy ::numeric cast
final as (
    select
        "timestamp" as cancel_date,
        cast(sbn_id as numeric(38, 0)) as sbn_id,
        msisdn as tmuserid,
        cpc,
        mode
    from cancellations
)

select * from final
order by cancel_date, sbn_id, tmuserid, cpc, mode
