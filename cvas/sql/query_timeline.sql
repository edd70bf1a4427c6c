-- The full transaction timeline of some subscriptions (legacy rule L11 query_*_from_tx, step 2).
-- Inputs: the transaction views act, reno, dct, cnr, rfnd. Parameters: $ids (BIGINT[]),
-- $as_of (null = no limit). CNR sorts as trans_type_id 99 and RFND as 100, as the legacy.

with

act_rows as (
    select subscription_id, 'ACT' as transaction_type, trans_type_id, trans_date, cpc, channel_act as channel,
           rev, null::varchar as mode, null::double as rfnd_amount, null::bigint as rfnd_cnt,
           null::varchar as instant_rfnd, tmuserid, msisdn
    from act
    where list_contains(cast($ids as bigint[]), subscription_id)
      and (cast($as_of as date) is null or trans_date < cast($as_of as date) + interval 1 day)
),

reno_rows as (
    select subscription_id, 'RENO', trans_type_id, trans_date, cpc, channel_act, rev, null, null, null, null,
           tmuserid, msisdn
    from reno
    where list_contains(cast($ids as bigint[]), subscription_id)
      and (cast($as_of as date) is null or trans_date < cast($as_of as date) + interval 1 day)
),

dct_rows as (
    select subscription_id, 'DCT', trans_type_id, trans_date, cpc, channel_dct, null, null, null, null, null,
           tmuserid, msisdn
    from dct
    where list_contains(cast($ids as bigint[]), subscription_id)
      and (cast($as_of as date) is null or trans_date < cast($as_of as date) + interval 1 day)
),

-- a cancellation's channel is its mode, as in the legacy tool
cnr_rows as (
    select sbn_id, 'CNR', 99, cancel_date, cpc, mode, null, mode, null, null, null, tmuserid, null
    from cnr
    where list_contains(cast($ids as bigint[]), sbn_id)
      and (cast($as_of as date) is null or cancel_date < cast($as_of as date) + interval 1 day)
),

rfnd_rows as (
    select sbnid, 'RFND', 100, refnd_date, cpc, null, null, null, rfnd_amount, rfnd_cnt, instant_rfnd, tmuserid, null
    from rfnd
    where list_contains(cast($ids as bigint[]), sbnid)
      and (cast($as_of as date) is null or refnd_date < cast($as_of as date) + interval 1 day)
),

final as (
    select * from act_rows
    union all select * from reno_rows
    union all select * from dct_rows
    union all select * from cnr_rows
    union all select * from rfnd_rows
)

select * from final
order by subscription_id, trans_date nulls last, trans_type_id, cpc, channel, rev, rfnd_amount, instant_rfnd
