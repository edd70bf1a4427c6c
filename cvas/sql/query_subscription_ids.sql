-- Subscription ids whose transactions name a user (legacy rule L11 query_*_from_tx, step 1).
-- Inputs: the transaction views act, reno, dct, cnr, rfnd. Parameters: $tmuserid, $msisdn
-- (one of them null), $as_of (null = no limit). Values are bound, never formatted in.

with

matches as (
    select subscription_id from act
    where (tmuserid = cast($tmuserid as varchar) or msisdn = cast($msisdn as varchar))
      and (cast($as_of as date) is null or trans_date < cast($as_of as date) + interval 1 day)
    union
    select subscription_id from reno
    where (tmuserid = cast($tmuserid as varchar) or msisdn = cast($msisdn as varchar))
      and (cast($as_of as date) is null or trans_date < cast($as_of as date) + interval 1 day)
    union
    select subscription_id from dct
    where (tmuserid = cast($tmuserid as varchar) or msisdn = cast($msisdn as varchar))
      and (cast($as_of as date) is null or trans_date < cast($as_of as date) + interval 1 day)
    union
    select sbn_id from cnr
    where tmuserid = cast($tmuserid as varchar)
      and (cast($as_of as date) is null or cancel_date < cast($as_of as date) + interval 1 day)
    union
    select sbnid from rfnd
    where tmuserid = cast($tmuserid as varchar)
      and (cast($as_of as date) is null or refnd_date < cast($as_of as date) + interval 1 day)
),

final as (
    select subscription_id from matches where subscription_id is not null
)

select * from final
order by subscription_id
