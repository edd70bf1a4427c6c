-- Per-CPC counters of one day (legacy rule L9.4 with decisions D2, D5, D11).
-- Inputs (registered by cvas.counters): the day's six partitions act, reno, dct, cnr, rfnd,
-- ppd, each row with its partition's `day` (cvas.steps.counters gives one or several days at once,
-- and a day's counters come from its own rows only), and the exclusion sets ex_msisdn(v),
-- ex_tmuserid(v). Parameter: $last_updated.

with

-- exclusions never drop a row whose id is null (decision D5): `x in (...)` is null there, coalesced to false
act_kept as (
    select day, cpc, channel_act, rev from act
    where not coalesce(msisdn in (select v from ex_msisdn), false)
      and not coalesce(tmuserid in (select v from ex_tmuserid), false)
),

reno_kept as (
    select day, cpc, rev from reno
    where not coalesce(msisdn in (select v from ex_msisdn), false)
      and not coalesce(tmuserid in (select v from ex_tmuserid), false)
),

dct_kept as (
    select day, cpc, channel_dct from dct
    where not coalesce(msisdn in (select v from ex_msisdn), false)
      and not coalesce(tmuserid in (select v from ex_tmuserid), false)
),

ppd_kept as (
    select day, cpc, rev from ppd
    where not coalesce(msisdn in (select v from ex_msisdn), false)
      and not coalesce(tmuserid in (select v from ex_tmuserid), false)
),

cnr_kept as (
    select day, cpc from cnr
    where not coalesce(tmuserid in (select v from ex_tmuserid), false)
),

rfnd_kept as (
    select day, cpc, rfnd_cnt, rfnd_amount from rfnd
    where not coalesce(tmuserid in (select v from ex_tmuserid), false)
),

-- one row per event with its counter bucket; a null channel is a regular event (decision D2)
events as (
    select day, cpc, case when channel_act = 'UPGRADE' then 'upg' else 'act' end as bucket,
           rev, null::bigint as n, null::double as amount
    from act_kept
    union all
    select day, cpc, 'reno', rev, null, null from reno_kept
    union all
    select day, cpc, case when channel_dct = 'UPGRADE' then 'upg_dct' else 'dct' end, null, null, null from dct_kept
    union all
    select day, cpc, 'cnr', null, null, null from cnr_kept
    union all
    select day, cpc, 'ppd', rev, null, null from ppd_kept
    union all
    select day, cpc, 'rfnd', null, rfnd_cnt, rfnd_amount from rfnd_kept
),

-- every CPC with any event gets a row, UPGRADE-only DCT CPCs included (decision D11);
-- money is summed as exact cents, then exposed as double like the legacy files
final as (
    select
        day,
        cpc,
        count(*) filter (where bucket = 'act') as act_count,
        count(*) filter (where bucket = 'act' and rev = 0) as act_free,
        count(*) filter (where bucket = 'act' and rev > 0) as act_pay,
        count(*) filter (where bucket = 'upg') as upg_count,
        count(*) filter (where bucket = 'reno') as reno_count,
        count(*) filter (where bucket = 'dct') as dct_count,
        count(*) filter (where bucket = 'upg_dct') as upg_dct_count,
        count(*) filter (where bucket = 'cnr') as cnr_count,
        count(*) filter (where bucket = 'ppd') as ppd_count,
        coalesce(sum(n) filter (where bucket = 'rfnd'), 0) as rfnd_count,
        coalesce(sum(cast(amount as decimal(18, 2))) filter (where bucket = 'rfnd'), 0) as rfnd_amount,
        coalesce(sum(cast(rev as decimal(18, 2))) filter (where bucket in ('act', 'upg', 'reno', 'ppd')), 0) as rev
    from events
    where cpc is not null
    group by day, cpc
)

select
    day as date,
    cpc,
    act_count, act_free, act_pay, upg_count, reno_count, dct_count, upg_dct_count,
    cnr_count, ppd_count,
    cast(rfnd_count as bigint) as rfnd_count,
    cast(rfnd_amount as double) as rfnd_amount,
    cast(rev as double) as rev,
    cast($last_updated as timestamp) as last_updated
from final
order by date, cpc
