-- A user's events outside any subscription (legacy rule L11 query_*_from_tx, step 3): PPD
-- one-off purchases, plus refunds that carry no subscription id.
-- Inputs: ppd, rfnd. Parameters: $tmuserids, $msisdns (VARCHAR[]), $as_of (null = no limit).

with

purchases as (
    select 'PPD' as transaction_type, trans_date, cpc, rev, null::double as rfnd_amount, null::bigint as rfnd_cnt,
           null::varchar as instant_rfnd, subscription_id
    from ppd
    where (list_contains(cast($tmuserids as varchar[]), tmuserid) or list_contains(cast($msisdns as varchar[]), msisdn))
      and (cast($as_of as date) is null or trans_date < cast($as_of as date) + interval 1 day)
),

loose_refunds as (
    select 'RFND', refnd_date, cpc, null, rfnd_amount, rfnd_cnt, instant_rfnd, sbnid
    from rfnd
    where sbnid is null
      and list_contains(cast($tmuserids as varchar[]), tmuserid)
      and (cast($as_of as date) is null or refnd_date < cast($as_of as date) + interval 1 day)
),

final as (
    select * from purchases
    union all select * from loose_refunds
)

select * from final
order by trans_date nulls last, transaction_type, cpc, rev, rfnd_amount, instant_rfnd
