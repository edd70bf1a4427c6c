-- Subscriptions of the view that match the search (legacy rule L11 check_users), newest
-- activation first. Input: view_rows (one view file). Parameters: $subscription_id,
-- $tmuserid, $msisdn (null when not searched), $ids (BIGINT[]: ids found in transactions).

with

final as (
    select * from view_rows
    where subscription_id = cast($subscription_id as bigint)
       or tmuserid = cast($tmuserid as varchar)
       or msisdn = cast($msisdn as varchar)
       or list_contains(cast($ids as bigint[]), subscription_id)
)

select * from final
order by activation_date desc nulls last, subscription_id
