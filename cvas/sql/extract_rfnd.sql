-- RFND: refunds grouped per (sbnid, tmuserid, cpc, refnd_date, instant_rfnd), from the
-- rows in the half-open window [start_ts, end_ts) on "timestamp". legacy rules L2.4, L2.5;
-- a regular and an automatic refund of one subscription on one day stay two rows (decision D1).
with

refunds as (
    select * from refund_v1_0_0_fact
    where "timestamp" >= cast(:'start_ts' as timestamp)
      and "timestamp" < cast(:'end_ts' as timestamp)
),

-- info is free text like 'sbnId=<id>,reason=...,Automatic Refund': sbnid is the text after
-- 'sbnId=' up to the next ',' ('' when absent, null only when info is null); instant_rfnd
-- is the legacy boolean "info contains 'Automatic Refund' (any case)" as COPY prints it, t/f
parsed as (
    select
        msisdn as tmuserid,
        cpc,
        cast("timestamp" as date) as refnd_date,
        amount,
        split_part(split_part(info, 'sbnId=', 2), ',', 1) as sbnid,
        case
            when info is null then null
            when position('automatic refund' in lower(info)) > 0 then 't'
            else 'f'
        end as instant_rfnd
    from refunds
),

-- rfnd_cnt counts the rows whose sbnid text is not null, i.e. whose info is not null
final as (
    select
        tmuserid,
        cpc,
        refnd_date,
        sum(amount) as rfnd_amount,
        count(sbnid) as rfnd_cnt,
        sbnid,
        instant_rfnd
    from parsed
    group by sbnid, tmuserid, cpc, refnd_date, instant_rfnd
)

select * from final
order by refnd_date, sbnid, tmuserid, cpc, instant_rfnd
